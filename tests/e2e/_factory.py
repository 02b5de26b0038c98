"""The factory's end-to-end setup: a seeded world, a runner wired with the test's stand-ins, and
the parameters a build stack would pass to the Pipeline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ._actions import ApprovalDecision, ApprovalRequest
from ._seams import WORKLOAD_OU
from ._world import ACCOUNT_ID, TARGET_ACCOUNTS, BundleShell, World, ssm_agent_online
from .runner import Runner

ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/BakehouseFactoryAutomation"
APPROVER = f"arn:aws:iam::{ACCOUNT_ID}:role/BakehouseApprover"
DISTRIBUTION_REGIONS = ("eu-central-1", "us-east-1")
# What the seeded /bakehouse/factory/targets/<env> parameters name; the Pipeline is given no Accounts.
ACCOUNTS = tuple({"AccountId": account, "Env": env} for env, account in TARGET_ACCOUNTS.items())


@dataclass
class RecordingApprover:
    approve: bool = True
    requests: list[ApprovalRequest] = field(default_factory=list)

    def __call__(self, request: ApprovalRequest) -> ApprovalDecision:
        self.requests.append(request)
        return ApprovalDecision(self.approve, approver=APPROVER, comment="e2e")


def region_keys(world: World) -> dict[str, str]:
    """The factory key in every distribution region (the build stack creates one per region); the home
    region is listed too, with its own key, so workload accounts there get the share and the parameter."""
    keys = {r: world.client("kms", r).create_key(Description=f"factory {r}")["KeyMetadata"]["Arn"] for r in DISTRIBUTION_REGIONS}
    return {world.region: world.kms_key_arn, **keys}


def create_image_tagging_snapshots(world: World):
    """CreateImage as EC2 does it: TagSpecifications may tag the image and its snapshots (EC2 API
    reference, CreateImage TagSpecifications); moto 5 raises NotImplementedError for `snapshot`."""

    def create(params: dict[str, Any]) -> dict[str, Any]:
        specs = params.pop("TagSpecifications", [])
        ec2 = world.client("ec2")
        images = [s for s in specs if s["ResourceType"] == "image"]
        image_id = ec2.create_image(**params, **({"TagSpecifications": images} if images else {}))["ImageId"]
        snapshots = [
            m["Ebs"]["SnapshotId"]
            for m in ec2.describe_images(ImageIds=[image_id])["Images"][0].get("BlockDeviceMappings", [])
            if m.get("Ebs", {}).get("SnapshotId")
        ]
        for spec in (s for s in specs if s["ResourceType"] == "snapshot"):
            if snapshots:
                ec2.create_tags(Resources=snapshots, Tags=spec["Tags"])
        return {"ImageId": image_id}

    return create


def make_runner(world: World, shell: BundleShell, approver: RecordingApprover) -> Runner:
    runner = Runner(world.endpoint_url, region=world.region, command_executor=shell, approver=approver)
    runner.api_fakes[("ssm", "DescribeInstanceInformation")] = ssm_agent_online(world)
    runner.api_fakes[("ec2", "CreateImage")] = create_image_tagging_snapshots(world)
    return runner


SETTINGS_PARAMETER = "/bakehouse/factory/settings"


def write_approval_settings(
    world: World, environment: str = "dev", auto_approve: bool = True, approvers: tuple[str, ...] = (APPROVER,)
) -> None:
    """The `approval` object the build stack writes into the settings (components/build/image_factory.py);
    Bakehouse-ApproveImage reads it, never the caller's parameters."""
    world.client("ssm").put_parameter(
        Name=SETTINGS_PARAMETER,
        Type="String",
        Overwrite=True,
        Value=json.dumps(
            {
                "approval": {
                    "environment": environment,
                    "autoApprove": auto_approve,
                    "approvers": list(approvers),
                    "topicArn": world.topic_arn,
                }
            }
        ),
    )


def pipeline_parameters(
    world: World,
    keys: dict[str, str],
    product_id: str,
    family: str = "al2023-base",
    environment: str = "dev",
    auto_approve: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """The Pipeline's parameters as the settings hand them over; who approves goes to the settings."""
    write_approval_settings(world, environment, auto_approve)
    params = world.build_parameters(ROLE_ARN, family)
    params.update(
        FindingsBucket=world.findings_bucket,
        SeverityThreshold="HIGH",
        # No Accounts: the handlers read the targets the build stack wrote (handlers/targets.py).
        Regions=keys,
        ShareWith=[WORKLOAD_OU],
        PollSeconds=0,
        CatalogProductId=product_id,
        MaxCatalogVersions=3,
        NotificationTopicArn=world.topic_arn,
    )
    params.update(overrides)
    return params


def packer_built_image(world: World, family: str, commit: str) -> str:
    """What `packer build -only=amazon-ebs.golden` leaves: an encrypted AMI of this account with the
    provenance tags of packer/sources.pkr.hcl (`bakehouse:built-by = packer`)."""
    ec2 = world.client("ec2")
    instance = ec2.run_instances(
        ImageId=world.base_ami, MinCount=1, MaxCount=1, SubnetId=world.subnet_id, InstanceType="t3.medium"
    )["Instances"][0]["InstanceId"]
    image = ec2.create_image(InstanceId=instance, Name=f"bakehouse-{family}-20261130T090000Z")["ImageId"]
    ec2.terminate_instances(InstanceIds=[instance])
    ec2.create_tags(
        Resources=[image],
        Tags=[
            {"Key": k, "Value": v}
            for k, v in {
                "bakehouse:family": family,
                "bakehouse:source-ami": world.base_ami,
                "bakehouse:commit": commit,
                "bakehouse:build-date": "20261130T090000Z",
                "bakehouse:build-execution": "packer-20261130T090000Z",
                "bakehouse:built-by": "packer",
            }.items()
        ],
    )
    return image


def validation_parameters(world: World, image_id: str, family: str, threshold: str = "HIGH") -> dict[str, Any]:
    """Bakehouse-ValidateImage's parameters for an image of this world, as the Pipeline passes them."""
    return {
        "AutomationAssumeRole": ROLE_ARN,
        "ImageId": image_id,
        "Family": family,
        "SubnetId": world.subnet_id,
        "SecurityGroupIds": [world.security_group_id],
        "InstanceProfileName": world.instance_profile,
        "ScriptsBucket": world.scripts_bucket,
        "ScriptsVersionId": world.scripts_version,
        "ScriptsCommit": world.commit,
        "FindingsBucket": world.findings_bucket,
        "SeverityThreshold": threshold,
        "PollSeconds": 0,
    }
