"""Bakehouse-IsolateInstance's end-to-end world: a moto server with an app instance in an auto scaling group
and behind a target group, and the runner with the real handler. Each test module gets its own world
(moto keeps its backends per process): test_operations_isolation.py reads what the first run left,
test_operations_isolation_forced.py forces failures and starts runs from GuardDuty findings.

Two moto gaps are filled here, nothing else: Run Command executes the capture's real shell (AVML and
the AWS CLI stubbed on PATH, uploads going to the server with boto3), and GetAutomationExecution
answers from the runner's own record of the execution. OpsCenter is an api fake that keeps the
items it is given (moto has no OpsCenter).
"""

from __future__ import annotations

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
from tests.e2e.runner import Execution, Runner, moto_server

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
# A PutObject over plain HTTP, as moto's server takes it: a boto3 stub cost half a second of CPU per call
# (interpreter, SDK import, S3 model), twice per capture.
STUB_AWS = """#!{python} -S
# aws s3 cp <file> s3://<bucket>/<key> [...]: the upload the instance's CLI makes, sent to the moto server.
import os, sys, urllib.parse, urllib.request
_, _, src, dst, *_ = sys.argv[1:] + [""]
bucket, key = dst[len("s3://"):].split("/", 1)
with open(src, "rb") as body:
    data = body.read()
url = f"{{os.environ['AWS_ENDPOINT_URL']}}/{{bucket}}/{{urllib.parse.quote(key, safe='/')}}"
headers = {{"Content-Type": "application/octet-stream"}}  # a form type would be parsed away as form data
urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers, method="PUT"), timeout=30).close()
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
