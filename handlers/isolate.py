"""Incident response playbook: contain one EC2 instance and preserve its evidence.

Started by the workload stack's EventBridge rule (GuardDuty EC2 finding, or a manual "isolate"
event) through the IsolateInstance automation. Every step looks before it acts, so a replay of the
same finding on the same instance changes nothing; each step reports whether it changed anything.

Order matters and departs from the order the steps are usually listed in on one point: memory is
captured *before* the security groups are swapped. The isolation group has no rules at all, so
after the swap the instance can no longer reach S3 and a capture would have nowhere to go. The
capture is bounded by a timeout and a failed capture is recorded, not fatal: containment must
still happen.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import boto3
from botocore.exceptions import ClientError

from handlers.common import (
    INSTANCE_ID,
    BakehouseError,
    EventReader,
    client,
    dict_to_tags,
)
from handlers.isolate_evidence import Step, publish_manifest, record_state

FINDING_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}")

TAG_FINDING = "bakehouse:finding-id"
TAG_PURPOSE = "bakehouse:purpose"
ISOLATION_PURPOSE = "isolation"
REVOKE_POLICY = "BakehouseRevokeOlderSessions"
CAPTURE_DOCUMENT = "AWS-RunShellScript"
# AVML ships in the golden image (the isolated instance cannot download anything); it writes a
# compressed LiME image, which the agent's role uploads under the incident's evidence prefix.
AVML_PATH = "/usr/local/bin/avml"
# The playbook's order; see the module docstring for why memory comes before the group swap.
STEPS = ("record-state", "termination-protection", "detach-auto-scaling", "deregister-targets", "capture-memory",
         "swap-security-groups", "snapshot-volumes", "revoke-role-sessions", "stop-instance", "publish-manifest")
TERMINAL_COMMAND_STATES = {"Success", "Failed", "Cancelled", "TimedOut", "Cancelling"}


class InstanceNotFound(BakehouseError):
    def __init__(self, instance_id: str):
        super().__init__(f"instance {instance_id} does not exist in this account and region; nothing was changed")


@dataclass(frozen=True)
class IsolateRequest:
    instance_id: str
    finding_id: str
    evidence_bucket: str
    topic_arn: str
    capture_timeout_seconds: int = 600
    step: str | None = None  # one step only (the automation document runs them one by one)

    @classmethod
    def parse(cls, event: Any) -> IsolateRequest:
        r = EventReader("isolate", event)
        request = cls(
            instance_id=r.string("InstanceId", INSTANCE_ID),
            finding_id=r.string("FindingId", FINDING_ID),
            evidence_bucket=r.string("EvidenceBucket", BUCKET),
            topic_arn=r.string("TopicArn", TOPIC_ARN),
            capture_timeout_seconds=r.integer("CaptureTimeoutSeconds", 0, 3600, default=600),
            step=r.event.get("Step") or None,
        )
        if request.step is not None and request.step not in STEPS:
            r.problems.append(f"Step is {request.step!r}, expected one of {', '.join(STEPS)}")
        r.done()
        return request

    @property
    def prefix(self) -> str:
        return f"incidents/{self.finding_id}/{self.instance_id}/"


@dataclass(frozen=True)
class Clients:
    ec2: Any
    autoscaling: Any
    elbv2: Any
    ssm: Any
    iam: Any
    s3: Any
    sns: Any


@dataclass
class IsolationResult:
    instance_id: str
    finding_id: str
    steps: list[Step]

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "InstanceId": self.instance_id,
            "FindingId": self.finding_id,
            "Changed": self.changed,
            "Steps": [asdict(s) for s in self.steps],
        }


class LazyClients:
    """The same attributes as Clients, each created on first use from one session: a single step
    of the document needs one or two services, and every client costs a model load."""

    def __init__(self, make: Callable[[str], Any]):
        self._make, self._made = make, {}

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_") or service not in Clients.__dataclass_fields__:
            raise AttributeError(service)
        if service not in self._made:
            self._made[service] = self._make(service)
        return self._made[service]


def handler(event: dict, context: Any) -> dict:
    request = IsolateRequest.parse(event)
    session = boto3.Session()
    return isolate(request, LazyClients(lambda name: client(name, session=session))).as_dict()


def isolate(
    request: IsolateRequest,
    clients: Clients,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    sleep: Callable[[float], None] = time.sleep,
) -> IsolationResult:
    instance = describe_instance(clients.ec2, request.instance_id)  # fails before any change
    run = {
        "record-state": lambda: record_state(clients.s3, request, instance),
        "termination-protection": lambda: protect_from_termination(clients.ec2, request.instance_id),
        "detach-auto-scaling": lambda: detach_from_auto_scaling(clients.autoscaling, request.instance_id),
        "deregister-targets": lambda: deregister_from_target_groups(clients.elbv2, instance),
        "capture-memory": lambda: capture_memory(clients.ssm, request, instance, sleep),
        "swap-security-groups": lambda: swap_security_groups(clients.ec2, request, instance),
        "snapshot-volumes": lambda: snapshot_volumes(clients.ec2, request, instance),
        "revoke-role-sessions": lambda: revoke_role_sessions(clients.iam, request, instance, now()),
        "stop-instance": lambda: stop_instance(clients.ec2, request.instance_id),
        "publish-manifest": lambda: publish_manifest(clients.s3, clients.sns, request,
                                                     observe(clients, request, instance)),
    }
    names = [request.step] if request.step else STEPS
    return IsolationResult(request.instance_id, request.finding_id, [run[name]() for name in names])


def describe_instance(ec2, instance_id: str) -> dict[str, Any]:
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as err:
        if err.response["Error"]["Code"] in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
            raise InstanceNotFound(instance_id) from err
        raise
    instances = [i for r in reservations for i in r["Instances"]]
    if not instances or instances[0]["State"]["Name"] in ("terminated", "shutting-down"):
        raise InstanceNotFound(instance_id)
    return instances[0]


def protect_from_termination(ec2, instance_id: str) -> Step:
    current = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")
    if current["DisableApiTermination"]["Value"]:
        return Step("termination-protection", False)
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": True})
    return Step("termination-protection", True)


def detach_from_auto_scaling(autoscaling, instance_id: str) -> Step:
    found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
    if not found:
        return Step("detach-auto-scaling", False)
    group = found[0]["AutoScalingGroupName"]
    # Keep the desired capacity: the group launches a clean replacement, so the service keeps
    # running while the suspect instance is held for forensics.
    autoscaling.detach_instances(
        AutoScalingGroupName=group, InstanceIds=[instance_id], ShouldDecrementDesiredCapacity=False
    )
    return Step("detach-auto-scaling", True, {"group": group})


def deregister_from_target_groups(elbv2, instance: dict[str, Any]) -> Step:
    instance_id, vpc = instance["InstanceId"], instance.get("VpcId")
    removed = []
    for page in elbv2.get_paginator("describe_target_groups").paginate():
        for group in page["TargetGroups"]:
            if group.get("TargetType", "instance") != "instance" or group.get("VpcId") != vpc:
                continue
            arn = group["TargetGroupArn"]
            health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
            targets = [h["Target"] for h in health if h["Target"]["Id"] == instance_id]
            if targets:
                elbv2.deregister_targets(TargetGroupArn=arn, Targets=targets)
                removed.append(arn)
    return Step("deregister-targets", bool(removed), {"target_groups": removed})


def _capture_comment(request: IsolateRequest) -> str:
    return f"bakehouse memory capture {request.finding_id}"[:100]


def capture_memory(ssm, request: IsolateRequest, instance: dict[str, Any], sleep: Callable[[float], None]) -> Step:
    comment = _capture_comment(request)
    existing = [
        c for page in ssm.get_paginator("list_commands").paginate(InstanceId=request.instance_id)
        for c in page["Commands"] if c.get("Comment") == comment
    ]
    if existing:
        command_id = existing[0]["CommandId"]
        changed = False
    else:
        target = f"s3://{request.evidence_bucket}/{request.prefix}memory.lime.compressed"
        commands = [
            "set -eu",
            f"test -x {AVML_PATH}",
            f"{AVML_PATH} --compress /var/tmp/bakehouse-memory.lime.compressed",
            f"aws s3 cp /var/tmp/bakehouse-memory.lime.compressed {target} --only-show-errors",
            "rm -f /var/tmp/bakehouse-memory.lime.compressed",
        ]
        command_id = ssm.send_command(
            InstanceIds=[request.instance_id],
            DocumentName=CAPTURE_DOCUMENT,
            Comment=comment,
            Parameters={"commands": commands, "executionTimeout": [str(request.capture_timeout_seconds)]},
            OutputS3BucketName=request.evidence_bucket,
            OutputS3KeyPrefix=request.prefix + "memory-capture-output",
            TimeoutSeconds=60,
        )["Command"]["CommandId"]
        changed = True
    status = _wait_for_command(ssm, command_id, request, sleep)
    return Step("capture-memory", changed, {"command_id": command_id, "status": status})


def _wait_for_command(ssm, command_id: str, request: IsolateRequest, sleep: Callable[[float], None]) -> str:
    # Polled, never a fixed sleep: the instance is stopped later, which would lose the memory.
    deadline = time.monotonic() + request.capture_timeout_seconds
    while True:
        try:
            status = ssm.get_command_invocation(CommandId=command_id, InstanceId=request.instance_id)["Status"]
        except ClientError as err:
            if err.response["Error"]["Code"] != "InvocationDoesNotExist":
                raise
            status = "Pending"
        if status in TERMINAL_COMMAND_STATES or time.monotonic() >= deadline:
            return status
        sleep(5)


def _isolation_group(ec2, vpc_id: str) -> tuple[str, bool]:
    found = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]},
        {"Name": f"tag:{TAG_PURPOSE}", "Values": [ISOLATION_PURPOSE]},
    ])["SecurityGroups"]
    if found:
        group = found[0]
        created = False
    else:
        group_id = ec2.create_security_group(
            GroupName=f"bakehouse-isolation-{vpc_id}",
            Description="Bakehouse incident isolation: no inbound, no outbound",
            VpcId=vpc_id,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": dict_to_tags({
                TAG_PURPOSE: ISOLATION_PURPOSE, "Name": "bakehouse-isolation"})}],
        )["GroupId"]
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        created = True
    # A new group comes with an allow-all egress rule; an isolation group must have none. Checked on
    # every run so a group someone loosened by hand is closed again.
    if group.get("IpPermissionsEgress"):
        ec2.revoke_security_group_egress(GroupId=group["GroupId"], IpPermissions=group["IpPermissionsEgress"])
        created = True
    if group.get("IpPermissions"):
        ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=group["IpPermissions"])
        created = True
    return group["GroupId"], created


def swap_security_groups(ec2, request: IsolateRequest, instance: dict[str, Any]) -> Step:
    group_id, changed = _isolation_group(ec2, instance["VpcId"])
    swapped = []
    for eni in instance.get("NetworkInterfaces", []):
        # Read the interface now: the instance description may predate an earlier partial run.
        current = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])
        groups = [g["GroupId"] for g in current["NetworkInterfaces"][0]["Groups"]]
        if groups != [group_id]:
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni["NetworkInterfaceId"], Groups=[group_id])
            swapped.append({"eni": eni["NetworkInterfaceId"], "previous_groups": groups})
    return Step("swap-security-groups", changed or bool(swapped), {"isolation_group": group_id, "swapped": swapped})


def snapshot_volumes(ec2, request: IsolateRequest, instance: dict[str, Any]) -> Step:
    volumes = [m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings", []) if "Ebs" in m]
    taken, snapshots = [], {}
    for volume_id in volumes:
        existing = ec2.describe_snapshots(OwnerIds=["self"], Filters=[
            {"Name": "volume-id", "Values": [volume_id]},
            {"Name": f"tag:{TAG_FINDING}", "Values": [request.finding_id]},
        ])["Snapshots"]
        if existing:
            snapshots[volume_id] = existing[0]["SnapshotId"]
            continue
        snapshot = ec2.create_snapshot(
            VolumeId=volume_id,
            Description=f"Bakehouse evidence: {request.instance_id} {volume_id} finding {request.finding_id}"[:255],
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": dict_to_tags({
                TAG_FINDING: request.finding_id, "bakehouse:instance-id": request.instance_id})}],
        )
        snapshots[volume_id] = snapshot["SnapshotId"]
        taken.append(snapshot["SnapshotId"])
    return Step("snapshot-volumes", bool(taken), {"snapshots": snapshots})


def _sid(finding_id: str) -> str:
    return "RevokeBefore" + re.sub(r"[^A-Za-z0-9]", "", finding_id)[:80]


def revoke_role_sessions(iam, request: IsolateRequest, instance: dict[str, Any], at: datetime) -> Step:
    profile_arn = instance.get("IamInstanceProfile", {}).get("Arn")
    if not profile_arn:
        return Step("revoke-role-sessions", False, {"reason": "no instance profile"})
    profile_name = profile_arn.rsplit("/", 1)[-1]
    roles = iam.get_instance_profile(InstanceProfileName=profile_name)["InstanceProfile"]["Roles"]
    changed_roles = []
    for role in roles:
        name = role["RoleName"]
        try:
            current = iam.get_role_policy(RoleName=name, PolicyName=REVOKE_POLICY)["PolicyDocument"]
            if isinstance(current, str):
                current = json.loads(current)
            if any(s.get("Sid") == _sid(request.finding_id) for s in current.get("Statement", [])):
                continue  # this finding already revoked them; moving the cut-off would change nothing useful
        except iam.exceptions.NoSuchEntityException:
            pass
        # Deny everything to credentials issued before now: the stolen instance credentials die,
        # while other instances sharing the role fetch fresh ones from IMDS and carry on. The
        # action and resource are `*` because this is a deny covering whatever the role can do.
        document = {"Version": "2012-10-17", "Statement": [{
            "Sid": _sid(request.finding_id),
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": at.strftime("%Y-%m-%dT%H:%M:%SZ")}},
        }]}
        iam.put_role_policy(RoleName=name, PolicyName=REVOKE_POLICY, PolicyDocument=json.dumps(document))
        changed_roles.append(name)
    return Step("revoke-role-sessions", bool(changed_roles), {"roles": [r["RoleName"] for r in roles]})


def stop_instance(ec2, instance_id: str) -> Step:
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
    if state in ("stopping", "stopped"):
        return Step("stop-instance", False, {"state": state})
    ec2.stop_instances(InstanceIds=[instance_id])
    return Step("stop-instance", True, {"state": state})


def observe(clients: Clients, request: IsolateRequest, instance: dict[str, Any]) -> dict[str, Any]:
    """What the playbook left behind, read back from AWS: the manifest states facts, not intentions,
    and is the same whether the steps ran in one call or one automation step at a time."""
    ec2, instance_id = clients.ec2, request.instance_id
    now_instance = describe_instance(ec2, instance_id)
    groups = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [instance["VpcId"]]},
        {"Name": f"tag:{TAG_PURPOSE}", "Values": [ISOLATION_PURPOSE]}])["SecurityGroups"]
    snapshots = ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": f"tag:{TAG_FINDING}", "Values": [request.finding_id]},
        {"Name": "tag:bakehouse:instance-id", "Values": [instance_id]}])["Snapshots"]
    comment = _capture_comment(request)
    commands = [c for page in clients.ssm.get_paginator("list_commands").paginate(InstanceId=instance_id)
                for c in page["Commands"] if c.get("Comment") == comment]
    protected = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")
    in_group = clients.autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
    return {
        "state": now_instance["State"]["Name"],
        "termination_protection": protected["DisableApiTermination"]["Value"],
        "auto_scaling_group": in_group[0]["AutoScalingGroupName"] if in_group else None,
        "isolation_group": groups[0]["GroupId"] if groups else None,
        "interfaces": {e["NetworkInterfaceId"]: [g["GroupId"] for g in e.get("Groups", [])]
                       for e in now_instance.get("NetworkInterfaces", [])},
        "snapshots": {s["VolumeId"]: s["SnapshotId"] for s in snapshots},
        "memory_capture": {"command_id": commands[0]["CommandId"], "status": commands[0]["Status"]} if commands else None,
    }


