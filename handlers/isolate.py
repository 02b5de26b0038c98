"""Incident response playbook: contain one EC2 instance and preserve its evidence.

Started by the workload stack's EventBridge rule (GuardDuty EC2 finding, or a manual "isolate"
event) through the IsolateInstance automation. Every step looks before it acts, so a replay of the
same finding on the same instance changes nothing; each step reports whether it changed anything.

Containment comes first. Only reading the instance may stop the playbook (there is nothing to
contain, and responders are paged at once); every other step may fail without holding back the
security-group swap and the stop, which always run, and every failure ends in a notification that
names the failed steps. Memory is captured *before* the swap: the isolation group admits nothing
outbound, so after the swap the instance could no longer reach S3.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import boto3
from botocore.exceptions import ClientError

from handlers.common import (
    INSTANCE_ID,
    AwsClient,
    BakehouseError,
    EventReader,
    client,
    dict_to_tags,
)
from handlers.contract import ACCOUNT_ID as ACCOUNT
from handlers.contract import BUCKET_NAME as BUCKET
from handlers.contract import FORENSIC_SOURCE_PARAMETER, TAG_COPY_OF, TAG_FINDING, TAG_INSTANCE, TAG_PURPOSE
from handlers.isolate_evidence import (
    Step,
    publish_manifest,
    record_state,
    share_snapshots,
    snapshot_volumes,
)
from handlers.isolate_outcome import announce_failures, failed_steps_of_execution
from handlers.isolate_revoke import REVOKE_POLICY, revoke_role_sessions

FINDING_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}")
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d")
KMS_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[A-Za-z0-9/_-]+")
EXECUTION_ID = re.compile(r"[0-9a-f-]{36}")
FORENSIC_SOURCE = re.compile(r"sg-[0-9a-f]{8,17}|\d{1,3}(\.\d{1,3}){3}/\d{1,2}")

ISOLATION_PURPOSE = "isolation"
CAPTURE_DOCUMENT = "AWS-RunShellScript"
# The stack writes the configured forensic source here (components/workload/incident_response.py); read, never
# taken from the caller, because it decides who may reach a contained instance.
# AVML ships in the golden image (packer/scripts/55-memory-capture.sh; the isolated instance cannot
# download anything); it writes a compressed LiME image, which the instance's own role uploads under
# the incident's evidence prefix (components/workload/app_access.py, MemoryCaptureToOwnEvidencePrefix).
AVML = "avml"
MEMORY_IMAGE = "memory.lime.compressed"
# The playbook's order; see the module docstring for why memory comes before the group swap.
STEPS = (
    "record-state",
    "termination-protection",
    "detach-auto-scaling",
    "deregister-targets",
    "capture-memory",
    "swap-security-groups",
    "revoke-role-sessions",
    "snapshot-volumes",
    "stop-instance",
    "share-snapshots",
    "publish-manifest",
)
# The two steps that always run, whatever failed before them.
CONTAINMENT = ("swap-security-groups", "stop-instance")
# Steps only the automation document runs: its first (may end the run) and last (names the failures).
DOCUMENT_STEPS = ("read-instance", *STEPS, "report-outcome")
TERMINAL_COMMAND_STATES = {"Success", "Failed", "Cancelled", "TimedOut", "Cancelling"}


class InstanceNotFound(BakehouseError):
    def __init__(self, instance_id: str):
        super().__init__(f"instance {instance_id} does not exist in this account and region")


@dataclass(frozen=True)
class IsolateRequest:
    instance_id: str
    finding_id: str
    evidence_bucket: str
    topic_arn: str
    capture_timeout_seconds: int = 600
    step: str | None = None  # one step only (the automation document runs them one by one)
    region: str | None = None  # where the instance runs; read from the client when not given
    account_id: str | None = None  # whose instance; read from its reservation when not given
    security_account_id: str | None = None  # receives the evidence snapshots
    evidence_key_arn: str | None = None  # the security account's evidence key (key or alias ARN)
    execution_id: str | None = None  # the automation execution, for report-outcome

    @classmethod
    def parse(cls, event: Any) -> IsolateRequest:
        r = EventReader("isolate", event)

        def optional(key: str, pattern: re.Pattern[str]) -> str | None:
            return r.string(key, pattern) if r.event.get(key) else None

        request = cls(
            instance_id=r.string("InstanceId", INSTANCE_ID),
            finding_id=r.string("FindingId", FINDING_ID),
            evidence_bucket=r.string("EvidenceBucket", BUCKET),
            topic_arn=r.string("TopicArn", TOPIC_ARN),
            capture_timeout_seconds=r.integer("CaptureTimeoutSeconds", 0, 3600, default=600),
            step=r.event.get("Step") or None,
            region=optional("Region", REGION),
            account_id=optional("AccountId", ACCOUNT),
            security_account_id=optional("SecurityAccountId", ACCOUNT),
            evidence_key_arn=optional("EvidenceKeyArn", KMS_KEY_ARN),
            execution_id=optional("ExecutionId", EXECUTION_ID),
        )
        if request.step is not None and request.step not in DOCUMENT_STEPS:
            r.problems.append(f"Step is {request.step!r}, expected one of {', '.join(DOCUMENT_STEPS)}")
        r.done()
        return request

    @property
    def instance_arn(self) -> str:
        if not (self.region and self.account_id):
            raise BakehouseError(f"isolate {self.instance_id}: region and account are not known yet")
        return f"arn:aws:ec2:{self.region}:{self.account_id}:instance/{self.instance_id}"

    @property
    def prefix(self) -> str:
        """incidents/<finding>/<instance ARN>/: the layout the instance role's memory-capture upload is
        scoped to (${ec2:SourceInstanceARN}, components/workload/app_access.memory_capture_prefix)."""
        return f"incidents/{self.finding_id}/{self.instance_arn}/"


class ServiceClients(Protocol):
    """What the steps use: Clients, or LazyClients in the handler."""

    @property
    def ec2(self) -> Any: ...
    @property
    def autoscaling(self) -> Any: ...
    @property
    def elbv2(self) -> Any: ...
    @property
    def ssm(self) -> Any: ...
    @property
    def iam(self) -> Any: ...
    @property
    def s3(self) -> Any: ...
    @property
    def sns(self) -> Any: ...
    def ec2_for(self, region: str) -> Any: ...


@dataclass(frozen=True)
class Clients:
    ec2: Any
    autoscaling: Any
    elbv2: Any
    ssm: Any
    iam: Any
    s3: Any
    sns: Any
    ec2_in: Callable[[str], Any] | None = None  # EC2 in another region (the evidence key's), when it differs

    def ec2_for(self, region: str) -> Any:
        if self.ec2_in is None or region == self.ec2.meta.region_name:
            return self.ec2
        return self.ec2_in(region)


@dataclass
class IsolationResult:
    instance_id: str
    finding_id: str
    steps: list[Step]

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.steps)

    @property
    def failed(self) -> list[str]:
        return [s.name for s in self.steps if s.failed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "InstanceId": self.instance_id,
            "FindingId": self.finding_id,
            "Changed": self.changed,
            "Failed": self.failed,
            "Steps": [asdict(s) for s in self.steps],
        }


class LazyClients:
    """The same attributes as Clients, each created on first use from one session: a single step
    of the document needs one or two services, and every client costs a model load."""

    def __init__(self, make: Callable[..., Any]):
        self._make = make
        self._made: dict[str, Any] = {}

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_") or service not in Clients.__dataclass_fields__ or service == "ec2_in":
            raise AttributeError(service)
        if service not in self._made:
            self._made[service] = self._make(service)
        return self._made[service]

    def ec2_for(self, region: str) -> Any:
        if region == self.ec2.meta.region_name:
            return self.ec2
        key = f"ec2@{region}"
        if key not in self._made:
            self._made[key] = self._make("ec2", region)
        return self._made[key]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = IsolateRequest.parse(event)
    session = boto3.Session()
    return isolate(request, LazyClients(lambda name, region=None: client(name, region, session=session))).as_dict()


def isolate(
    request: IsolateRequest,
    clients: ServiceClients,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> IsolationResult:
    """All steps (no `step`), or one. In a full run every step runs whatever failed before it; the
    failures are announced on the security topic and the first is raised once the run is over."""
    if request.step == "report-outcome":
        failed = failed_steps_of_execution(clients.ssm, request.execution_id)
        return IsolationResult(request.instance_id, request.finding_id, [announce_failures(clients.sns, request, failed)])
    if request.step in ("share-snapshots", "publish-manifest"):
        # Evidence steps run on what is already saved, also when the instance vanished mid-run.
        if not (request.region and request.account_id):
            request = located(request, clients, describe_instance(clients.ec2, request.instance_id))
        return IsolationResult(request.instance_id, request.finding_id, [_evidence_step(request, clients, sleep)])
    try:
        instance = describe_instance(clients.ec2, request.instance_id)
    except Exception as err:
        if request.step is None:  # the document pages through report-outcome
            announce_failures(clients.sns, request, {"read-instance": _describe(err)})
        raise
    request = located(request, clients, instance)
    run = {
        "read-instance": lambda: Step("read-instance", False, {"state": instance["State"]["Name"]}),
        "record-state": lambda: record_state(clients.s3, request, instance),
        "termination-protection": lambda: protect_from_termination(clients.ec2, request.instance_id),
        "detach-auto-scaling": lambda: detach_from_auto_scaling(clients.autoscaling, request.instance_id),
        "deregister-targets": lambda: deregister_from_target_groups(clients.elbv2, instance),
        "capture-memory": lambda: capture_memory(clients.ssm, request, sleep),
        "swap-security-groups": lambda: swap_security_groups(clients.ec2, clients.ssm, request, instance),
        "revoke-role-sessions": lambda: revoke_role_sessions(clients.iam, request, instance, now()),
        "snapshot-volumes": lambda: snapshot_volumes(clients.ec2, request, instance),
        "stop-instance": lambda: stop_instance(clients.ec2, request.instance_id),
        "share-snapshots": lambda: _evidence_step(replace(request, step="share-snapshots"), clients, sleep),
        "publish-manifest": lambda: _evidence_step(replace(request, step="publish-manifest"), clients, sleep),
    }
    if request.step is not None:
        return IsolationResult(request.instance_id, request.finding_id, [run[request.step]()])
    steps, errors = [], []
    for name in STEPS:
        try:
            steps.append(run[name]())
        except Exception as err:  # noqa: BLE001 - containment must run whatever failed; re-raised below
            errors.append(err)
            steps.append(Step(name, False, {"error": _describe(err)}, failed=True))
    result = IsolationResult(request.instance_id, request.finding_id, steps)
    if errors:
        announce_failures(clients.sns, request, {s.name: s.detail["error"] for s in steps if s.failed})
        raise errors[0]
    return result


def _evidence_step(request: IsolateRequest, clients: ServiceClients, sleep: Callable[[float], None]) -> Step:
    if request.step == "share-snapshots":
        return share_snapshots(clients, request, sleep)
    return publish_manifest(clients.s3, clients.sns, request, observe(clients, request))


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:500]


def located(request: IsolateRequest, clients: Any, instance: dict[str, Any]) -> IsolateRequest:
    """The request with the instance's region and account, which its evidence prefix names."""
    return replace(
        request, region=request.region or clients.ec2.meta.region_name, account_id=request.account_id or instance.get("OwnerId")
    )


def describe_instance(ec2: AwsClient, instance_id: str) -> dict[str, Any]:
    try:
        reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    except ClientError as err:
        if err.response["Error"]["Code"] in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
            raise InstanceNotFound(instance_id) from err
        raise
    found = [(r.get("OwnerId"), i) for r in reservations for i in r["Instances"]]
    if not found or found[0][1]["State"]["Name"] in ("terminated", "shutting-down"):
        raise InstanceNotFound(instance_id)
    owner, instance = found[0]
    return {**instance, "OwnerId": owner} if owner else instance


def protect_from_termination(ec2: AwsClient, instance_id: str) -> Step:
    current = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")
    if current["DisableApiTermination"]["Value"]:
        return Step("termination-protection", False)
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": True})
    return Step("termination-protection", True)


def detach_from_auto_scaling(autoscaling: AwsClient, instance_id: str) -> Step:
    found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
    if not found:
        return Step("detach-auto-scaling", False)
    group = found[0]["AutoScalingGroupName"]
    # Keep the desired capacity: the group launches a clean replacement, so the service keeps
    # running while the suspect instance is held for forensics.
    autoscaling.detach_instances(AutoScalingGroupName=group, InstanceIds=[instance_id], ShouldDecrementDesiredCapacity=False)
    return Step("detach-auto-scaling", True, {"group": group})


def deregister_from_target_groups(elbv2: AwsClient, instance: dict[str, Any]) -> Step:
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


def capture_comment(request: IsolateRequest) -> str:
    return f"bakehouse memory capture {request.finding_id}"[:100]


def capture_commands(request: IsolateRequest) -> list[str]:
    """The shell the instance runs: AVML from the image, the image and its SHA-256 uploaded with the
    instance's own credentials, the local copy removed whatever happened."""
    target = f"s3://{request.evidence_bucket}/{request.prefix}{MEMORY_IMAGE}"
    local = f"/var/tmp/bakehouse-{MEMORY_IMAGE}"
    return [
        "set -eu",
        # Where packer/scripts/55-memory-capture.sh installs it, whatever PATH the agent runs with.
        'PATH="/usr/local/bin:$PATH"',
        f"trap 'rm -f {local} {local}.sha256' EXIT",
        f"command -v {AVML} >/dev/null || {{ echo 'no {AVML} in the image' >&2; exit 3; }}",
        f"{AVML} --compress {local}",
        f"sha256sum {local} | cut -d' ' -f1 > {local}.sha256",
        f"aws s3 cp {local} {target} --only-show-errors",
        f"aws s3 cp {local}.sha256 {target}.sha256 --only-show-errors",
    ]


def capture_memory(ssm: AwsClient, request: IsolateRequest, sleep: Callable[[float], None]) -> Step:
    comment = capture_comment(request)
    existing = [
        c
        for page in ssm.get_paginator("list_commands").paginate(InstanceId=request.instance_id)
        for c in page["Commands"]
        if c.get("Comment") == comment
    ]
    if existing:
        command_id = existing[0]["CommandId"]
        changed = False
    else:
        command_id = ssm.send_command(
            InstanceIds=[request.instance_id],
            DocumentName=CAPTURE_DOCUMENT,
            Comment=comment,
            Parameters={"commands": capture_commands(request), "executionTimeout": [str(request.capture_timeout_seconds)]},
            OutputS3BucketName=request.evidence_bucket,
            # Under the instance ARN: the agent uploads the output with the instance's credentials too.
            OutputS3KeyPrefix=request.prefix + "memory-capture-output",
            TimeoutSeconds=60,
        )["Command"]["CommandId"]
        changed = True
    status = _wait_for_command(ssm, command_id, request, sleep)
    if status != "Success":
        raise MemoryCaptureFailed(request.instance_id, command_id, status)
    return Step("capture-memory", changed, {"command_id": command_id, "status": status})


class MemoryCaptureFailed(BakehouseError):
    def __init__(self, instance_id: str, command_id: str, status: str):
        super().__init__(
            f"memory capture on {instance_id} ended {status} (command {command_id}); "
            f"its output is under the incident's memory-capture-output/"
        )


def _wait_for_command(ssm: AwsClient, command_id: str, request: IsolateRequest, sleep: Callable[[float], None]) -> str:
    # Polled, never a fixed sleep: the instance is stopped later, which would lose the memory.
    deadline = time.monotonic() + request.capture_timeout_seconds
    while True:
        try:
            status: str = ssm.get_command_invocation(CommandId=command_id, InstanceId=request.instance_id)["Status"]
        except ClientError as err:
            if err.response["Error"]["Code"] != "InvocationDoesNotExist":
                raise
            status = "Pending"
        if status in TERMINAL_COMMAND_STATES or time.monotonic() >= deadline:
            return status
        sleep(5)


def forensic_source(ssm: AwsClient) -> str | None:
    try:
        value: str = ssm.get_parameter(Name=FORENSIC_SOURCE_PARAMETER)["Parameter"]["Value"].strip()
    except ClientError as err:
        if err.response["Error"]["Code"] == "ParameterNotFound":
            return None
        raise
    if not FORENSIC_SOURCE.fullmatch(value):
        raise BakehouseError(f"{FORENSIC_SOURCE_PARAMETER} is {value!r}; expected a CIDR or a security group id")
    return value


def _admits(source: str | None) -> list[dict[str, Any]]:
    """The only ingress an isolation group keeps: everything from the forensic source, nothing else.
    Replies to it leave without an egress rule (security groups are stateful)."""
    if source is None:
        return []
    if source.startswith("sg-"):
        return [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": source, "Description": "forensic source"}]}]
    return [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": source, "Description": "forensic source"}]}]


def _sources(permissions: list[dict[str, Any]]) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for p in permissions:
        proto = p.get("IpProtocol", "")
        found |= {(proto, str(p.get("FromPort")), str(p.get("ToPort")), r["CidrIp"]) for r in p.get("IpRanges", [])}
        found |= {(proto, str(p.get("FromPort")), str(p.get("ToPort")), r["CidrIpv6"]) for r in p.get("Ipv6Ranges", [])}
        found |= {(proto, str(p.get("FromPort")), str(p.get("ToPort")), g["GroupId"]) for g in p.get("UserIdGroupPairs", [])}
        found |= {(proto, str(p.get("FromPort")), str(p.get("ToPort")), g["PrefixListId"]) for g in p.get("PrefixListIds", [])}
    return found


def _find_isolation_group(ec2: AwsClient, vpc_id: str) -> dict[str, Any] | None:
    found = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": f"tag:{TAG_PURPOSE}", "Values": [ISOLATION_PURPOSE]},
        ]
    )["SecurityGroups"]
    return min(found, key=lambda g: g["GroupId"]) if found else None


def isolation_group(ec2: AwsClient, vpc_id: str, source: str | None) -> tuple[str, bool]:
    """The VPC's isolation group (found by tag), created once; a concurrent run that loses the race
    to create it finds the winner's by tag. Its rules are brought to exactly what `_admits` says on
    every run, so a group someone loosened by hand is closed again."""
    group, changed = _find_isolation_group(ec2, vpc_id), False
    if group is None:
        try:
            ec2.create_security_group(
                GroupName=f"bakehouse-isolation-{vpc_id}",
                Description="Bakehouse incident isolation: no outbound, inbound from the forensic source only",
                VpcId=vpc_id,
                TagSpecifications=[
                    {
                        "ResourceType": "security-group",
                        "Tags": dict_to_tags({TAG_PURPOSE: ISOLATION_PURPOSE, "Name": "bakehouse-isolation"}),
                    }
                ],
            )
            changed = True
        except ClientError as err:
            if err.response["Error"]["Code"] != "InvalidGroup.Duplicate":
                raise
        group = _find_isolation_group(ec2, vpc_id)
        if group is None:
            raise BakehouseError(f"isolation group of {vpc_id} exists by name but carries no {TAG_PURPOSE} tag")
    if group.get("IpPermissionsEgress"):
        ec2.revoke_security_group_egress(GroupId=group["GroupId"], IpPermissions=group["IpPermissionsEgress"])
        changed = True
    wanted = _admits(source)
    if _sources(group.get("IpPermissions", [])) != _sources(wanted):
        if group.get("IpPermissions"):
            ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=group["IpPermissions"])
        if wanted:
            ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=wanted)
        changed = True
    return group["GroupId"], changed


def swap_security_groups(ec2: AwsClient, ssm: AwsClient, request: IsolateRequest, instance: dict[str, Any]) -> Step:
    source = forensic_source(ssm)
    group_id, changed = isolation_group(ec2, instance["VpcId"], source)
    swapped = []
    for eni in instance.get("NetworkInterfaces", []):
        # Read the interface now: the instance description may predate an earlier partial run.
        current = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])
        groups = [g["GroupId"] for g in current["NetworkInterfaces"][0]["Groups"]]
        if groups != [group_id]:
            ec2.modify_network_interface_attribute(NetworkInterfaceId=eni["NetworkInterfaceId"], Groups=[group_id])
            swapped.append({"eni": eni["NetworkInterfaceId"], "previous_groups": groups})
    return Step(
        "swap-security-groups",
        changed or bool(swapped),
        {"isolation_group": group_id, "forensic_source": source, "swapped": swapped},
    )


def stop_instance(ec2: AwsClient, instance_id: str) -> Step:
    state = describe_instance(ec2, instance_id)["State"]["Name"]
    if state in ("stopping", "stopped"):
        return Step("stop-instance", False, {"state": state})
    ec2.stop_instances(InstanceIds=[instance_id])
    return Step("stop-instance", True, {"state": state})


def observe(clients: ServiceClients, request: IsolateRequest) -> dict[str, Any]:
    """What the playbook left behind, read back from AWS: the manifest states facts, not intentions,
    and is the same whether the steps ran in one call or one automation step at a time. An instance
    that vanished mid-run is recorded as gone; the rest is still read."""
    ec2, instance_id = clients.ec2, request.instance_id
    try:
        now_instance: dict[str, Any] | None = describe_instance(ec2, instance_id)
    except InstanceNotFound:
        now_instance = None
    snapshots = [
        s
        for page in ec2.get_paginator("describe_snapshots").paginate(
            OwnerIds=["self"],
            Filters=[
                {"Name": f"tag:{TAG_FINDING}", "Values": [request.finding_id]},
                {"Name": f"tag:{TAG_INSTANCE}", "Values": [instance_id]},
            ],
        )
        for s in page["Snapshots"]
    ]
    comment = capture_comment(request)
    commands = [
        c
        for page in clients.ssm.get_paginator("list_commands").paginate(InstanceId=instance_id)
        for c in page["Commands"]
        if c.get("Comment") == comment
    ]
    observed: dict[str, Any] = {
        "state": now_instance["State"]["Name"] if now_instance else "gone",
        "snapshots": {s["VolumeId"]: s["SnapshotId"] for s in snapshots if TAG_COPY_OF not in _tags(s)},
        "evidence_copies": {_tags(s)[TAG_COPY_OF]: s["SnapshotId"] for s in snapshots if TAG_COPY_OF in _tags(s)},
        "memory_capture": {"command_id": commands[0]["CommandId"], "status": commands[0]["Status"]} if commands else None,
    }
    if now_instance is None:
        return observed
    protected = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="disableApiTermination")
    in_group = clients.autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
    group = _find_isolation_group(ec2, now_instance["VpcId"]) if now_instance.get("VpcId") else None
    return observed | {
        "termination_protection": protected["DisableApiTermination"]["Value"],
        "auto_scaling_group": in_group[0]["AutoScalingGroupName"] if in_group else None,
        "isolation_group": group["GroupId"] if group else None,
        "interfaces": {
            e["NetworkInterfaceId"]: [g["GroupId"] for g in e.get("Groups", [])]
            for e in now_instance.get("NetworkInterfaces", [])
        },
    }


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


__all__ = [
    "REVOKE_POLICY",
    "STEPS",
    "CONTAINMENT",
    "DOCUMENT_STEPS",
    "TAG_FINDING",
    "Clients",
    "IsolateRequest",
    "InstanceNotFound",
    "IsolationResult",
    "handler",
    "isolate",
]
