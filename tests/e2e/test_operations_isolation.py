"""Bakehouse-IsolateInstance end to end against a moto server: every playbook step through the
runner with the real handler, the manifest and its hashes, a replay that changes nothing, a missing
instance that pages at once, and a forced failure at every step that still ends contained, stopped,
announced (naming the step) and with the manifest published.

Two moto gaps are filled here, nothing else: Run Command executes the capture's real shell (AVML and
the AWS CLI stubbed on PATH, uploads going to the server with boto3), and GetAutomationExecution
answers from the runner's own record of the execution. OpsCenter is an api fake that keeps the
items it is given (moto has no OpsCenter).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

import handlers.isolate
from tests.e2e.runner import Execution, Runner, StepFailed, moto_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
REGION = "eu-west-1"
ACCOUNT = "123456789012"
SECURITY = "222222222222"
EVIDENCE_KEY = f"arn:aws:kms:{REGION}:{SECURITY}:alias/bakehouse-evidence"
ROLE = "arn:aws:iam::123456789012:role/BakehouseIncidentResponse"
FINDING = "5ac1e0b2d3f4a5b6c7d8e9f0a1b2c3d4"
BUCKET = "bakehouse-evidence-123456789012-eu-west-1"
DOCUMENT = "Bakehouse-IsolateInstance"


@dataclass
class Scene:
    url: str
    instance_id: str
    app_sg: str
    target_group: str
    topic: str
    queue: str
    ami: str = ""
    subnet: str = ""
    profile_arn: str = ""
    ops_items: list[dict[str, Any]] = field(default_factory=list)

    def client(self, service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=self.url)

    def messages(self) -> list[dict[str, Any]]:
        """Every message waiting, each taken off the queue (an undeleted one would come back once its
        visibility timeout ran out, in a later test)."""
        sqs, found = self.client("sqs"), []
        while got := sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", []):
            found += [json.loads(m["Body"]) for m in got]
            sqs.delete_message_batch(
                QueueUrl=self.queue, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
            )
        return found

    def parameters(self, instance_id: str | None = None, finding: str = FINDING) -> dict[str, Any]:
        return {
            "AutomationAssumeRole": ROLE,
            "InstanceId": instance_id or self.instance_id,
            "FindingId": finding,
            "EvidenceBucket": BUCKET,
            "TopicArn": self.topic,
            "CaptureTimeoutSeconds": 60,
            "SecurityAccountId": SECURITY,
            "EvidenceKeyArn": EVIDENCE_KEY,
        }

    def instance(self, instance_id: str | None = None) -> dict[str, Any]:
        return self.client("ec2").describe_instances(InstanceIds=[instance_id or self.instance_id])["Reservations"][0][
            "Instances"
        ][0]

    def new_instance(self) -> str:
        return self.client("ec2").run_instances(
            ImageId=self.ami,
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.micro",
            IamInstanceProfile={"Arn": self.profile_arn},
            NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": self.subnet, "Groups": [self.app_sg]}],
        )["Instances"][0]["InstanceId"]

    def prefix(self, instance_id: str | None = None, finding: str = FINDING) -> str:
        return f"incidents/{finding}/arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance_id or self.instance_id}/"

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
                "PolicyDocument"
            ],
            "tickets": len({json.dumps(i["OperationalData"]["/aws/dedup"]) for i in self.ops_items}),
        }


def _seed(url: str) -> Scene:
    c = lambda s: boto3.client(s, region_name=REGION, endpoint_url=url)  # noqa: E731
    ec2, iam = c("ec2"), c("iam")
    vpc = ec2.create_vpc(CidrBlock="10.16.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.16.1.0/24")["Subnet"]["SubnetId"]
    app_sg = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    ami = ec2.register_image(
        Name="app-image", RootDeviceName="/dev/xvda", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}]
    )["ImageId"]
    iam.create_role(
        RoleName="app",
        Path="/bakehouse/app/",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
            }
        ),
    )
    profile = iam.create_instance_profile(InstanceProfileName="app", Path="/bakehouse/app/")["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName="app", RoleName="app")
    # Groups on the interface: moto reports an interface's groups joined with instance-level ones.
    instance_id = ec2.run_instances(
        ImageId=ami,
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        IamInstanceProfile={"Arn": profile["Arn"]},
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [app_sg]}],
    )["Instances"][0]["InstanceId"]
    template = ec2.create_launch_template(
        LaunchTemplateName="app", LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    asg = c("autoscaling")
    asg.create_auto_scaling_group(
        AutoScalingGroupName="app",
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=0,
        VPCZoneIdentifier=subnet,
        LaunchTemplate={"LaunchTemplateId": template},
    )
    asg.attach_instances(AutoScalingGroupName="app", InstanceIds=[instance_id])
    tg = c("elbv2").create_target_group(Name="app", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance")["TargetGroups"][
        0
    ]["TargetGroupArn"]
    c("elbv2").register_targets(TargetGroupArn=tg, Targets=[{"Id": instance_id, "Port": 80}])
    c("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    c("s3").put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    topic = c("sns").create_topic(Name="bakehouse-security")["TopicArn"]
    queue = c("sqs").create_queue(QueueName="security-inbox")["QueueUrl"]
    arn = c("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    c("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    return Scene(url, instance_id, app_sg, tg, topic, queue, ami, subnet, profile["Arn"])


# --- moto's gaps: Run Command that runs, an execution that can be read, OpsCenter ---------------------
STUB_AVML = """#!/bin/sh
# avml [--compress] <file>: a few bytes of "memory", like the real tool's LiME output file.
for last; do :; done
printf 'LiME-stub-memory-image' > "$last"
"""
STUB_AWS = """#!{python}
# aws s3 cp <file> s3://<bucket>/<key> [...]: the upload the instance's CLI makes, sent to the moto server.
import sys, boto3
_, _, src, dst, *_ = sys.argv[1:] + [""]
bucket, key = dst[len("s3://"):].split("/", 1)
boto3.client("s3").upload_file(src, bucket, key)
"""


class Instances:
    """Stands in for the SSM agent: runs a command's shell with the image's tools on PATH (AVML only
    when the image carries it) and reports its exit as the invocation status."""

    def __init__(self, url: str, root: Path):
        self.url, self.root, self.status, self.with_avml = url, root, {}, True
        tools = root / "bin"
        tools.mkdir(parents=True, exist_ok=True)
        (tools / "aws").write_text(STUB_AWS.format(python=sys.executable))
        (tools / "aws").chmod(0o755)
        (root / "avml").mkdir(exist_ok=True)
        (root / "avml" / "avml").write_text(STUB_AVML)
        (root / "avml" / "avml").chmod(0o755)

    def run(self, commands: list[str]) -> int:
        path = [str(self.root / "bin"), *([str(self.root / "avml")] if self.with_avml else []), "/usr/bin", "/bin"]
        env = {
            "PATH": os.pathsep.join(path),
            "AWS_ENDPOINT_URL": self.url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        return subprocess.run(["bash", "-c", "\n".join(commands)], env=env, capture_output=True, timeout=60).returncode


class Ssm:
    """The server's SSM client with the two calls moto cannot answer truthfully."""

    def __init__(self, real, instances: Instances, runner: Runner):
        self._real, self._instances, self._runner = real, instances, runner

    def __getattr__(self, name: str):
        return getattr(self._real, name)

    def send_command(self, **kw):
        sent = self._real.send_command(**kw)
        self._instances.status[sent["Command"]["CommandId"]] = (
            "Success" if self._instances.run(kw["Parameters"]["commands"]) == 0 else "Failed"
        )
        return sent

    def get_command_invocation(self, **kw):
        return {**self._real.get_command_invocation(**kw), "Status": self._instances.status.get(kw["CommandId"], "Success")}

    def get_automation_execution(self, AutomationExecutionId: str):  # noqa: N803 - boto3's keyword
        [execution] = [e for e in self._runner.executions if e.execution_id == AutomationExecutionId]
        return {
            "AutomationExecution": {
                "StepExecutions": [
                    {"StepName": s.name, "StepStatus": s.status, **({"FailureMessage": s.error} if s.error else {})}
                    for s in execution.steps
                ]
            }
        }


@dataclass
class World:
    scene: Scene
    runner: Runner
    instances: Instances

    def run(self, parameters: dict[str, Any]) -> Execution:
        return self.runner.run(DOCUMENT, parameters)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp, moto_server() as url:
        mp.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # 1,300 stock AMIs would slow every describe
        scene = _seed(url)
        runner = Runner(url, region=REGION)
        instances = Instances(url, tmp_path_factory.mktemp("instance"))
        cached: dict[str, Any] = {"ssm": Ssm(scene.client("ssm"), instances, runner)}
        # One client per service for the whole run: a fresh one per step would parse its model again.
        mp.setattr(
            handlers.isolate,
            "client",
            lambda service, region=None, session=None: cached.setdefault(service, scene.client(service)),
        )

        def create_ops_item(params: dict[str, Any]) -> dict[str, Any]:
            dedup = params["OperationalData"]["/aws/dedup"]
            same = [i for i in scene.ops_items if i["OperationalData"]["/aws/dedup"] == dedup]
            if not same:
                scene.ops_items.append({**params, "OpsItemId": f"oi-{len(scene.ops_items) + 1:012x}"})
            return {"OpsItemId": (same or scene.ops_items[-1:])[0]["OpsItemId"]}

        runner.api_fakes[("ssm", "CreateOpsItem")] = create_ops_item
        yield World(scene, runner, instances)


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


DOCUMENT_STEPS = [
    "ReadInstance",
    "RecordInstanceState",
    "EnableTerminationProtection",
    "DetachFromAutoScalingGroup",
    "DeregisterFromTargetGroups",
    "CaptureMemory",
    "SwapSecurityGroups",
    "RevokeRoleSessions",
    "SnapshotVolumes",
    "StopInstance",
    "ShareSnapshots",
    "PublishManifest",
    "OpenTicket",
    "ReportOutcome",
]


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
def test_a_forced_failure_still_ends_contained_stopped_announced_and_published(run, world, failing):
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


def test_a_low_severity_guardduty_finding_starts_nothing(run, from_guardduty):
    from tests.fakes.guardduty import finding_entry

    assert from_guardduty(finding_entry(run.scene.instance_id, 2.0)) == []


def test_a_high_severity_guardduty_finding_isolates_the_instance_it_names(run, world, from_guardduty):
    from tests.fakes.guardduty import finding_entry

    scene = run.scene
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
