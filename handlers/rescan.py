"""Scheduled rescan of every AMI that is published or running, feeding CVEs back to the factory.

Images come from three places: /bakehouse/images/* in the build account, /bakehouse/<env>/ami/* and
the running instances of each workload account (read through the BakehouseImageScanner role). They
are deduplicated before anything is launched - one scan instance per unique AMI however many
instances run it - and AMIs already tagged vulnerable are not scanned again.

Inspector already scans the running instances of every member account in place, so an AMI whose
instances some account's Inspector covers is judged from that account's findings (ListFindings by
ec2InstanceImageId) and gets no scan instance: scan instances are launched only for published AMIs
that nothing runs, or that run only where Inspector does not cover them. The findings are read in
each workload account through its BakehouseImageScanner role, where ListCoverage and ListFindings
return that account's own resources only - not through the security account, whose delegated
administrator view would hand the factory every account's findings.

The work is split in phases because an `aws:executeScript` step may run ten minutes at most while
Inspector takes longer than that to scan a batch: `discover`, then `launch` (the next batch, sized by
config) and `collect` (poll Inspector, write the summary, tag, quarantine, terminate the batch) in a
loop, and `cleanup`, which terminates whatever this execution launched and is also every step's
onFailure target. State between phases lives in AWS, not in memory: scan instances carry the
execution id and the AMI they scan, and the discovery is written to the evidence bucket. `rescan`
runs the same phases in one call (Lambda, tests, the benchmark).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from handlers.common import (
    AMI_ID,
    TAG_SOURCE_AMI,
    AwsClient,
    BakehouseError,
    EventReader,
    PollTimeout,
    assumed_session,
    client,
    dict_to_tags,
    env_and_account,
    tags_to_dict,
)
from handlers.contract import (
    ACCOUNT_ID,
    BUCKET_NAME,
    ENV_NAME,
    IMAGES_PATH,
    ROLE_ARN,
    TAG_PURPOSE,
    TAG_SCAN_OF,
    TAG_VULNERABLE,
    env_ami_path,
)
from handlers.contract import EXECUTION_REF as EXECUTION
from handlers.contract import IMAGE_SCANNER_ROLE as SCANNER_ROLE
from handlers.contract import TAG_RESCAN_EXECUTION as TAG_EXECUTION
from handlers.inspector_summary import (
    THRESHOLDS,
    NotCovered,
    active,
    list_active_findings,
    record_summary,
    summarize_findings,
    wait_for_coverage,
)
from handlers.rescan_feedback import SETTINGS_PARAMETER, Workload, mark_prod, quarantine, retire_replaced
from handlers.targets import read_targets

PHASES = ("discover", "launch", "collect", "cleanup", "all")
ACCOUNT_ENV = re.compile(f"{ENV_NAME.pattern}={ACCOUNT_ID.pattern}")
ALIVE = ["pending", "running", "stopping", "stopped"]


class RescanIncomplete(BakehouseError):
    """The run finished its cleanup but part of it failed (an account, a launch, a concurrent run);
    raised last so the execution ends Failed and the failure rule announces it."""


class ScanLaunchFailed(BakehouseError):
    def __init__(self, image_id: str, reason: str):
        super().__init__(f"could not launch a scan instance from {image_id}: {reason}")


@dataclass(frozen=True)
class RescanRequest:
    # (env, account id) of the workload accounts; None: every target env, read from
    # /bakehouse/factory/targets (handlers/targets.py); a list names a subset (a rerun for one account).
    accounts: tuple[tuple[str, str], ...] | None
    subnet_id: str
    security_group_ids: tuple[str, ...]
    instance_profile: str
    evidence_bucket: str
    topic_arn: str
    pipeline_role_arn: str
    execution_id: str
    batch_size: int = 10
    severity_threshold: str = "HIGH"
    wait_seconds: float = 1800  # per scan instance, from its launch
    step_seconds: float = 500  # how long one collect call may poll (aws:executeScript stops at 600)
    instance_type: str = "t3.medium"
    # The envs whose running images are retained as having run in prod: bakehouse:org.prodEnvs, which
    # the build stack passes (estate/stack_files.py prod_envs); "prod" only when nothing is given.
    prod_envs: tuple[str, ...] = ("prod",)
    pipeline_document: str = "Bakehouse-Pipeline"
    phase: str = "all"
    image_ids: tuple[str, ...] = ()  # launch/collect: the discovery's output
    failed: bool = False  # cleanup reached from a failed step: terminate, then fail the run

    @classmethod
    def parse(cls, event: Any) -> RescanRequest:
        r = EventReader("rescan", event)
        threshold = r.string("SeverityThreshold", default="HIGH")
        if threshold and threshold not in THRESHOLDS[:-1]:
            r.problems.append(f"SeverityThreshold is {threshold!r}, expected one of {', '.join(THRESHOLDS[:-1])}")
        phase = r.string("Phase", default="all")
        if phase and phase not in PHASES:
            r.problems.append(f"Phase is {phase!r}, expected one of {', '.join(PHASES)}")
        # Absent or empty (the document's default): every target env, from the target parameters.
        listed = r.strings("WorkloadAccounts", ACCOUNT_ENV, allow_empty=True) if "WorkloadAccounts" in r.event else ()
        request = cls(
            accounts=tuple(env_and_account(a) for a in listed) or None,
            subnet_id=r.string("SubnetId", re.compile(r"subnet-[0-9a-f]{8,17}")),
            security_group_ids=r.strings("SecurityGroupIds", re.compile(r"sg-[0-9a-f]{8,17}")),
            instance_profile=r.string("InstanceProfileName", re.compile(r"[\w+=,.@-]{1,128}")),
            evidence_bucket=r.string("EvidenceBucket", BUCKET_NAME),
            topic_arn=r.string("TopicArn", re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}")),
            pipeline_role_arn=r.string("PipelineRoleArn", ROLE_ARN),
            execution_id=r.string("ExecutionId", EXECUTION, default="manual"),
            # EC2's On-Demand vCPU quota is the real bound; config keeps a batch well inside it.
            batch_size=r.integer("BatchSize", 1, 100, default=10),
            severity_threshold=threshold,
            wait_seconds=r.integer("WaitSeconds", 60, 4 * 3600, default=1800),
            step_seconds=r.integer("StepSeconds", 0, 540, default=500),
            instance_type=r.string("InstanceType", re.compile(r"[a-z0-9]+\.[a-z0-9]+"), default="t3.medium"),
            prod_envs=r.strings("ProdEnvs", ENV_NAME, allow_empty=True) if "ProdEnvs" in r.event else ("prod",),
            pipeline_document=r.string("PipelineDocument", default="Bakehouse-Pipeline"),
            phase=phase,
            image_ids=r.strings("ImageIds", AMI_ID, allow_empty=True) if "ImageIds" in r.event else (),
            failed=r.boolean("Failed", default=False),
        )
        r.done()
        return request

    @property
    def discovery_key(self) -> str:
        # Keyed by execution alone: a run that crosses midnight must find its own discovery.
        return f"rescans/executions/{self.execution_id}/discovery.json"


@dataclass(frozen=True)
class Clients:
    """Build-account clients, plus how to reach a workload account (its EC2 and SSM)."""

    ec2: Any
    ssm: Any
    s3: Any
    sns: Any
    inspector2: Any
    automation: Any  # SSM client used for start_automation_execution only
    workload: Callable[[str], tuple[Any, Any]]
    catalog: Any = None  # Service Catalog: a quarantine pins the family's rule (None: not configured)
    # A workload account's Inspector (its scanner role): findings on the instances it runs. None: every
    # image gets a scan instance, as before Inspector was read in place.
    findings: Callable[[str], Any] | None = None


@dataclass
class RescanResult:
    candidates: int = 0
    unresolved: list[str] = field(default_factory=list)
    skipped_vulnerable: list[str] = field(default_factory=list)
    to_scan: list[str] = field(default_factory=list)
    judged_in_place: list[str] = field(default_factory=list)  # from the findings where they run, no launch
    launched: list[str] = field(default_factory=list)
    scanned: dict[str, dict[str, int]] = field(default_factory=dict)
    quarantined: list[str] = field(default_factory=list)
    rebuilds: dict[str, str] = field(default_factory=dict)
    deprecated: list[str] = field(default_factory=list)
    marked_prod: list[str] = field(default_factory=list)
    pending: int = 0  # scan instances Inspector has not finished with yet
    remaining: int = 0  # AMIs without a scan instance yet
    failures: list[str] = field(default_factory=list)  # what did not happen, each naming its resource

    def as_dict(self) -> dict[str, Any]:
        return {
            "Candidates": self.candidates,
            "Unresolved": self.unresolved,
            "SkippedVulnerable": self.skipped_vulnerable,
            "ImageIds": self.to_scan,
            "Count": len(self.to_scan),
            "JudgedInPlace": self.judged_in_place,
            "Launched": self.launched,
            "Scanned": self.scanned,
            "Quarantined": self.quarantined,
            "Rebuilds": self.rebuilds,
            "Deprecated": self.deprecated,
            "MarkedProd": self.marked_prod,
            "Pending": self.pending,
            "Remaining": self.remaining,
            "Failures": self.failures,
        }


# --- discover ------------------------------------------------------------------------------------
def _accounts(request: RescanRequest, clients: Clients) -> tuple[tuple[str, str], ...]:
    """The accounts the request names, or every target env's (malformed parameters fail the phase)."""
    return read_targets(clients.ssm) if request.accounts is None else request.accounts


def _parameter_amis(ssm: AwsClient, path: str) -> Iterator[str]:
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=True):
        yield from (p["Value"] for p in page["Parameters"] if AMI_ID.fullmatch(p["Value"]))


def _running_amis(ec2: AwsClient) -> set[str]:
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}]
    )
    return {i["ImageId"] for p in pages for r in p["Reservations"] for i in r["Instances"]}


def _covered_amis(inspector: AwsClient) -> set[str]:
    """AMIs of this account's instances that Inspector actively scans (CoverageFilterCriteria has no
    image id: the coverage record's resourceMetadata.ec2.amiId carries it)."""
    criteria = {
        "resourceType": [{"comparison": "EQUALS", "value": "AWS_EC2_INSTANCE"}],
        "scanStatusCode": [{"comparison": "EQUALS", "value": "ACTIVE"}],
    }
    return {
        r["resourceMetadata"]["ec2"]["amiId"]
        for page in inspector.get_paginator("list_coverage").paginate(filterCriteria=criteria)
        for r in page["coveredResources"]
        if r.get("lastScannedAt") and r.get("resourceMetadata", {}).get("ec2", {}).get("amiId")
    }


def _owned_images(ec2: AwsClient, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for start in range(0, len(image_ids), 100):
        # A filter, not ImageIds: one unknown id (a team's own AMI) would fail the whole call.
        chunk = list(image_ids[start : start + 100])
        for page in ec2.get_paginator("describe_images").paginate(
            Owners=["self"], Filters=[{"Name": "image-id", "Values": chunk}]
        ):
            out.update({i["ImageId"]: i for i in page["Images"]})
    return out


def discover(request: RescanRequest, clients: Clients, now: datetime, result: RescanResult) -> None:
    result.deprecated = retire_replaced(clients.ec2, clients.ssm, now)
    sources: dict[str, set[str]] = {}
    in_place: dict[str, list[tuple[str, str]]] = {}  # build account AMI -> (account, its own image id)
    for image_id in _parameter_amis(clients.ssm, IMAGES_PATH):
        sources.setdefault(image_id, set()).add("published")
    for env, account in _accounts(request, clients):
        try:
            ec2, ssm = clients.workload(account)
            published, running = set(_parameter_amis(ssm, env_ami_path(env))), _running_amis(ec2)
        except (ClientError, BakehouseError) as err:
            # One account's failure does not hide the others' images; it is reported at the end.
            result.failures.append(f"account {account} ({env}): {err}")
            continue
        try:
            covered = _covered_amis(clients.findings(account)) if clients.findings and running else set()
        except (ClientError, BakehouseError):
            covered = set()  # Inspector unreadable here: its images get scan instances, as before
        # In `copy` distribution the account runs its own re-encrypted copy; the tag names the
        # build account's AMI, which is the one to scan (and to mark as having run in prod).
        source_of = {
            i: tags_to_dict(image.get("Tags")).get(TAG_SOURCE_AMI, i)
            for i, image in _owned_images(ec2, sorted(published | running)).items()
        }
        for image_id in published:
            sources.setdefault(source_of.get(image_id, image_id), set()).add(f"published:{env}")
        for image_id in running:  # a set: 500 instances of one AMI are one candidate
            sources.setdefault(source_of.get(image_id, image_id), set()).add(f"running:{env}")
            if image_id in covered:
                in_place.setdefault(source_of.get(image_id, image_id), []).append((account, image_id))
    result.candidates = len(sources)
    owned = _owned_images(clients.ec2, sorted(sources))
    result.unresolved = sorted(set(sources) - set(owned))
    today = now.strftime("%Y-%m-%d")
    for image_id in sorted(owned):
        tags = tags_to_dict(owned[image_id].get("Tags"))
        ran_in_prod = any(f"running:{env}" in sources[image_id] for env in request.prod_envs)
        if ran_in_prod and mark_prod(clients.ec2, image_id, tags, today):
            result.marked_prod.append(image_id)
        if tags.get(TAG_VULNERABLE) == "true":
            result.skipped_vulnerable.append(image_id)
        elif image_id in in_place and _judge_in_place(
            request, clients, image_id, in_place[image_id], sorted(sources[image_id]), now, result
        ):
            result.judged_in_place.append(image_id)
        else:
            result.to_scan.append(image_id)
    record = {
        "execution_id": request.execution_id,
        "unresolved": result.unresolved,
        "failures": result.failures,
        "skipped_vulnerable": result.skipped_vulnerable,
        "judged_in_place": result.judged_in_place,
        "images": {i: sorted(sources[i]) for i in result.to_scan},
    }
    clients.s3.put_object(
        Bucket=request.evidence_bucket,
        Key=request.discovery_key,
        Body=json.dumps(record, indent=1).encode(),
        ContentType="application/json",
    )


# --- launch --------------------------------------------------------------------------------------
def _scan_instances(ec2: AwsClient, execution_id: str, states: list[str] | None = None) -> list[dict[str, Any]]:
    filters = [{"Name": f"tag:{TAG_EXECUTION}", "Values": [execution_id]}]
    if states:
        filters.append({"Name": "instance-state-name", "Values": states})
    pages = ec2.get_paginator("describe_instances").paginate(Filters=filters)
    return [i for p in pages for r in p["Reservations"] for i in r["Instances"]]


def _not_started(request: RescanRequest, clients: Clients) -> list[str]:
    started = {tags_to_dict(i.get("Tags")).get(TAG_SCAN_OF) for i in _scan_instances(clients.ec2, request.execution_id)}
    return [i for i in request.image_ids if i not in started]


def launch(request: RescanRequest, clients: Clients, result: RescanResult) -> None:
    """Launch scan instances for the next AMIs this execution has not launched for yet, never more
    than batch_size alive at once."""
    todo = _not_started(request, clients)
    room = request.batch_size - len(_scan_instances(clients.ec2, request.execution_id, ["pending", "running"]))
    for image_id in todo[: max(0, room)]:
        try:
            instance, owner = _launch_one(request, clients.ec2, image_id)
        except ClientError as err:
            raise ScanLaunchFailed(image_id, str(err)) from err
        if owner != request.execution_id:
            # The client token is the image and day: a concurrent rescan already scans this image.
            raise RescanIncomplete(f"{image_id}: scan instance {instance} belongs to rescan {owner}; two rescans ran at once")
        result.launched.append(instance)
    result.remaining = max(0, len(todo) - max(0, room))


def client_token(image_id: str, day: str) -> str:
    """Deterministic per image and day: a second rescan started the same day gets the first one's
    instance back from RunInstances instead of launching another (EC2 idempotency, ClientToken)."""
    return f"bakehouse-rescan-{image_id}-{day}"[:64]


def _launch_one(request: RescanRequest, ec2: AwsClient, image_id: str) -> tuple[str, str]:
    """(instance id, the execution it was launched for)."""
    instance = ec2.run_instances(
        ClientToken=client_token(image_id, datetime.now(UTC).strftime("%Y-%m-%d")),
        ImageId=image_id,
        InstanceType=request.instance_type,
        MinCount=1,
        MaxCount=1,
        SubnetId=request.subnet_id,
        SecurityGroupIds=list(request.security_group_ids),
        IamInstanceProfile={"Name": request.instance_profile},
        MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
        InstanceInitiatedShutdownBehavior="terminate",
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": dict_to_tags(
                    {
                        "Name": f"bakehouse-rescan-{image_id}",
                        TAG_PURPOSE: "rescan",
                        TAG_SCAN_OF: image_id,
                        TAG_EXECUTION: request.execution_id,
                    }
                ),
            }
        ],
    )["Instances"][0]
    return instance["InstanceId"], tags_to_dict(instance.get("Tags")).get(TAG_EXECUTION, request.execution_id)


# --- collect -------------------------------------------------------------------------------------
def _discovery(request: RescanRequest, s3: AwsClient) -> dict[str, Any]:
    try:
        discovery: dict[str, Any] = json.loads(
            s3.get_object(Bucket=request.evidence_bucket, Key=request.discovery_key)["Body"].read()
        )
        return discovery
    except ClientError as err:
        if err.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return {"images": {}}
        raise


def _launched_at(instance: dict[str, Any]) -> datetime:
    when: datetime = instance["LaunchTime"]
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def collect(
    request: RescanRequest,
    clients: Clients,
    now: Callable[[], datetime],
    result: RescanResult,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    patient: bool = True,
) -> None:
    """Judge every live scan instance Inspector has scanned; terminate those, leave the rest pending.

    An instance Inspector has not covered within wait_seconds of its launch fails the phase (the
    document's cleanup then terminates everything); with patient=False any wait that runs out does."""
    step_deadline = clock() + request.step_seconds
    discovery = _discovery(request, clients.s3)
    live = _scan_instances(clients.ec2, request.execution_id, ["pending", "running"])
    done, pending = [], 0
    try:
        for instance in live:
            instance_id = instance["InstanceId"]
            image_id = tags_to_dict(instance.get("Tags"))[TAG_SCAN_OF]
            left_for_instance = request.wait_seconds - (now() - _launched_at(instance)).total_seconds()
            timeout = max(0.0, min(step_deadline - clock(), left_for_instance))
            try:
                wait_for_coverage(clients.inspector2, instance_id, timeout, sleep=sleep)
            except NotCovered as err:
                if patient and isinstance(err.__cause__, PollTimeout) and timeout < left_for_instance:
                    pending += 1  # this step's time is up, not the instance's: the next collect goes on
                    continue
                raise
            _judge(request, clients, instance_id, image_id, discovery["images"].get(image_id, []), now(), result)
            done.append(instance_id)
    finally:
        if done:
            clients.ec2.terminate_instances(InstanceIds=done)
    result.pending = pending
    result.remaining = len(_not_started(request, clients)) if request.image_ids else 0


def _judge_in_place(
    request: RescanRequest,
    clients: Clients,
    image_id: str,
    where: list[tuple[str, str]],
    sources: list[str],
    when: datetime,
    result: RescanResult,
) -> bool:
    """Judge image_id from the findings Inspector holds on the instances running it in each account;
    False (a scan instance is launched instead) when an account's findings cannot be read."""
    findings_in = clients.findings
    if findings_in is None:  # discover finds nothing in place without it
        return False
    findings, criteria = [], []
    for account, local_id in where:
        by_image = {"ec2InstanceImageId": [{"comparison": "EQUALS", "value": local_id}]}
        try:
            findings += list_active_findings(findings_in(account), by_image)
        except (ClientError, BakehouseError):
            return False
        criteria.append({"account": account, **active(by_image)})
    summary = record_summary(
        clients.s3,
        clients.ec2,
        image_id=image_id,
        findings=findings,
        criteria=criteria,
        bucket=request.evidence_bucket,
        key=f"rescans/{when:%Y-%m-%d}/{image_id}.json",
        threshold=request.severity_threshold,
        now=when,
        context={"executionId": request.execution_id, "inPlace": [f"{a}:{i}" for a, i in where], "inUse": sources},
    )
    _verdict(request, clients, image_id, summary, sources, result)
    return True


def _judge(
    request: RescanRequest,
    clients: Clients,
    instance_id: str,
    image_id: str,
    sources: list[str],
    when: datetime,
    result: RescanResult,
) -> None:
    summary = summarize_findings(
        clients.inspector2,
        clients.s3,
        clients.ec2,
        image_id=image_id,
        filter_criteria={"resourceId": [{"comparison": "EQUALS", "value": instance_id}]},
        bucket=request.evidence_bucket,
        key=f"rescans/{when:%Y-%m-%d}/{image_id}.json",
        threshold=request.severity_threshold,
        now=when,
        context={"executionId": request.execution_id, "scanInstance": instance_id, "inUse": sources},
    )
    _verdict(request, clients, image_id, summary, sources, result)


def _verdict(
    request: RescanRequest, clients: Clients, image_id: str, summary: Any, sources: list[str], result: RescanResult
) -> None:
    result.scanned[image_id] = {s.lower(): n for s, n in summary.counts.items()}
    if not summary.blocking:
        return
    tags = tags_to_dict(clients.ec2.describe_images(ImageIds=[image_id])["Images"][0].get("Tags"))
    blocking = set(summary.blocking)
    outcome = quarantine(
        clients.ec2,
        clients.ssm,
        clients.s3,
        clients.sns,
        clients.automation,
        image_id=image_id,
        tags=tags,
        cves=[f["vulnerabilityId"] or f["title"] for f in summary.findings if f["severity"] in blocking],
        topic_arn=request.topic_arn,
        threshold=request.severity_threshold,
        pipeline_document=request.pipeline_document,
        pipeline_role_arn=request.pipeline_role_arn,
        in_use=sources,
        workloads=_workloads(request, clients, result),
        repin_catalog=_catalog_pinner(clients),
    )
    result.quarantined.append(image_id)
    if outcome.rebuild_execution:
        result.rebuilds[image_id] = outcome.rebuild_execution
    if outcome.rebuild_error:
        result.failures.append(f"rebuild of {outcome.family} after quarantining {image_id}: {outcome.rebuild_error}")


def _workloads(request: RescanRequest, clients: Clients, result: RescanResult) -> list[Workload]:
    out = []
    for env, account in _accounts(request, clients):
        try:
            out.append(Workload(env, *clients.workload(account)))
        except (ClientError, BakehouseError) as err:
            result.failures.append(f"quarantine in account {account} ({env}): {err}")
    return out


def _catalog_pinner(clients: Clients) -> Callable[[str, str | None], None] | None:
    """Pins the family's catalog rule through the product and portfolio the factory's settings name."""
    if clients.catalog is None:
        return None
    from handlers.catalog import pin_family

    def pin(family: str, fallback: str | None) -> None:
        try:
            settings = json.loads(clients.ssm.get_parameter(Name=SETTINGS_PARAMETER)["Parameter"]["Value"])
        except (ClientError, ValueError) as err:
            raise RescanIncomplete(f"{SETTINGS_PARAMETER}: unreadable, catalog rule of {family} not pinned") from err
        params = settings.get("pipelineParameters") or {}
        if params.get("CatalogProductId") and params.get("CatalogPortfolioId"):
            pin_family(clients.catalog, params["CatalogPortfolioId"], params["CatalogProductId"], family, fallback)

    return pin


# --- cleanup and the whole run -------------------------------------------------------------------
def cleanup(request: RescanRequest, clients: Clients) -> list[str]:
    """Terminate every instance this execution launched that is still alive (found by tag, so a
    launch whose response was lost is covered too)."""
    alive = [i["InstanceId"] for i in _scan_instances(clients.ec2, request.execution_id, ALIVE)]
    for start in range(0, len(alive), 500):
        clients.ec2.terminate_instances(InstanceIds=alive[start : start + 500])
    return alive


def rescan(
    request: RescanRequest,
    clients: Clients,
    now: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RescanResult:
    now = now or (lambda: datetime.now(UTC))
    result = RescanResult()
    discover(request, clients, now(), result)
    batch = replace(request, image_ids=tuple(result.to_scan), step_seconds=request.wait_seconds)
    try:
        while True:
            launch(batch, clients, result)
            if not _scan_instances(clients.ec2, request.execution_id, ["pending", "running"]):
                break
            collect(batch, clients, now, result, sleep=sleep, clock=clock, patient=False)
    finally:
        cleanup(request, clients)
    if result.failures:
        raise RescanIncomplete("rescan finished with failures: " + "; ".join(result.failures))
    return result


def run_phase(request: RescanRequest, clients: Clients) -> RescanResult:
    result = RescanResult()

    def now() -> datetime:
        return datetime.now(UTC)

    if request.phase == "all":
        return rescan(request, clients)
    if request.phase == "discover":
        discover(request, clients, now(), result)
    elif request.phase == "launch":
        launch(request, clients, result)
    elif request.phase == "collect":
        collect(request, clients, now, result)
    else:
        result.launched = cleanup(request, clients)
        # The cleanup step ends every run: whatever an earlier phase recorded as failed fails it here,
        # after everything is terminated, so a partial rescan never ends in a silent Success.
        failures = _discovery(request, clients.s3).get("failures", [])
        if failures or request.failed:
            raise RescanIncomplete(
                "rescan finished with failures: "
                + "; ".join(failures + (["an earlier step failed; see the execution's step outputs"] if request.failed else []))
            )
    if request.phase == "collect" and result.failures:
        raise RescanIncomplete("rescan collect failed: " + "; ".join(result.failures))
    return result


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SSM aws:executeScript / Lambda entry point; `Phase` picks the part of the run."""
    request = RescanRequest.parse(event)
    session = boto3.Session()  # one session: the service models are loaded once for all clients
    home = client("ec2", session=session)
    region = home.meta.region_name

    sessions: dict[str, Any] = {}

    def scanner(account: str) -> boto3.Session:
        # One assumed session per account and invocation: discovery, findings and quarantine share it.
        if account not in sessions:
            sessions[account] = assumed_session(
                client("sts", session=session),
                f"arn:aws:iam::{account}:role/{SCANNER_ROLE}",
                f"bakehouse-rescan-{request.execution_id}",
                region,
            )
        return sessions[account]

    def workload(account: str) -> tuple[AwsClient, AwsClient]:
        assumed = scanner(account)
        return client("ec2", region, assumed), client("ssm", region, assumed)

    ssm = client("ssm", session=session)
    clients = Clients(
        home,
        ssm,
        client("s3", session=session),
        client("sns", session=session),
        client("inspector2", session=session),
        ssm,
        workload,
        catalog=client("servicecatalog", session=session),
        findings=lambda account: client("inspector2", region, scanner(account)),
    )
    return run_phase(request, clients).as_dict()
