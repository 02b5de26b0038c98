"""Bakehouse-IsolateInstance end to end against a moto server: every playbook step through the
runner with the real handler, the manifest and its hashes, a replay that changes nothing, and a
missing instance that fails at the first step with nothing changed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

import handlers.isolate
from tests.e2e.runner import Execution, Runner, moto_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/BakehouseIncidentResponse"
FINDING = "5ac1e0b2d3f4a5b6c7d8e9f0a1b2c3d4"
BUCKET = "bakehouse-evidence-123456789012-eu-west-1"


@dataclass
class Scene:
    url: str
    instance_id: str
    app_sg: str
    target_group: str
    topic: str
    queue: str

    def client(self, service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=self.url)

    def messages(self) -> list[dict[str, Any]]:
        got = self.client("sqs").receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]

    def parameters(self, instance_id: str | None = None) -> dict[str, Any]:
        return {"AutomationAssumeRole": ROLE, "InstanceId": instance_id or self.instance_id, "FindingId": FINDING,
                "EvidenceBucket": BUCKET, "TopicArn": self.topic, "CaptureTimeoutSeconds": 60}

    def instance(self) -> dict[str, Any]:
        return self.client("ec2").describe_instances(InstanceIds=[self.instance_id])["Reservations"][0]["Instances"][0]

    def state(self) -> dict[str, Any]:
        """What a replay must leave as it is."""
        ec2, s3 = self.client("ec2"), self.client("s3")
        return {
            "instance": self.instance()["State"]["Name"],
            "groups": sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]),
            "snapshots": sorted(s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]),
            "objects": sorted((v["Key"], v["VersionId"]) for v in s3.list_object_versions(Bucket=BUCKET)["Versions"]),
            "commands": len(self.client("ssm").list_commands()["Commands"]),
            "policy": self.client("iam").get_role_policy(RoleName="app", PolicyName=handlers.isolate.REVOKE_POLICY)[
                "PolicyDocument"],
        }


def _seed(url: str) -> Scene:
    c = lambda s: boto3.client(s, region_name=REGION, endpoint_url=url)  # noqa: E731
    ec2, iam = c("ec2"), c("iam")
    vpc = ec2.create_vpc(CidrBlock="10.16.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.16.1.0/24")["Subnet"]["SubnetId"]
    app_sg = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    ami = ec2.register_image(Name="app-image", RootDeviceName="/dev/xvda",
                             BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}])["ImageId"]
    iam.create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    profile = iam.create_instance_profile(InstanceProfileName="app")["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName="app", RoleName="app")
    # Groups on the interface: moto reports an interface's groups joined with instance-level ones.
    instance_id = ec2.run_instances(
        ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro", IamInstanceProfile={"Arn": profile["Arn"]},
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [app_sg]}])["Instances"][0]["InstanceId"]
    template = ec2.create_launch_template(LaunchTemplateName="app", LaunchTemplateData={
        "ImageId": ami, "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
    asg = c("autoscaling")
    asg.create_auto_scaling_group(AutoScalingGroupName="app", MinSize=0, MaxSize=2, DesiredCapacity=0,
                                  VPCZoneIdentifier=subnet, LaunchTemplate={"LaunchTemplateId": template})
    asg.attach_instances(AutoScalingGroupName="app", InstanceIds=[instance_id])
    tg = c("elbv2").create_target_group(Name="app", Protocol="HTTP", Port=80, VpcId=vpc,
                                        TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
    c("elbv2").register_targets(TargetGroupArn=tg, Targets=[{"Id": instance_id, "Port": 80}])
    c("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    c("s3").put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    topic = c("sns").create_topic(Name="bakehouse-security")["TopicArn"]
    queue = c("sqs").create_queue(QueueName="security-inbox")["QueueUrl"]
    arn = c("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    c("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return Scene(url, instance_id, app_sg, tg, topic, queue)


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
def run() -> Iterator[Run]:
    with pytest.MonkeyPatch.context() as mp, moto_server() as url:
        mp.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # 1,300 stock AMIs would slow every describe
        scene = _seed(url)
        cached: dict[str, Any] = {}
        # One client per service for the whole run: a fresh one per step would parse its model again.
        mp.setattr(handlers.isolate, "client", lambda service, region=None, session=None:
                   cached.setdefault(service, scene.client(service)))
        runner = Runner(url, region=REGION)
        first = runner.run("Bakehouse-IsolateInstance", scene.parameters())
        first_messages = scene.messages()
        before = scene.state()
        replay = runner.run("Bakehouse-IsolateInstance", scene.parameters())
        replay_messages = scene.messages()
        yield Run(scene, first, first_messages, before, replay, replay_messages, scene.state())


def test_isolation_document_runs_every_step_in_order(run):
    assert run.first.status == "Success", run.first.failure
    assert run.first.step_names == [
        "RecordInstanceState", "EnableTerminationProtection", "DetachFromAutoScalingGroup",
        "DeregisterFromTargetGroups", "CaptureMemory", "SwapSecurityGroups", "SnapshotVolumes",
        "RevokeRoleSessions", "StopInstance", "PublishManifest"]
    assert all(s.outputs.get("Changed", True) for s in run.first.steps if s.action == "aws:executeScript")


def test_isolation_document_leaves_the_instance_contained(run):
    scene = run.scene
    instance = scene.instance()
    assert instance["State"]["Name"] == "stopped"
    ec2 = scene.client("ec2")
    assert ec2.describe_instance_attribute(InstanceId=scene.instance_id,
                                           Attribute="disableApiTermination")["DisableApiTermination"]["Value"]
    [eni] = instance["NetworkInterfaces"]
    [group] = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"][0][
        "Groups"]
    isolation = ec2.describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"][0]
    assert group["GroupId"] != scene.app_sg and isolation["IpPermissions"] == isolation["IpPermissionsEgress"] == []
    assert scene.client("autoscaling").describe_auto_scaling_instances(
        InstanceIds=[scene.instance_id])["AutoScalingInstances"] == []
    health = scene.client("elbv2").describe_target_health(TargetGroupArn=scene.target_group)
    assert scene.instance_id not in [h["Target"]["Id"] for h in health["TargetHealthDescriptions"]]
    snaps = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:bakehouse:finding-id", "Values": [FINDING]}])
    assert {s["VolumeId"] for s in snaps["Snapshots"]} == {m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}
    [command] = scene.client("ssm").list_commands(InstanceId=scene.instance_id)["Commands"]
    assert command["DocumentName"] == "AWS-RunShellScript" and "avml" in " ".join(command["Parameters"]["commands"])
    policy = scene.client("iam").get_role_policy(RoleName="app", PolicyName=handlers.isolate.REVOKE_POLICY)
    assert "aws:TokenIssueTime" in json.dumps(policy["PolicyDocument"])


def test_isolation_manifest_hashes_every_evidence_object_and_reaches_the_topic(run):
    s3 = run.scene.client("s3")
    key = run.first.outputs["PublishManifest.ManifestKey"]
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert run.first.outputs["PublishManifest.Objects"] == len(manifest["objects"]) >= 1
    for obj in manifest["objects"]:
        body = s3.get_object(Bucket=BUCKET, Key=obj["key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == obj["sha256"]
    assert any(o["key"].endswith("instance-state.json") for o in manifest["objects"])
    assert run.first_messages == [manifest]


def test_a_second_run_of_the_document_changes_nothing(run):
    assert run.replay.status == "Success", run.replay.failure
    assert [s.name for s in run.replay.steps if s.outputs.get("Changed")] == []
    assert run.after_replay == run.before_replay
    assert run.replay_messages == []


def test_a_missing_instance_fails_the_first_step_and_changes_nothing(run):
    scene = run.scene
    before = scene.state()
    execution = Runner(scene.url, region=REGION).run("Bakehouse-IsolateInstance",
                                                     scene.parameters("i-0123456789abcdef0"))
    assert execution.status == "Failed" and execution.step_names == ["RecordInstanceState"]
    assert "i-0123456789abcdef0" in execution.failure
    assert scene.state() == before and scene.messages() == []


# --- from a GuardDuty finding to the playbook, through the workload stack's own rule ---------------
def _declared(stack_run, type_: str, name: str) -> dict[str, Any]:
    [resource] = [r for r in stack_run("dev").of_type(type_) if r.name == name]
    return resource.inputs


@pytest.fixture(scope="module")
def from_guardduty(run, stack_run):
    """The dev stack's GuardDuty rule and input transformer, declared on the moto server's bus with a
    queue standing in for the automation target (moto cannot start automations)."""
    scene = run.scene
    events, sqs = scene.client("events"), scene.client("sqs")
    queue = sqs.create_queue(QueueName="isolate-requests")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule = _declared(stack_run, "aws:cloudwatch/eventRule:EventRule", "dev-incident-response-guardduty-ec2")
    target = _declared(stack_run, "aws:cloudwatch/eventTarget:EventTarget", "dev-incident-response-guardduty-isolate")
    events.put_rule(Name="isolate-on-guardduty", EventPattern=rule["eventPattern"])
    transformer = target["inputTransformer"]
    events.put_targets(Rule="isolate-on-guardduty", Targets=[{"Id": "isolate", "Arn": queue_arn, "InputTransformer": {
        "InputPathsMap": transformer["inputPaths"], "InputTemplate": transformer["inputTemplate"]}}])

    def deliver(entry: dict[str, str]) -> list[dict[str, list[str]]]:
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in got]

    return deliver


def test_a_low_severity_guardduty_finding_starts_nothing(run, from_guardduty):
    from tests.fakes.guardduty import finding_entry

    assert from_guardduty(finding_entry(run.scene.instance_id, 2.0)) == []


def test_a_high_severity_guardduty_finding_isolates_the_instance_it_names(run, from_guardduty):
    from tests.fakes.guardduty import finding_entry

    scene = run.scene
    ec2 = scene.client("ec2")
    victim = ec2.run_instances(ImageId=scene.instance()["ImageId"], MinCount=1, MaxCount=1,
                               InstanceType="t3.micro", SubnetId=scene.instance()["SubnetId"])["Instances"][0]["InstanceId"]
    [started] = from_guardduty(finding_entry(victim, 8.0, finding_id="7bd3a1c9e2f84d6a9b0c1d2e3f405162"))
    assert started["InstanceId"] == [victim] and started["FindingId"] == ["7bd3a1c9e2f84d6a9b0c1d2e3f405162"]
    # The dev stack's evidence bucket and topic live in other accounts of the estate; this one-account
    # server stands in with its own. Everything the rule derived from the finding is used as given.
    parameters = {k: v[0] for k, v in started.items()} | {"EvidenceBucket": BUCKET, "TopicArn": scene.topic}
    execution = Runner(scene.url, region=REGION).run("Bakehouse-IsolateInstance", parameters)
    assert execution.status == "Success", execution.failure
    assert ec2.describe_instances(InstanceIds=[victim])["Reservations"][0]["Instances"][0]["State"]["Name"] == "stopped"
    manifest_key = f"incidents/7bd3a1c9e2f84d6a9b0c1d2e3f405162/{victim}/manifest.json"
    assert execution.outputs["PublishManifest.ManifestKey"] == manifest_key
