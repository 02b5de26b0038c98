"""The rescan's end-to-end world: a moto server seeded as the build account sees it, the real handlers
with moto's gaps (Inspector, image deprecation, StartAutomationExecution, Service Catalog) served by the
recording fakes, and `rescanned`: two families published, run in dev and prod, and one
Bakehouse-RescanImages run over them. Each test module gets its own world (moto keeps its backends per
process): test_operations.py reads what the first rescan left, test_operations_rescan_reruns.py runs it
again."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

import handlers.isolate
import handlers.rescan
from handlers.catalog import approve_in_constraint
from handlers.common import client as real_client
from handlers.publish import PublishRequest, publish
from handlers.rescan_feedback import SETTINGS_PARAMETER
from tests.e2e.runner import Runner, moto_server
from tests.fakes import FakeInspector2, ImageDeprecationEc2
from tests.fakes.operations import FakeAutomation, InspectorThatScans, seed_factory_settings
from tests.fakes.seed import golden_ami
from tests.fakes.servicecatalog import FakeServiceCatalog

REGION = "eu-west-1"
BUILD, DEV, PROD = "123456789012", "222222222222", "333333333333"
ROLE = f"arn:aws:iam::{BUILD}:role/BakehouseFactoryAutomation"


@dataclass
class Estate:
    url: str
    subnet: str
    sg: str
    vpc: str
    bucket: str
    plain_bucket: str
    topic: str
    queue: str

    def client(self, service: str, account: str = BUILD):
        if account == BUILD:
            return boto3.client(service, region_name=REGION, endpoint_url=self.url)
        creds = self.client("sts").assume_role(
            RoleArn=f"arn:aws:iam::{account}:role/BakehouseImageScanner", RoleSessionName="e2e-seed"
        )["Credentials"]
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )

    def messages(self) -> list[dict[str, Any]]:
        got = self.client("sqs").receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def _seed(url: str) -> Estate:
    c = lambda s: boto3.client(s, region_name=REGION, endpoint_url=url)  # noqa: E731
    ec2, s3 = c("ec2"), c("s3")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/20")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="scan", Description="scan", VpcId=vpc)["GroupId"]
    c("iam").create_instance_profile(InstanceProfileName="bakehouse-scan")
    key = c("kms").create_key(Description="evidence")["KeyMetadata"]["Arn"]
    bucket, plain = f"bakehouse-evidence-{BUILD}-{REGION}", "bakehouse-unencrypted-evidence"
    for name in (bucket, plain):
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]
        },
    )
    scripts = f"bakehouse-scripts-{BUILD}-{REGION}"
    s3.create_bucket(Bucket=scripts, CreateBucketConfiguration={"LocationConstraint": REGION})
    seed_factory_settings(c("ssm"), s3, scripts)  # what a quarantine's rebuild starts the Pipeline with
    topic = c("sns").create_topic(Name="bakehouse-security")["TopicArn"]
    queue = c("sqs").create_queue(QueueName="security-inbox")["QueueUrl"]
    arn = c("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    c("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return Estate(url, subnet, sg, vpc, bucket, plain, topic, queue)


@dataclass
class World:
    estate: Estate
    runner: Runner
    inspector: InspectorThatScans
    automation: FakeAutomation
    deprecation: ImageDeprecationEc2
    findings: dict[str, list[tuple[str, str]]]
    catalog: FakeServiceCatalog
    member_inspectors: dict[str, FakeInspector2]
    published: dict[str, str] = field(default_factory=dict)
    constraint_id: str = ""


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp, moto_server() as url:
        mp.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # 1,300 stock AMIs would slow every describe
        estate = _seed(url)
        findings: dict[str, list[tuple[str, str]]] = {}
        inspector = InspectorThatScans(
            estate.client("inspector2"), estate.client("ec2"), findings, after_polls=0, s3=estate.client("s3")
        )
        automation = FakeAutomation(estate.client("ssm"), {"Bakehouse-Pipeline"})
        deprecation = ImageDeprecationEc2(estate.client("ec2"))
        catalog = FakeServiceCatalog(estate.client("servicecatalog"))
        # Each workload account's own Inspector, read through its scanner role (moto has no coverage).
        member_inspectors = {a: FakeInspector2(estate.client("inspector2", a), account_id=a, region=REGION) for a in (DEV, PROD)}
        cached: dict[str, Any] = {}

        def own_account(session: Any) -> bool:
            # The handler's build-account session carries the ambient (test) credentials; the
            # workload sessions carry the scanner role's.
            return session is None or session.get_credentials().access_key == os.environ["AWS_ACCESS_KEY_ID"]

        def stand_in(service: str, region: str | None = None, session: Any = None):
            # Only the build account's own clients meet a fake; workload sessions go to moto as they are.
            if service == "inspector2" and not own_account(session):
                account = real_client("sts", region, session).get_caller_identity()["Account"]
                return member_inspectors[account]
            if not own_account(session) or region not in (None, REGION):
                return real_client(service, region, session)
            if service == "servicecatalog":
                return catalog
            if service == "inspector2":
                return inspector
            if service == "ssm":
                return automation
            if service == "ec2":
                return deprecation
            # A fresh client per handler call would parse the service model again each time.
            return cached.setdefault(service, estate.client(service))

        mp.setattr(handlers.rescan, "client", stand_in)
        yield World(estate, Runner(url, region=REGION), inspector, automation, deprecation, findings, catalog, member_inspectors)


def scan_instances(world: World, states: list[str]) -> list[dict[str, Any]]:
    got = world.estate.client("ec2").describe_instances(
        Filters=[{"Name": "tag:bakehouse:purpose", "Values": ["rescan"]}, {"Name": "instance-state-name", "Values": states}]
    )
    return [i for r in got["Reservations"] for i in r["Instances"]]


def rescan_parameters(world: World, bucket: str | None = None) -> dict[str, Any]:
    e = world.estate
    return {
        "AutomationAssumeRole": ROLE,
        "WorkloadAccounts": [f"dev={DEV}", f"prod={PROD}"],
        "SubnetId": e.subnet,
        "SecurityGroupIds": [e.sg],
        "InstanceProfileName": "bakehouse-scan",
        "BatchSize": 2,
        "EvidenceBucket": bucket or e.bucket,
        "TopicArn": e.topic,
        "PipelineRoleArn": ROLE,
        "SeverityThreshold": "HIGH",
        "WaitSeconds": 600,
    }


ROOT = Path(__file__).resolve().parents[2]


def _name_catalog_in_settings(world: World) -> None:
    """A portfolio and product with a rule per family, named in the factory settings the rescan reads."""
    e, sc = world.estate, world.catalog
    portfolio = sc.create_portfolio(
        DisplayName="bakehouse", ProviderName="bakehouse", IdempotencyToken=f"e2e-rescan-{uuid.uuid4()}"
    )["PortfolioDetail"]["Id"]
    product = sc.create_product(
        Name="hardened-instance",
        Owner="bakehouse",
        ProductType="CLOUD_FORMATION_TEMPLATE",
        IdempotencyToken=f"e2e-rescan-{uuid.uuid4()}",
        ProvisioningArtifactParameters={
            "Name": "v1",
            "Type": "CLOUD_FORMATION_TEMPLATE",
            "Info": {"LoadTemplateFromURL": "https://s3.amazonaws.com/b/t.yaml"},
        },
    )["ProductViewDetail"]["ProductViewSummary"]["ProductId"]
    sc.associate_product_with_portfolio(ProductId=product, PortfolioId=portfolio)
    constraint = sc.create_constraint(
        PortfolioId=portfolio,
        ProductId=product,
        Type="TEMPLATE",
        IdempotencyToken="e2e",
        Parameters=(ROOT / "catalog" / "template-constraint.json").read_text(),
    )
    for family, image in world.published.items():  # as each family's catalog step left it
        approve_in_constraint(sc, portfolio, product, [image], family)
    world.constraint_id = constraint["ConstraintDetail"]["ConstraintId"]
    ssm = e.client("ssm")
    settings = json.loads(ssm.get_parameter(Name=SETTINGS_PARAMETER)["Parameter"]["Value"])
    settings["pipelineParameters"].update(CatalogPortfolioId=portfolio, CatalogProductId=product)
    ssm.put_parameter(Name=SETTINGS_PARAMETER, Value=json.dumps(settings), Type="String", Overwrite=True)


@pytest.fixture(scope="module")
def rescanned(world: World):
    e = world.estate
    ec2, ssm = e.client("ec2"), e.client("ssm")
    images = {
        name: golden_ami(ec2, f"bakehouse-{name}-1", {"bakehouse:family": name, "bakehouse:inspector-verdict": "PASS"})
        for name in ("al2023", "ubuntu")
    }
    for family, image in images.items():
        publish(PublishRequest(image, family, "e2e"), ec2, ssm)
    legacy = golden_ami(ec2, "bakehouse-al2023-0", {"bakehouse:family": "al2023"})  # superseded, still in prod
    e.client("ec2", DEV).run_instances(ImageId=images["al2023"], MinCount=12, MaxCount=12)
    e.client("ec2", PROD).run_instances(ImageId=images["ubuntu"], MinCount=6, MaxCount=6)
    e.client("ec2", PROD).run_instances(ImageId=legacy, MinCount=4, MaxCount=4)
    world.findings[images["al2023"]] = [("CRITICAL", "CVE-2026-4242"), ("LOW", "CVE-2026-0001")]
    # Inspector already scans prod's ubuntu instances: that image is judged there, without a scan instance.
    prod_inspector = world.member_inspectors[PROD]
    ubuntu_instances = [
        i["InstanceId"]
        for r in e.client("ec2", PROD).describe_instances(Filters=[{"Name": "image-id", "Values": [images["ubuntu"]]}])[
            "Reservations"
        ]
        for i in r["Instances"]
    ]
    for instance in ubuntu_instances:
        prod_inspector.add_coverage(instance, ami_id=images["ubuntu"])
    prod_inspector.add_finding(ubuntu_instances[0], "MEDIUM", ami_id=images["ubuntu"], vulnerability_id="CVE-2026-0002")
    world.published = images
    _name_catalog_in_settings(world)
    execution = world.runner.run("Bakehouse-RescanImages", rescan_parameters(world))
    return execution, images, legacy
