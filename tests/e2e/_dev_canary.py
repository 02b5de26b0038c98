"""The dev canary's end-to-end world (issue 17.3): Bakehouse-ReleaseImage run on a packer-built candidate
in a seeded moto world with the dev account's launch template. test_dev_canary.py runs it with
validation passing, test_dev_canary_failed.py with validation failing: one world per module, since moto
keeps one set of backends per process and a second live world would reset the first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from handlers import dev_canary
from tests.e2e import _seams
from tests.e2e._factory import ACCOUNTS, RecordingApprover, make_runner, packer_built_image, pipeline_parameters, region_keys
from tests.e2e._world import BundleShell, World, seed
from tests.e2e.runner import Execution, moto_server

FAMILY = "ubuntu2404"
RELEASE = "Bakehouse-ReleaseImage"
DEV = next(a["AccountId"] for a in ACCOUNTS if a["Env"] == "dev")
TARGETS = {a["Env"]: a["AccountId"] for a in ACCOUNTS}
CANDIDATE_PARAMETER = f"/bakehouse/dev/ami-candidate/{FAMILY}"
ALL_STATES = ("pending", "running", "stopping", "stopped", "shutting-down", "terminated")


@dataclass
class Case:
    world: World
    seams: _seams.Seams
    approver: RecordingApprover
    image_id: str
    execution: Execution


def dev_client(world: World, service: str):
    """A client inside the dev account, as moto scopes it: through a role assumed there."""
    creds = world.client("sts").assume_role(RoleArn=f"arn:aws:iam::{DEV}:role/BakehouseReadOnly", RoleSessionName="e2e-canary")[
        "Credentials"
    ]
    return boto3.client(
        service,
        region_name=world.region,
        endpoint_url=world.endpoint_url,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def seed_dev(world: World) -> None:
    """What the dev workload stack declares: a private subnet and the app launch template (IMDSv2)."""
    ec2 = dev_client(world, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.16.0.0/16")["Vpc"]["VpcId"]
    ec2.create_subnet(
        VpcId=vpc,
        CidrBlock="10.16.0.0/24",
        TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "bakehouse:tier", "Value": "private"}]}],
    )
    sg = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    ec2.create_launch_template(
        LaunchTemplateName="bakehouse-dev-app",
        LaunchTemplateData={
            "ImageId": f"resolve:ssm:/bakehouse/dev/ami/{FAMILY}",
            "InstanceType": "t3.micro",
            "SecurityGroupIds": [sg],
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        },
    )
    ssm = world.client("ssm")
    for env, account in TARGETS.items():  # components/build/factory_targets.py
        ssm.put_parameter(Name=f"{dev_canary.TARGETS_PATH}/{env}", Type="String", Value=account, Overwrite=True)


@pytest.fixture(scope="module", autouse=True)
def agents_online() -> Iterator[None]:
    """moto has no DescribeInstanceInformation: in dev, a running canary's agent reports Online. The
    canary's clients are otherwise the handler's own (the publisher role assumed in dev)."""
    real_canary = dev_canary.AwsClients.canary

    def canary(self: Any, account_id: str, service: str) -> Any:
        inner = real_canary(self, account_id, service)
        if service != "ssm":
            return inner
        ec2 = real_canary(self, account_id, "ec2")

        class Ssm:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def describe_instance_information(self, Filters: list[dict]) -> dict:  # noqa: N803 - boto3's name
                ids = [v for f in Filters if f["Key"] == "InstanceIds" for v in f["Values"]]
                found = ec2.describe_instances(InstanceIds=ids)["Reservations"]
                return {
                    "InstanceInformationList": [
                        {"InstanceId": i["InstanceId"], "PingStatus": "Online"}
                        for r in found
                        for i in r["Instances"]
                        if i["State"]["Name"] == "running"
                    ]
                }

        return Ssm()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dev_canary.AwsClients, "canary", canary)
        yield


def run_release(fail_validation: bool) -> Iterator[Case]:
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        world = seed(url)
        keys = region_keys(world)
        seams = _seams.install(mp, world)
        seed_dev(world)
        product_id, _ = seams.seed_catalog_product(FAMILY)
        approver = RecordingApprover()
        shell = BundleShell(world, fail_folders={"validation"} if fail_validation else set())
        runner = make_runner(world, shell, approver)
        image = packer_built_image(world, FAMILY, world.commit)
        params = pipeline_parameters(world, keys, product_id, family=FAMILY, environment="prod", auto_approve=False)
        for build_only in ("BaseImageParameter", "FactoryKmsKeyId"):
            params.pop(build_only, None)
        execution = runner.run(RELEASE, {**params, "ImageId": image})
        yield Case(world, seams, approver, image, execution)


def dev_canaries(case: Case, states: tuple[str, ...]) -> list[dict[str, Any]]:
    found = dev_client(case.world, "ec2").describe_instances(
        Filters=[
            {"Name": "tag:bakehouse:purpose", "Values": ["dev-canary"]},
            {"Name": "instance-state-name", "Values": list(states)},
        ]
    )["Reservations"]
    return [i for r in found for i in r["Instances"]]
