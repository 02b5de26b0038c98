"""Bakehouse-IsolateInstance when a step fails, and when a GuardDuty finding starts it: a forced failure at
every step still ends contained, stopped, announced (naming the step) and with the manifest published;
the dev stack's own rule starts the playbook for a high-severity finding only. A world apart from
test_operations_isolation.py's (tests/e2e/_isolation_world.py), so its reads never see these runs."""

from __future__ import annotations

import json
from typing import Any

import pytest

import handlers.isolate
from tests.e2e._isolation_world import BUCKET, DOCUMENT_STEPS, world
from tests.e2e.runner import StepFailed

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["world"]  # the module's fixture


# --- a forced failure at every step -------------------------------------------------------------------
class Forced(Exception):
    pass


def _fail_handler_step(mp, name: str) -> None:
    def fail(*_, **__):
        raise Forced(f"{name} forced to fail")

    mp.setattr(handlers.isolate, name, fail)


# Document step -> how the test makes it fail (a handler function raising, or the runner's action failing).
FORCE = {
    "RecordInstanceState": "record_state",
    "EnableTerminationProtection": "protect_from_termination",
    "DetachFromAutoScalingGroup": "detach_from_auto_scaling",
    "DeregisterFromTargetGroups": "deregister_from_target_groups",
    "CaptureMemory": "no-avml",
    "SwapSecurityGroups": "swap_security_groups",
    "RevokeRoleSessions": "revoke_role_sessions",
    "SnapshotVolumes": "snapshot_volumes",
    "StopInstance": "vanish",
    "ShareSnapshots": "share_snapshots",
    "PublishManifest": "publish_manifest",
    "OpenTicket": "no-opscenter",
}


def test_every_step_but_the_first_and_the_report_is_forced_to_fail_below():
    assert set(FORCE) == set(DOCUMENT_STEPS) - {"ReadInstance", "ReportOutcome"}


@pytest.mark.parametrize("failing", list(FORCE))
def test_a_forced_failure_still_ends_contained_stopped_announced_and_published(world, failing):
    scene, how = world.scene, FORCE[failing]
    instance_id, finding = scene.new_instance(), f"forced-{failing.lower()}"
    scene.messages()
    with pytest.MonkeyPatch.context() as mp:
        if how == "no-avml":
            mp.setattr(world.instances, "with_avml", False)
        elif how == "no-opscenter":

            def unavailable(params):
                raise StepFailed("ssm:CreateOpsItem failed: ThrottlingException")

            mp.setitem(world.runner.api_fakes, ("ssm", "CreateOpsItem"), unavailable)
        elif how == "vanish":  # the instance is terminated by someone else just before the stop

            def vanish(ctx, inputs):
                ec2 = scene.client("ec2")
                ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": False})
                ec2.terminate_instances(InstanceIds=[instance_id])
                raise StepFailed(f"{instance_id} is terminated")

            mp.setitem(world.runner.actions, "aws:changeInstanceState", vanish)
        else:
            _fail_handler_step(mp, how)
        execution = world.run(scene.parameters(instance_id, finding))
    assert execution.step_names == DOCUMENT_STEPS, execution.step_names
    assert execution.step(failing).status == "Failed"
    state = scene.instance(instance_id)["State"]["Name"]
    assert state == ("terminated" if how == "vanish" else "stopped")
    if failing != "SwapSecurityGroups" and how != "vanish":
        [eni] = scene.instance(instance_id)["NetworkInterfaces"]
        assert (
            scene.client("ec2").describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"][
                0
            ]["Groups"][0]["GroupId"]
            != scene.app_sg
        )
    messages = scene.messages()
    [page] = [m for m in messages if "failed_steps" in m]
    assert list(page["failed_steps"]) == [failing]
    if failing != "PublishManifest":
        key = scene.prefix(instance_id, finding) + "manifest.json"
        manifest = json.loads(scene.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read())
        assert manifest in messages


# --- from a GuardDuty finding to the playbook, through the workload stack's own rule ---------------
def _declared(stack_run, type_: str, name: str) -> dict[str, Any]:
    [resource] = [r for r in stack_run("dev").of_type(type_) if r.name == name]
    return resource.inputs


@pytest.fixture(scope="module")
def from_guardduty(world, stack_run):
    """The dev stack's GuardDuty rule and input transformer, declared on the moto server's bus with a
    queue standing in for the automation target (moto cannot start automations)."""
    scene = world.scene
    events, sqs = scene.client("events"), scene.client("sqs")
    queue = sqs.create_queue(QueueName="isolate-requests")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = _declared(stack_run, "aws:cloudwatch/eventRule:EventRule", "dev-incident-response-guardduty-ec2")
    target = _declared(stack_run, "aws:cloudwatch/eventTarget:EventTarget", "dev-incident-response-guardduty-isolate")
    events.put_rule(Name="isolate-on-guardduty", EventPattern=rule["eventPattern"])
    transformer = target["inputTransformer"]
    events.put_targets(
        Rule="isolate-on-guardduty",
        Targets=[
            {
                "Id": "isolate",
                "Arn": queue_arn,
                "InputTransformer": {"InputPathsMap": transformer["inputPaths"], "InputTemplate": transformer["inputTemplate"]},
            }
        ],
    )

    def deliver(entry: dict[str, str]) -> list[dict[str, list[str]]]:
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in got]

    return deliver


def test_a_low_severity_guardduty_finding_starts_nothing(world, from_guardduty):
    from tests.fakes.guardduty import finding_entry

    assert from_guardduty(finding_entry(world.scene.instance_id, 2.0)) == []


def test_a_high_severity_guardduty_finding_isolates_the_instance_it_names(world, from_guardduty):
    from tests.fakes.guardduty import finding_entry

    scene = world.scene
    ec2 = scene.client("ec2")
    victim = ec2.run_instances(
        ImageId=scene.instance()["ImageId"],
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        SubnetId=scene.instance()["SubnetId"],
    )["Instances"][0]["InstanceId"]
    [started] = from_guardduty(finding_entry(victim, 8.0, finding_id="7bd3a1c9e2f84d6a9b0c1d2e3f405162"))
    assert started["InstanceId"] == [victim] and started["FindingId"] == ["7bd3a1c9e2f84d6a9b0c1d2e3f405162"]
    # The dev stack's evidence bucket and topic live in other accounts of the estate; this one-account
    # server stands in with its own. Everything the rule derived from the finding is used as given.
    parameters = {k: v[0] for k, v in started.items()} | {"EvidenceBucket": BUCKET, "TopicArn": scene.topic}
    execution = world.run(parameters)
    assert execution.status == "Success", execution.failure
    assert ec2.describe_instances(InstanceIds=[victim])["Reservations"][0]["Instances"][0]["State"]["Name"] == "stopped"
    manifest_key = scene.prefix(victim, "7bd3a1c9e2f84d6a9b0c1d2e3f405162") + "manifest.json"
    assert execution.outputs["PublishManifest.ManifestKey"] == manifest_key
