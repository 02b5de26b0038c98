"""Memory capture in the golden image, end to end (issue 16.3): BuildImage reads the AVML pins the
release recorded on the bundle version, stages exactly that AVML object version beside the scripts,
hands the pins to provisioning and tags the image and its snapshots with them; a bundle without pins,
or an AVML object whose digest is not the pin, builds nothing and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from handlers.common import tags_to_dict
from tests.e2e import _seams
from tests.e2e._factory import ROLE_ARN, RecordingApprover, make_runner
from tests.e2e._world import AVML_PINS, BundleShell, World, bundle_bytes, seed
from tests.e2e.runner import Execution, Runner, moto_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@dataclass
class Scene:
    world: World
    runner: Runner
    shell: BundleShell

    def build(self, family: str, scripts_version: str | None = None) -> Execution:
        params = {**self.world.build_parameters(ROLE_ARN, family), "NotificationTopicArn": self.world.topic_arn}
        if scripts_version:
            params["ScriptsVersionId"] = scripts_version
        return self.runner.run("Bakehouse-BuildImage", params)

    def bundle_version(self, metadata: dict[str, str]) -> str:
        """Another upload of the bundle (same commit) carrying `metadata` beside the commit."""
        w = self.world
        return w.client("s3").put_object(
            Bucket=w.scripts_bucket,
            Key=w.scripts_key,
            Body=bundle_bytes(),
            Metadata={"commit": w.commit, **metadata},
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=w.kms_key_arn,
        )["VersionId"]

    def running(self, execution: Execution) -> list[str]:
        found = self.world.client("ec2").describe_instances(
            Filters=[{"Name": "tag:bakehouse:build-execution", "Values": [execution.execution_id]}]
        )["Reservations"]
        return [i["InstanceId"] for r in found for i in r["Instances"] if i["State"]["Name"] != "terminated"]

    def images(self, execution: Execution) -> list[dict]:
        return self.world.client("ec2").describe_images(
            Owners=["self"], Filters=[{"Name": "name", "Values": [f"*{execution.execution_id}*"]}]
        )["Images"]


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        world = seed(url)
        _seams.install(mp, world)
        shell = BundleShell(world)
        yield Scene(world, make_runner(world, shell, RecordingApprover()), shell)


def test_a_factory_build_tags_the_image_and_its_snapshots_with_the_avml_version_and_sha256(scene):
    run = scene.build("avml-tagged")
    assert run.status == "Success", run.failure
    ec2 = scene.world.client("ec2")
    [image] = ec2.describe_images(ImageIds=[run.outputs["DescribeBuiltImage.ImageId"]])["Images"]
    tags = tags_to_dict(image["Tags"])
    assert tags["bakehouse:avml-version"] == AVML_PINS["version"] == scene.world.avml_version
    assert tags["bakehouse:avml-sha256"] == AVML_PINS["sha256"] == scene.world.avml_sha256
    snapshots = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if m.get("Ebs", {}).get("SnapshotId")]
    assert snapshots
    for snapshot in ec2.describe_snapshots(SnapshotIds=snapshots)["Snapshots"]:
        assert tags_to_dict(snapshot["Tags"])["bakehouse:avml-sha256"] == AVML_PINS["sha256"]


def test_provisioning_stages_the_pinned_avml_object_and_passes_its_pins(scene):
    run = scene.build("avml-staged")
    assert run.status == "Success", run.failure
    provisioning = run.step("RunProvisioningScripts")
    commands = "\n".join(provisioning.inputs["Parameters"]["commands"])
    assert f"--key 'tools/avml/{AVML_PINS['version']}/avml'" in commands
    assert f"BAKEHOUSE_AVML_SHA256='{AVML_PINS['sha256']}'" in commands
    assert f"BAKEHOUSE_AVML_VERSION='{AVML_PINS['version']}'" in commands


def test_a_bundle_released_without_avml_pins_launches_nothing(scene):
    run = scene.build("avml-unpinned", scene.bundle_version({}))
    assert run.status == "Failed" and run.step("ReadMemoryCapturePins").status == "Failed"
    assert not run.ran("LaunchBuildInstance")
    assert scene.running(run) == [] and scene.images(run) == []


def test_an_avml_object_whose_sha256_is_not_the_pin_fails_provisioning_and_leaves_nothing(scene):
    w = scene.world
    tampered = w.client("s3").put_object(
        Bucket=w.scripts_bucket, Key=f"tools/avml/{AVML_PINS['version']}/avml", Body=b"not the pinned build"
    )["VersionId"]
    version = scene.bundle_version(
        {"avmlversion": AVML_PINS["version"], "avmlsha256": AVML_PINS["sha256"], "avmlobjectversion": tampered}
    )
    run = scene.build("avml-tampered", version)
    assert run.status == "Failed" and run.step("RunProvisioningScripts").status == "Failed"
    assert "not installed" in (run.step("RunProvisioningScripts").error or "")
    assert scene.running(run) == [] and scene.images(run) == []
