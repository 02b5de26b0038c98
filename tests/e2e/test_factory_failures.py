"""The factory documents on their unhappy paths, each run alone against one moto server: a failed
provisioning, findings above the threshold, the approval gate, an unapproved distribution."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from botocore.exceptions import ClientError

from handlers.common import tags_to_dict
from tests.e2e import _seams
from tests.e2e._factory import ACCOUNTS, APPROVER, ROLE_ARN, RecordingApprover, make_runner, region_keys, validation_parameters
from tests.e2e._world import BundleShell, World, seed, set_public_parameter
from tests.e2e.runner import Execution, Runner, moto_server

SETTINGS = "/bakehouse/factory/settings"
UBUNTU_2404_PARAMETER = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass
class Factory:
    world: World
    runner: Runner
    shell: BundleShell
    approver: RecordingApprover
    seams: _seams.Seams
    keys: dict[str, str]

    def build(self, family: str) -> Execution:
        return self.runner.run(
            "Bakehouse-BuildImage",
            {**self.world.build_parameters(ROLE_ARN, family), "NotificationTopicArn": self.world.topic_arn},
        )

    def validate(self, image_id: str, family: str, threshold: str = "HIGH") -> Execution:
        return self.runner.run("Bakehouse-ValidateImage", validation_parameters(self.world, image_id, family, threshold))

    def approve(self, image_id: str, family: str, environment: str, auto: bool, **caller: object) -> Execution:
        """The settings say who approves (the stack writes them); the caller gives only the image."""
        self.write_settings(environment, auto)
        return self.runner.run(
            "Bakehouse-ApproveImage", {"AutomationAssumeRole": ROLE_ARN, "ImageId": image_id, "Family": family, **caller}
        )

    def write_settings(self, environment: str, auto: bool, approvers: tuple[str, ...] = (APPROVER,)) -> None:
        self.world.client("ssm").put_parameter(
            Name=SETTINGS,
            Type="String",
            Overwrite=True,
            Value=json.dumps(
                {
                    "approval": {
                        "environment": environment,
                        "autoApprove": auto,
                        "approvers": list(approvers),
                        "topicArn": self.world.topic_arn,
                    }
                }
            ),
        )

    def validated(self, family: str) -> str:
        """A fresh image as validation leaves it (publish requires the PASS verdict)."""
        image = self.build(family).outputs["DescribeBuiltImage.ImageId"]
        self.world.client("ec2").create_tags(Resources=[image], Tags=[{"Key": "bakehouse:inspector-verdict", "Value": "PASS"}])
        return image

    def image_tags(self, image_id: str) -> dict[str, str]:
        return tags_to_dict(self.world.client("ec2").describe_images(ImageIds=[image_id])["Images"][0].get("Tags"))

    def instances(self, execution: Execution, step: str) -> list[dict]:
        """The step's instances, found by the execution tag they were launched with."""
        tag = {"LaunchBuildInstance": "bakehouse:build-execution", "LaunchTestInstance": "bakehouse:validation-execution"}[step]
        found = self.world.client("ec2").describe_instances(Filters=[{"Name": f"tag:{tag}", "Values": [execution.execution_id]}])[
            "Reservations"
        ]
        return [i for r in found for i in r["Instances"]]

    def latest(self, family: str) -> str | None:
        try:
            return self.world.client("ssm").get_parameter(Name=f"/bakehouse/images/{family}/latest")["Parameter"]["Value"]
        except ClientError:
            return None


@pytest.fixture(scope="module")
def factory() -> Iterator[Factory]:
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        world = seed(url)
        shell, approver = BundleShell(world), RecordingApprover()
        made = Factory(world, make_runner(world, shell, approver), shell, approver, _seams.install(mp, world), region_keys(world))
        # The build stack writes the settings before anything runs; no test relies on another to write them.
        made.write_settings("uat", False)
        yield made


@pytest.fixture(scope="module")
def built(factory) -> str:
    """An image as a passed validation leaves it, whichever test runs first (some validate it again)."""
    execution = factory.build("gate-checks")
    assert execution.status == "Success", execution.failure
    image = execution.outputs["DescribeBuiltImage.ImageId"]
    factory.world.client("ec2").create_tags(Resources=[image], Tags=[{"Key": "bakehouse:inspector-verdict", "Value": "PASS"}])
    return image


def test_failed_provisioning_terminates_the_build_instance_and_leaves_no_image(factory):
    factory.shell.fail_folders.add("scripts")
    try:
        execution = factory.build("broken-build")
    finally:
        factory.shell.fail_folders.discard("scripts")
    assert execution.status == "Failed"
    assert execution.step("RunProvisioningScripts").status == "Failed"
    assert execution.step_names[-1] == "CleanUpFailedBuild"
    assert not execution.ran("CreateImage")
    assert {i["State"]["Name"] for i in factory.instances(execution, "LaunchBuildInstance")} == {"terminated"}
    images = factory.world.client("ec2").describe_images(
        Owners=["self"], Filters=[{"Name": "tag:bakehouse:family", "Values": ["broken-build"]}]
    )["Images"]
    assert images == []


def test_ubuntu_family_builds_from_the_canonical_public_parameter(factory):
    w = factory.world
    ubuntu = w.client("ec2").register_image(
        Name="ubuntu-noble-24.04-amd64-server",
        RootDeviceName="/dev/sda1",
        Architecture="x86_64",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}],
    )["ImageId"]
    set_public_parameter(UBUNTU_2404_PARAMETER, ubuntu, w.region)
    execution = factory.runner.run(
        "Bakehouse-BuildImage",
        {
            **w.build_parameters(ROLE_ARN, "ubuntu-base"),
            "BaseImageParameter": UBUNTU_2404_PARAMETER,
            "NotificationTopicArn": w.topic_arn,
        },
    )
    assert execution.status == "Success", execution.failure
    assert execution.step("LaunchBuildInstance").inputs["ImageId"] == ubuntu
    image = w.client("ec2").describe_images(ImageIds=[execution.outputs["DescribeBuiltImage.ImageId"]])["Images"][0]
    assert tags_to_dict(image["Tags"])["bakehouse:source-ami"] == ubuntu
    assert ubuntu != w.base_ami


def test_a_quarantined_image_is_rebuilt_instead_of_reused(factory):
    first = factory.build("quarantine-check").outputs["DescribeBuiltImage.ImageId"]
    assert factory.build("quarantine-check").outputs["DescribeBuiltImage.ImageId"] == first  # plain replay reuses
    # What the operations rescan does to an image with findings above the threshold.
    factory.world.client("ec2").create_tags(Resources=[first], Tags=[{"Key": "bakehouse:vulnerable", "Value": "true"}])
    rebuilt = factory.build("quarantine-check")
    assert rebuilt.status == "Success", rebuilt.failure
    assert rebuilt.ran("LaunchBuildInstance")
    second = rebuilt.outputs["DescribeBuiltImage.ImageId"]
    assert second != first
    assert factory.build("quarantine-check").outputs["DescribeBuiltImage.ImageId"] == second


def test_findings_above_the_threshold_fail_validation_and_keep_the_evidence(factory, built):
    factory.seams.inspector.findings_by_image[built] = ["CRITICAL", "LOW"]
    try:
        execution = factory.validate(built, "gate-checks", threshold="HIGH")
    finally:
        factory.seams.inspector.findings_by_image.pop(built)
    assert execution.status == "Failed"
    assert "FindingsAboveThreshold" in execution.step("SummarizeInspectorFindings").error
    assert execution.step_names[-1] == "TerminateTestInstance"
    assert {i["State"]["Name"] for i in factory.instances(execution, "LaunchTestInstance")} == {"terminated"}
    s3 = factory.world.client("s3")
    key = f"inspector/gate-checks/{built}/{execution.execution_id}.json"
    summary = json.loads(s3.get_object(Bucket=factory.world.findings_bucket, Key=key)["Body"].read())
    assert summary["verdict"] == "FAIL" and summary["blocking"] == {"CRITICAL": 1}
    image = factory.world.client("ec2").describe_images(ImageIds=[built])["Images"][0]
    assert tags_to_dict(image["Tags"])["bakehouse:inspector-verdict"] == "FAIL"
    # Inspector was polled until the scan landed, not read once.
    assert len(factory.seams.inspector.calls_to("list_coverage")) >= 2


def test_findings_below_the_threshold_pass_validation(factory, built):
    factory.seams.inspector.findings_by_image[built] = ["MEDIUM"]
    try:
        execution = factory.validate(built, "gate-checks", threshold="HIGH")
    finally:
        factory.seams.inspector.findings_by_image.pop(built)
    assert execution.status == "Success", execution.failure
    assert execution.outputs["SummarizeInspectorFindings.Verdict"] == "PASS"
    assert {i["State"]["Name"] for i in factory.instances(execution, "LaunchTestInstance")} == {"terminated"}


def test_auto_approve_outside_dev_in_the_settings_still_asks_the_approvers(factory, built):
    asked = len(factory.approver.requests)
    execution = factory.approve(built, "prod-gate", environment="prod", auto=True)
    assert execution.status == "Success", execution.failure
    assert execution.step_names == [
        "ReadApprovalSettings",
        "ChooseApprovalPath",
        "RequestApproval",
        "RecordApprover",
        "ReadRecordedApprover",
        "PublishImage",
    ]
    [request] = factory.approver.requests[asked:]
    assert request.notification_arn == factory.world.topic_arn and request.approvers == (APPROVER,)
    assert built in request.message
    assert factory.latest("prod-gate") == built


def test_rejected_approval_publishes_nothing(factory):
    image = factory.validated("rejected-gate")
    factory.approver.approve = False
    try:
        execution = factory.approve(image, "rejected-gate", environment="uat", auto=False)
    finally:
        factory.approver.approve = True
    assert execution.status == "Failed"
    assert execution.step("RequestApproval").status == "Failed"
    assert not execution.ran("PublishImage")
    assert factory.latest("rejected-gate") is None
    assert "bakehouse:approver" not in factory.image_tags(image)


def test_distribution_refuses_an_image_nobody_approved(factory):
    unapproved = factory.build("unapproved")
    image = unapproved.outputs["DescribeBuiltImage.ImageId"]
    execution = factory.runner.run(
        "Bakehouse-DistributeImage",
        {
            "AutomationAssumeRole": ROLE_ARN,
            "ImageId": image,
            "Family": "unapproved",
            "Regions": factory.keys,
            "Accounts": [dict(a) for a in ACCOUNTS],
            "ShareWith": [_seams.WORKLOAD_OU],
            "PollSeconds": 0,
        },
    )
    assert execution.status == "Failed"
    assert execution.step_names == ["AssertImageApproved"]
    for region in factory.keys:
        copies = factory.world.client("ec2", region).describe_images(
            Owners=["self"], Filters=[{"Name": "tag:bakehouse:source-ami", "Values": [image]}]
        )["Images"]
        assert copies == []


def test_the_caller_cannot_choose_the_approvers_or_auto_approval(factory, built):
    execution = factory.approve(
        built,
        "caller-gate",
        environment="prod",
        auto=False,
        ApprovalEnvironment="dev",
        AutoApprove=True,
        Approvers=["arn:aws:iam::123456789012:user/me"],
    )
    assert execution.status == "Failed" and execution.steps == []
    assert "unknown parameter" in execution.failure
    assert factory.latest("caller-gate") is None


def test_the_approvers_asked_are_the_ones_the_settings_name(factory):
    built = factory.validated("settings-gate")
    settings_approver = "arn:aws:iam::123456789012:role/BakehouseImageApprover"
    factory.write_settings("uat", False, approvers=(settings_approver,))
    asked = len(factory.approver.requests)
    execution = factory.runner.run(
        "Bakehouse-ApproveImage", {"AutomationAssumeRole": ROLE_ARN, "ImageId": built, "Family": "settings-gate"}
    )
    assert execution.status == "Success", execution.failure
    [request] = factory.approver.requests[asked:]
    assert request.approvers == (settings_approver,) and request.notification_arn == factory.world.topic_arn


def test_the_recorded_approver_is_the_human_principal_aws_approve_reports(factory):
    image = factory.validated("named-approver")
    execution = factory.approve(image, "named-approver", environment="prod", auto=False)
    assert execution.status == "Success", execution.failure
    tags = factory.image_tags(image)
    assert tags["bakehouse:approver"] == APPROVER
    assert tags["bakehouse:approved-by"] == APPROVER
    assert execution.execution_id not in tags["bakehouse:approved-by"]


def test_a_rerun_does_not_ask_again_for_an_image_already_approved(factory):
    image = factory.validated("rerun-gate")
    assert factory.approve(image, "rerun-gate", environment="prod", auto=False).status == "Success"
    asked = len(factory.approver.requests)
    factory.approver.approve = False  # a second question would now be rejected
    try:
        rerun = factory.approve(image, "rerun-gate", environment="prod", auto=False)
    finally:
        factory.approver.approve = True
    assert rerun.status == "Success", rerun.failure
    assert not rerun.ran("RequestApproval") and len(factory.approver.requests) == asked
    assert factory.image_tags(image)["bakehouse:approved-by"] == APPROVER


def test_dev_auto_approval_from_the_settings_records_that_no_human_was_asked(factory):
    image = factory.validated("auto-gate")
    asked = len(factory.approver.requests)
    execution = factory.approve(image, "auto-gate", environment="dev", auto=True)
    assert execution.status == "Success", execution.failure
    assert not execution.ran("RequestApproval") and len(factory.approver.requests) == asked
    assert factory.image_tags(image)["bakehouse:approved-by"] == "auto-approval:dev"


def test_without_the_stack_settings_nothing_is_approved(factory, built):
    factory.world.client("ssm").delete_parameter(Name=SETTINGS)
    execution = factory.runner.run(
        "Bakehouse-ApproveImage", {"AutomationAssumeRole": ROLE_ARN, "ImageId": built, "Family": "no-settings"}
    )
    assert execution.status == "Failed"
    assert "SettingsUnusable" in execution.step("ReadApprovalSettings").error
    assert factory.latest("no-settings") is None
