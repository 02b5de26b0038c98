"""Rescan against moto (+ the Inspector and deprecation fakes, + an SSM Automation fake): dedup,
batching, cleanup on failure, recording, and the CVE feedback loop."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from handlers.common import MalformedEvent
from handlers.inspector_summary import NotCovered
from handlers.publish import PublishRequest, history, publish
from handlers.rescan import (
    Clients,
    RescanIncomplete,
    RescanRequest,
    RescanResult,
    ScanLaunchFailed,
    collect,
    discover,
    handler,
    launch,
    rescan,
)
from tests.fakes import FakeInspector2, ImageDeprecationEc2
from tests.fakes.operations import FakeAutomation, InspectorThatScans, LaunchLog, seed_factory_settings
from tests.fakes.seed import FAST_EC2_ENV, golden_ami
from tests.handlers._sessions import fast_default_session, session

REGION = "eu-west-1"
BUILD, DEV, PROD = "123456789012", "222222222222", "333333333333"
BUCKET = "bakehouse-evidence-444444444444-eu-west-1"
SCRIPTS = "bakehouse-scripts-333333333333-eu-west-1"


def _session(account: str) -> boto3.Session:
    """The scanner role's session in a workload account (moto keys its state by the role's account)."""
    creds = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/BakehouseImageScanner", RoleSessionName="rescan-test"
    )["Credentials"]
    return session(
        REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


class World:
    def __init__(self):
        self.ec2_raw = boto3.client("ec2", region_name=REGION)
        self.ec2 = ImageDeprecationEc2(self.ec2_raw)
        self.ssm = boto3.client("ssm", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        key = boto3.client("kms", region_name=REGION).create_key(Description="evidence")["KeyMetadata"]["Arn"]
        self.s3.put_bucket_encryption(
            Bucket=BUCKET,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]
            },
        )
        sns = boto3.client("sns", region_name=REGION)
        self.topic = sns.create_topic(Name="bakehouse-security")["TopicArn"]
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.queue = self.sqs.create_queue(QueueName="inbox")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
        self.sns = sns
        vpc = self.ec2_raw.create_vpc(CidrBlock="10.0.0.0/20")["Vpc"]["VpcId"]
        self.subnet = self.ec2_raw.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        self.sg = self.ec2_raw.create_security_group(GroupName="scan", Description="scan", VpcId=vpc)["GroupId"]
        boto3.client("iam").create_instance_profile(InstanceProfileName="bakehouse-scan")
        self.findings: dict[str, list[tuple[str, str]]] = {}
        self.inspector = InspectorThatScans(
            boto3.client("inspector2", region_name=REGION), self.ec2_raw, self.findings, s3=self.s3
        )
        self.automation = FakeAutomation(self.ssm, {"Bakehouse-Pipeline"})
        self.s3.create_bucket(Bucket=SCRIPTS, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.bundle_version = seed_factory_settings(self.ssm, self.s3, SCRIPTS)
        sessions = {a: _session(a) for a in (DEV, PROD)}
        self.workload_clients = {a: (s.client("ec2"), s.client("ssm")) for a, s in sessions.items()}
        # Each member account's own Inspector (read through its scanner role): coverage and findings of
        # the instances it runs, seeded per test with cover().
        self.workload_inspectors = {
            a: FakeInspector2(s.client("inspector2"), account_id=a, region=REGION) for a, s in sessions.items()
        }
        self.ec2_client: Any = self.ec2
        self.counter = itertools.count(1)

    def image(self, family: str = "al2023", publish_it: bool = True, **later_tags) -> str:
        """A golden AMI, published; `later_tags` arrive after publication (e.g. a rescan's verdict),
        since publish refuses an image already marked vulnerable."""
        image = golden_ami(
            self.ec2_raw,
            f"bakehouse-{family}-{next(self.counter)}",
            {"bakehouse:family": family, "bakehouse:inspector-verdict": "PASS"},
        )
        if publish_it:
            publish(PublishRequest(image, family, "tester"), self.ec2_raw, self.ssm)
        if later_tags:
            self.ec2_raw.create_tags(Resources=[image], Tags=[{"Key": k, "Value": v} for k, v in later_tags.items()])
        return image

    def run(self, account: str, image: str, count: int) -> None:
        self.workload_clients[account][0].run_instances(ImageId=image, MinCount=count, MaxCount=count)

    def clients(self) -> Clients:
        return Clients(
            self.ec2_client,
            self.ssm,
            self.s3,
            self.sns,
            self.inspector,
            self.automation,
            self.workload_clients.__getitem__,
            findings=self.workload_inspectors.__getitem__,
        )

    def cover(self, account: str, image: str, findings: tuple[tuple[str, str], ...] = ()) -> None:
        """Inspector in `account` covers every instance running `image` there and reports `findings` on
        each (as it does for every running instance of a member account, in place)."""
        inspector = self.workload_inspectors[account]
        pages = self.workload_clients[account][0].describe_instances(
            Filters=[{"Name": "image-id", "Values": [image]}, {"Name": "instance-state-name", "Values": ["running"]}]
        )
        for instance in [i for r in pages["Reservations"] for i in r["Instances"]]:
            inspector.add_coverage(instance["InstanceId"], ami_id=image)
            for severity, cve in findings:
                inspector.add_finding(instance["InstanceId"], severity, ami_id=image, vulnerability_id=cve)

    def request(self, **kw) -> RescanRequest:
        values = dict(
            accounts=(("dev", DEV), ("prod", PROD)),
            subnet_id=self.subnet,
            security_group_ids=(self.sg,),
            instance_profile="bakehouse-scan",
            evidence_bucket=BUCKET,
            topic_arn=self.topic,
            pipeline_role_arn=f"arn:aws:iam::{BUILD}:role/BakehouseFactoryAutomation",
            execution_id="exec-1",
            batch_size=10,
            wait_seconds=600,
        )
        values.update(kw)
        return RescanRequest(**values)

    def rescan(self, **kw):
        return rescan(self.request(**kw), self.clients(), sleep=lambda s: None)

    def rescan_candidates(self) -> list[str]:
        return [i["ImageId"] for i in self.ec2_raw.describe_images(Owners=["self"])["Images"]]

    def scan_instances(self, states=("pending", "running", "stopping", "stopped")):
        r = self.ec2_raw.describe_instances(
            Filters=[
                {"Name": "tag:bakehouse:purpose", "Values": ["rescan"]},
                {"Name": "instance-state-name", "Values": list(states)},
            ]
        )
        return [i for res in r["Reservations"] for i in res["Instances"]]

    def tags(self, image: str) -> dict[str, str]:
        return {t["Key"]: t["Value"] for t in self.ec2_raw.describe_images(ImageIds=[image])["Images"][0].get("Tags", [])}

    def messages(self):
        got = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]


@pytest.fixture
def world(monkeypatch):
    for k, v in FAST_EC2_ENV.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        fast_default_session(REGION)
        yield World()


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_each_unique_ami_gets_exactly_one_scan_instance_however_many_instances_run_it(world):
    a, b = world.image("al2023"), world.image("ubuntu")
    c = world.image("al2023", publish_it=False)  # superseded, but still running in prod
    world.workload_clients[DEV][1].put_parameter(Name="/bakehouse/dev/ami/al2023", Value=a, Type="String")
    world.run(DEV, a, 30)
    world.run(PROD, a, 20)
    world.run(PROD, c, 25)
    world.ec2_client = log = LaunchLog(world.ec2)
    result = world.rescan()
    assert log.launches == 3
    assert sorted(i["ImageId"] for i in world.scan_instances(("terminated",))) == sorted([a, b, c])
    assert set(result.scanned) == {a, b, c}


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_scan_instances_are_launched_in_batches_no_larger_than_configured(world):
    images = [world.image(f"fam{n}") for n in range(5)]
    world.ec2_client = log = LaunchLog(world.ec2)
    result = world.rescan(batch_size=2)
    assert log.launches == 5 and log.peak == 2
    assert set(result.scanned) == set(images)


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_every_scan_instance_is_terminated_when_inspector_never_covers_them(world):
    for n in range(3):
        world.image(f"fam{n}")
    world.inspector.scanning = False
    with pytest.raises(NotCovered, match="i-"):
        world.rescan(batch_size=2, wait_seconds=1)
    assert len(world.scan_instances(("terminated",))) == 2  # the second batch never started
    assert world.scan_instances() == []


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_instances_already_launched_are_terminated_when_a_launch_fails(world):
    for n in range(4):
        world.image(f"fam{n}")
    world.ec2_client = log = LaunchLog(world.ec2, fail_on_launch=3)
    third = sorted(world.rescan_candidates())[2]
    with pytest.raises(ScanLaunchFailed, match=f"{third}.*InsufficientInstanceCapacity"):
        world.rescan(batch_size=4)
    assert len(world.scan_instances(("terminated",))) == 2
    assert world.scan_instances() == [] and log.alive == set()


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_a_collect_step_that_runs_out_of_time_leaves_scans_pending_and_launches_no_more(world):
    images = [world.image(f"fam{n}") for n in range(3)]
    world.inspector.after_polls = 1000  # Inspector is slow today
    request = world.request(batch_size=2, step_seconds=0)
    result = RescanResult()
    discover(request, world.clients(), datetime.now(UTC), result)
    request = world.request(batch_size=2, step_seconds=0, image_ids=tuple(result.to_scan))
    launch(request, world.clients(), result)
    collect(request, world.clients(), lambda: datetime.now(UTC), result, sleep=lambda s: None)
    assert (len(result.launched), result.pending, result.remaining) == (2, 2, 1)
    assert len(world.scan_instances(("running",))) == 2  # still being scanned: not terminated
    launch(request, world.clients(), result)
    assert len(result.launched) == 2  # the batch is full until the pending scans finish
    world.inspector.after_polls = 0
    world.inspector.state.coverage.clear()
    world.inspector.seen.clear()
    collect(request, world.clients(), lambda: datetime.now(UTC), result, sleep=lambda s: None)
    assert (result.pending, result.remaining, len(result.scanned)) == (0, 1, 2)
    launch(request, world.clients(), result)
    assert len(result.launched) == 3 and sorted(result.to_scan) == sorted(images)


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_collect_step_fails_once_a_scan_instance_outlives_its_wait(world):
    world.image("al2023")
    world.inspector.scanning = False
    request = world.request(wait_seconds=1800, step_seconds=480)
    result = RescanResult()
    discover(request, world.clients(), datetime.now(UTC), result)
    request = world.request(wait_seconds=1800, step_seconds=480, image_ids=tuple(result.to_scan))
    launch(request, world.clients(), result)
    two_hours_later = datetime.now(UTC) + timedelta(hours=2)
    with pytest.raises(NotCovered, match=result.launched[0]):
        collect(request, world.clients(), lambda: two_hours_later, result, sleep=lambda s: None)


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_amis_tagged_vulnerable_are_not_rescanned(world):
    bad = world.image("al2023", **{"bakehouse:vulnerable": "true"})
    good = world.image("ubuntu")
    result = world.rescan()
    assert result.skipped_vulnerable == [bad]
    assert [i["ImageId"] for i in world.scan_instances(("terminated",))] == [good]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_findings_report_goes_to_s3_and_counts_to_the_ami_tags(world):
    image = world.image("al2023")
    world.findings[image] = [("MEDIUM", "CVE-2026-0001"), ("LOW", "CVE-2026-0002"), ("LOW", "CVE-2026-0003")]
    world.rescan(severity_threshold="HIGH")
    tags = world.tags(image)
    assert tags["bakehouse:cves-critical"] == "0" and tags["bakehouse:cves-high"] == "0"
    assert tags["bakehouse:cves-medium"] == "1" and tags["bakehouse:cves-low"] == "2"
    assert tags["bakehouse:scan-date"].startswith(datetime.now(UTC).strftime("%Y-%m-%d"))
    keys = [o["Key"] for o in world.s3.list_objects_v2(Bucket=BUCKET, Prefix="rescans/")["Contents"]]
    [key] = [k for k in keys if k.endswith(f"/{image}.json")]
    report = json.loads(world.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert report["imageId"] == image and report["verdict"] == "PASS"
    assert report["context"]["inUse"] == ["published"]  # where the discovery found it
    assert sorted(f["vulnerabilityId"] for f in report["findings"]) == ["CVE-2026-0001", "CVE-2026-0002", "CVE-2026-0003"]
    assert "bakehouse:vulnerable" not in tags and world.automation.calls_to("start_automation_execution") == []


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_an_ami_above_the_threshold_is_quarantined_notified_and_rebuilt(world):
    image = world.image("al2023")
    world.findings[image] = [("CRITICAL", "CVE-2026-1111"), ("HIGH", "CVE-2026-2222"), ("LOW", "CVE-2026-3333")]
    result = world.rescan(severity_threshold="HIGH")
    assert result.quarantined == [image]
    [(version, value, labels)] = history(world.ssm, "al2023")
    assert value == image and labels == (f"quarantined-{image}",)
    [message] = world.messages()
    assert message["image_id"] == image and message["cves"] == ["CVE-2026-1111", "CVE-2026-2222"]
    [start] = world.automation.calls_to("start_automation_execution")
    assert start["DocumentName"] == "Bakehouse-Pipeline" and start["Parameters"]["Family"] == ["al2023"]
    # the rebuild takes the factory's standing parameters and the scripts bundle as it is now
    assert start["Parameters"]["ScriptsVersionId"] == [world.bundle_version]
    assert start["Parameters"]["ScriptsCommit"] == ["0123abc"]
    assert start["Parameters"]["BaseImageParameter"] == ["/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"]
    tags = world.tags(image)
    assert tags["bakehouse:vulnerable"] == "true"
    assert tags["bakehouse:rebuild-execution"] == result.rebuilds[image]


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_a_quarantined_ami_is_deprecated_only_once_its_replacement_is_published(world):
    old = world.image("al2023")
    world.findings[old] = [("CRITICAL", "CVE-2026-1111")]
    world.rescan()
    second = world.rescan()
    assert second.deprecated == [] and old not in world.ec2.deprecations
    assert second.skipped_vulnerable == [old] and world.automation.calls_to("start_automation_execution").__len__() == 1
    new = world.image("al2023")  # the Pipeline's rebuild, published
    third = world.rescan()
    assert third.deprecated == [old] and old in world.ec2.deprecations and new not in world.ec2.deprecations
    assert world.rescan().deprecated == []


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_amis_running_in_prod_are_marked_as_having_run_there(world):
    in_prod, in_dev = world.image("al2023"), world.image("ubuntu")
    world.run(PROD, in_prod, 3)
    world.run(DEV, in_dev, 3)
    result = world.rescan()
    assert result.marked_prod == [in_prod]
    assert world.tags(in_prod)["bakehouse:ran-in"] == "prod"
    assert "bakehouse:ran-in" not in world.tags(in_dev)


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_an_account_s_own_copy_is_scanned_through_its_source_ami(world):
    source = world.image("al2023")
    dev_ec2 = world.workload_clients[DEV][0]
    copy = golden_ami(dev_ec2, "bakehouse-al2023-1", {"bakehouse:source-ami": source})  # re-encrypted copy
    world.run(DEV, copy, 4)
    world.ec2_client = log = LaunchLog(world.ec2)
    result = world.rescan()
    assert result.unresolved == [] and log.launches == 1 and list(result.scanned) == [source]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_amis_the_build_account_does_not_own_are_reported_not_launched(world):
    ours = world.image("al2023")
    world.run(DEV, "ami-0123456789abcdef0", 2)
    world.ec2_client = log = LaunchLog(world.ec2)
    result = world.rescan()
    assert result.unresolved == ["ami-0123456789abcdef0"]
    assert log.launches == 1 and list(result.scanned) == [ours]


def test_a_malformed_event_lists_every_problem_before_any_call():
    with pytest.raises(MalformedEvent) as err:
        handler(
            {
                "WorkloadAccounts": ["prod:333"],
                "SubnetId": "net-1",
                "SecurityGroupIds": [],
                "BatchSize": 0,
                "SeverityThreshold": "SEVERE",
            },
            None,
        )
    for key in (
        "WorkloadAccounts",
        "SubnetId",
        "SecurityGroupIds",
        "InstanceProfileName",
        "EvidenceBucket",
        "TopicArn",
        "PipelineRoleArn",
        "BatchSize",
        "SeverityThreshold",
    ):
        assert key in str(err.value)


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_rebuild_that_cannot_start_is_reported_after_the_quarantine_binds(world):
    world.s3.delete_object(Bucket=SCRIPTS, Key="provisioning/bundle.tar.gz")  # leaves a delete marker
    image = world.image("al2023")
    world.findings[image] = [("CRITICAL", "CVE-2026-1111")]
    with pytest.raises(RescanIncomplete, match=f"rebuild of al2023 after quarantining {image}.*bundle"):
        world.rescan(severity_threshold="HIGH")
    assert world.automation.calls_to("start_automation_execution") == []
    assert world.tags(image)["bakehouse:vulnerable"] == "true"
    first, second = world.messages()
    assert first["image_id"] == image and "cves" in first  # the security topic hears first
    assert second["family"] == "al2023" and "bundle" in second["error"]
    assert world.scan_instances() == []


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_malformed_settings_parameter_ends_in_a_reported_failure_not_a_silent_success(world):
    world.ssm.put_parameter(Name="/bakehouse/factory/settings", Value="{not json", Type="String", Overwrite=True)
    image = world.image("al2023")
    world.findings[image] = [("CRITICAL", "CVE-2026-1111")]
    with pytest.raises(RescanIncomplete, match="rebuild of al2023"):
        world.rescan(severity_threshold="HIGH")
    assert world.tags(image)["bakehouse:vulnerable"] == "true" and world.scan_instances() == []


def _param(ssm, name):
    try:
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_quarantine_moves_latest_and_every_envs_parameter_back_to_the_last_good_image(world):
    good, bad = world.image("al2023"), world.image("al2023")
    for account, env in ((DEV, "dev"), (PROD, "prod")):
        world.workload_clients[account][1].put_parameter(
            Name=f"/bakehouse/{env}/ami/al2023", Value=bad, Type="String", DataType="aws:ec2:image"
        )
    world.findings[bad] = [("CRITICAL", "CVE-2026-1111")]
    world.findings[good] = []
    world.rescan(severity_threshold="HIGH")
    assert _param(world.ssm, "/bakehouse/images/al2023/latest") == good
    for account, env in ((DEV, "dev"), (PROD, "prod")):
        assert _param(world.workload_clients[account][1], f"/bakehouse/{env}/ami/al2023") == good


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_quarantine_with_no_good_image_left_removes_every_pointer_so_nothing_launches_it(world):
    bad = world.image("al2023")
    world.workload_clients[DEV][1].put_parameter(
        Name="/bakehouse/dev/ami/al2023", Value=bad, Type="String", DataType="aws:ec2:image"
    )
    world.findings[bad] = [("CRITICAL", "CVE-2026-1111")]
    world.rescan(severity_threshold="HIGH")
    assert _param(world.ssm, "/bakehouse/images/al2023/latest") is None
    assert _param(world.workload_clients[DEV][1], "/bakehouse/dev/ami/al2023") is None


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_one_accounts_failure_is_reported_and_the_others_are_still_scanned(world):
    image = world.image("al2023")
    real = world.workload_clients

    def workload(account):
        if account == DEV:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no scanner role"}}, "AssumeRole")
        return real[account]

    clients = world.clients()
    clients = Clients(clients.ec2, clients.ssm, clients.s3, clients.sns, clients.inspector2, clients.automation, workload)
    with pytest.raises(RescanIncomplete, match=f"account {DEV} \\(dev\\).*AccessDenied"):
        rescan(world.request(), clients, sleep=lambda s: None)
    assert world.tags(image)["bakehouse:inspector-verdict"] == "PASS"  # judged nevertheless
    assert world.scan_instances() == []


class IdempotentRunInstances:
    """EC2's documented idempotency, which moto lacks: a RunInstances repeating a ClientToken returns
    the first call's instances instead of launching more (EC2 API reference, Ensuring idempotency)."""

    def __init__(self, inner):
        self._inner, self._by_token = inner, {}

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def run_instances(self, **params):
        token = params.get("ClientToken")
        if token not in self._by_token:
            self._by_token[token] = self._inner.run_instances(**params)
        return self._by_token[token] if token else self._by_token.pop(token)


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_two_concurrent_rescans_launch_one_instance_per_image_and_the_second_reports_it(world):
    world.ec2_client = IdempotentRunInstances(world.ec2)
    image = world.image("al2023")
    first = world.request(execution_id="exec-1", image_ids=(image,))
    launch(first, world.clients(), RescanResult())
    second = world.request(execution_id="exec-2", image_ids=(image,))
    with pytest.raises(RescanIncomplete, match="two rescans ran at once"):
        launch(second, world.clients(), RescanResult())
    assert len(world.scan_instances()) == 1


# --- item 15.7: judge in place what Inspector already scans; launch only for what nothing runs --------


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_an_image_inspector_covers_where_it_runs_is_judged_there_and_only_unrun_images_get_a_scan_instance(world):
    running, idle = world.image("al2023"), world.image("ubuntu")
    world.run(DEV, running, 3)
    world.run(PROD, running, 2)
    world.cover(DEV, running)
    world.cover(PROD, running)
    world.ec2_client = log = LaunchLog(world.ec2)
    result = world.rescan()
    assert log.launches == 1
    assert [i["ImageId"] for i in world.scan_instances(("terminated",))] == [idle]
    assert set(result.scanned) == {running, idle} and result.judged_in_place == [running]
    assert world.tags(running)["bakehouse:inspector-verdict"] == "PASS"


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_findings_read_in_place_above_the_threshold_quarantine_the_image_without_a_scan_instance(world):
    image = world.image("al2023")
    world.run(PROD, image, 4)
    world.cover(PROD, image, (("CRITICAL", "CVE-2026-4444"), ("LOW", "CVE-2026-5555")))
    world.ec2_client = log = LaunchLog(world.ec2)
    result = world.rescan(severity_threshold="HIGH")
    assert log.launches == 0
    assert result.quarantined == [image] and result.scanned[image]["critical"] == 4
    [message] = world.messages()
    assert message["cves"] == ["CVE-2026-4444"] and "running:prod" in message["in_use"]
    assert world.tags(image)["bakehouse:vulnerable"] == "true"
    summary = json.loads(
        world.s3.get_object(Bucket=BUCKET, Key=f"rescans/{datetime.now(UTC):%Y-%m-%d}/{image}.json")["Body"].read()
    )
    assert summary["context"]["inPlace"] == [f"{PROD}:{image}"]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_running_image_inspector_does_not_cover_still_gets_a_scan_instance(world):
    covered, uncovered = world.image("al2023"), world.image("ubuntu")
    world.run(DEV, covered, 2)
    world.run(DEV, uncovered, 2)  # e.g. no SSM agent: Inspector has nothing on these instances
    world.cover(DEV, covered)
    world.ec2_client = log = LaunchLog(world.ec2)
    result = world.rescan()
    assert log.launches == 1 and [i["ImageId"] for i in world.scan_instances(("terminated",))] == [uncovered]
    assert result.judged_in_place == [covered]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_an_accounts_copy_covered_in_place_is_judged_as_its_source(world):
    source = world.image("al2023")
    dev_ec2 = world.workload_clients[DEV][0]
    copy = golden_ami(dev_ec2, "bakehouse-al2023-1", {"bakehouse:source-ami": source})
    world.run(DEV, copy, 2)
    world.cover(DEV, copy, (("HIGH", "CVE-2026-6666"),))
    world.ec2_client = log = LaunchLog(world.ec2)
    result = world.rescan()
    assert log.launches == 0 and result.quarantined == [source]


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_every_configured_prod_env_marks_the_images_it_runs_not_only_one_named_prod(world):
    in_prod, in_live, in_dev = world.image("al2023"), world.image("ubuntu"), world.image("rhel")
    world.run(PROD, in_prod, 1)
    world.run(DEV, in_dev, 1)
    # Two prod envs (bakehouse:org.prodEnvs): "live" runs in the DEV account here.
    result = world.rescan(accounts=(("live", DEV), ("prod", PROD)), prod_envs=("prod", "live"))
    assert sorted(result.marked_prod) == sorted([in_prod, in_dev])
    assert "bakehouse:ran-in" not in world.tags(in_live)


def test_the_prod_envs_are_parsed_from_the_event_as_a_list():
    event = {
        "WorkloadAccounts": [f"prod={PROD}", f"live={DEV}"],
        "SubnetId": "subnet-0123456789abcdef0",
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "InstanceProfileName": "scan",
        "EvidenceBucket": BUCKET,
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:t",
        "PipelineRoleArn": f"arn:aws:iam::{BUILD}:role/r",
        "ProdEnvs": ["prod", "live"],
    }
    assert RescanRequest.parse(event).prod_envs == ("prod", "live")
    assert RescanRequest.parse({**event, "ProdEnvs": []}).prod_envs == ()


class _DeniedInspector:
    def get_paginator(self, name):
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, name)


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_an_account_whose_inspector_cannot_be_read_falls_back_to_scan_instances_not_to_a_failure(world):
    image = world.image("al2023")
    world.run(DEV, image, 2)
    world.cover(DEV, image, (("CRITICAL", "CVE-2026-7777"),))  # unreadable: never seen
    world.workload_inspectors[DEV] = _DeniedInspector()
    world.ec2_client = log = LaunchLog(world.ec2)
    result = world.rescan()
    assert log.launches == 1 and result.judged_in_place == [] and result.failures == []
    assert set(result.scanned) == {image}


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_without_workload_accounts_every_env_under_the_target_path_is_rescanned(world):
    running_in_prod = world.image("al2023", publish_it=False)
    world.run(PROD, running_in_prod, 1)
    for env, account in (("dev", DEV), ("prod", PROD)):
        world.ssm.put_parameter(Name=f"/bakehouse/factory/targets/{env}", Value=account, Type="String")
    request = RescanRequest.parse(
        {
            "SubnetId": world.subnet,
            "SecurityGroupIds": [world.sg],
            "InstanceProfileName": "bakehouse-scan",
            "EvidenceBucket": BUCKET,
            "TopicArn": world.topic,
            "WorkloadAccounts": [],
            "PipelineRoleArn": f"arn:aws:iam::{BUILD}:role/BakehouseFactoryAutomation",
        }
    )
    assert request.accounts is None
    result = world.rescan(accounts=None)
    assert running_in_prod in result.scanned


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_malformed_target_parameter_fails_the_rescan_naming_it_before_any_launch(world):
    from handlers.targets import MalformedTarget

    world.image("al2023")
    world.ssm.put_parameter(Name="/bakehouse/factory/targets/prod", Value="prod", Type="String")
    with pytest.raises(MalformedTarget, match="/bakehouse/factory/targets/prod is 'prod'"):
        world.rescan(accounts=None)
    assert world.scan_instances(("pending", "running", "terminated")) == []
