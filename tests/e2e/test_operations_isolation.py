"""Bakehouse-IsolateInstance end to end against a moto server (tests/e2e/_isolation_world.py): every
playbook step through the runner with the real handler, the manifest and its hashes, a replay that changes
nothing, and a missing instance that pages at once. Forced failures: test_operations_isolation_forced.py."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest

import handlers.isolate
from tests.e2e._isolation_world import ACCOUNT, BUCKET, DOCUMENT_STEPS, EVIDENCE_KEY, FINDING, REGION, SECURITY, Scene, world
from tests.e2e.runner import Execution

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["world"]  # the module's fixture


@dataclass
class Run:
    scene: Scene
    first: Execution
    first_messages: list[dict[str, Any]]
    before_replay: dict[str, Any]
    replay: Execution
    replay_messages: list[dict[str, Any]]
    after_replay: dict[str, Any]


@pytest.fixture(scope="module")
def run(world) -> Run:
    scene = world.scene
    first = world.run(scene.parameters())
    first_messages = scene.messages()
    before = scene.state()
    replay = world.run(scene.parameters())
    replay_messages = scene.messages()
    return Run(scene, first, first_messages, before, replay, replay_messages, scene.state())


def test_isolation_document_runs_every_step_in_order(run):
    assert run.first.status == "Success", run.first.failure
    assert run.first.step_names == DOCUMENT_STEPS
    changed = {s.name: s.outputs.get("Changed", True) for s in run.first.steps if s.action == "aws:executeScript"}
    assert [n for n, c in changed.items() if not c] == ["ReadInstance", "ReportOutcome"]


def test_isolation_document_leaves_the_instance_contained(run):
    scene = run.scene
    instance = scene.instance()
    assert instance["State"]["Name"] == "stopped"
    ec2 = scene.client("ec2")
    assert ec2.describe_instance_attribute(InstanceId=scene.instance_id, Attribute="disableApiTermination")[
        "DisableApiTermination"
    ]["Value"]
    [eni] = instance["NetworkInterfaces"]
    [group] = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"][0]["Groups"]
    isolation = ec2.describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"][0]
    assert group["GroupId"] != scene.app_sg and isolation["IpPermissions"] == isolation["IpPermissionsEgress"] == []
    assert (
        scene.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[scene.instance_id])["AutoScalingInstances"] == []
    )
    health = scene.client("elbv2").describe_target_health(TargetGroupArn=scene.target_group)
    assert scene.instance_id not in [h["Target"]["Id"] for h in health["TargetHealthDescriptions"]]
    policy = scene.client("iam").get_role_policy(RoleName="app", PolicyName=handlers.isolate.REVOKE_POLICY)
    arn = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{scene.instance_id}"
    assert policy["PolicyDocument"]["Statement"][0]["Condition"]["ArnEquals"]["ec2:SourceInstanceARN"] == [arn]


def test_memory_capture_runs_the_real_command_path_into_the_instance_s_own_prefix(run):
    scene = run.scene
    [command] = scene.client("ssm").list_commands(InstanceId=scene.instance_id)["Commands"]
    assert command["DocumentName"] == "AWS-RunShellScript"
    image = scene.client("s3").get_object(Bucket=BUCKET, Key=scene.prefix() + "memory.lime.compressed")["Body"].read()
    recorded = (
        scene.client("s3")
        .get_object(Bucket=BUCKET, Key=scene.prefix() + "memory.lime.compressed.sha256")["Body"]
        .read()
        .decode()
        .strip()
    )
    assert image == b"LiME-stub-memory-image" and recorded == hashlib.sha256(image).hexdigest()
    assert command["OutputS3KeyPrefix"].startswith(scene.prefix())


def test_snapshots_reach_the_security_account_under_its_evidence_key(run):
    ec2 = run.scene.client("ec2")
    volumes = {m["Ebs"]["VolumeId"] for m in run.scene.instance()["BlockDeviceMappings"]}
    snaps = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:bakehouse:finding-id", "Values": [FINDING]}])
    copies = [s for s in snaps["Snapshots"] if "bakehouse:copy-of" in {t["Key"] for t in s["Tags"]}]
    assert volumes and len(copies) == len(volumes)
    for copy in copies:
        assert copy["Encrypted"] and copy["KmsKeyId"] == EVIDENCE_KEY
        shared = ec2.describe_snapshot_attribute(SnapshotId=copy["SnapshotId"], Attribute="createVolumePermission")
        assert shared["CreateVolumePermissions"] == [{"UserId": SECURITY}]


def test_isolation_manifest_hashes_every_evidence_object_and_reaches_the_topic(run):
    s3 = run.scene.client("s3")
    key = run.first.outputs["PublishManifest.ManifestKey"]
    assert key == run.scene.prefix() + "manifest.json"
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert run.first.outputs["PublishManifest.Objects"] == len(manifest["objects"]) >= 3
    for obj in manifest["objects"]:
        body = s3.get_object(Bucket=BUCKET, Key=obj["key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == obj["sha256"]
    assert manifest["state_record"].endswith("instance-state.json")
    assert manifest["memory_image"].endswith("memory.lime.compressed")
    assert set(manifest["snapshots"].values()) == set(manifest["evidence_copies"])
    assert run.first_messages == [manifest]


def test_the_finding_becomes_one_ops_item_linking_the_evidence(run):
    [item] = run.scene.ops_items
    assert item["OperationalData"]["bakehouse:evidence"]["Value"] == f"s3://{BUCKET}/{run.scene.prefix()}manifest.json"
    assert run.first.outputs["OpenTicket.OpsItemId"] == item["OpsItemId"]


def test_a_second_run_of_the_document_changes_nothing(run):
    assert run.replay.status == "Success", run.replay.failure
    assert [s.name for s in run.replay.steps if s.outputs.get("Changed")] == []
    assert run.after_replay == run.before_replay
    assert run.replay_messages == []


def test_a_missing_instance_pages_at_once_and_changes_nothing(run, world):
    scene = run.scene
    before = scene.state()
    execution = world.run(scene.parameters("i-0123456789abcdef0"))
    assert execution.status == "Failed" and execution.step_names == ["ReadInstance", "ReportOutcome"]
    assert "i-0123456789abcdef0" in execution.failure
    assert scene.state() == before
    [page] = scene.messages()
    assert list(page["failed_steps"]) == ["ReadInstance"]
