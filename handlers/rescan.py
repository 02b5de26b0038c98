"""Scheduled rescan of every AMI that is published or running, with the CVE feedback loop.

Images come from three places: /bakehouse/images/* in the build account, /bakehouse/<env>/ami/* and
the running instances of each workload account (read through the BakehouseImageScanner role). They
are deduplicated before anything is launched - one scan instance per unique AMI however many
instances run it - and AMIs already tagged vulnerable are not scanned again. Scan instances are
launched in bounded batches; Inspector v2 is polled until it has covered and scanned them; every
instance this run launched is terminated whatever happens (try/finally, then a sweep by tag).

An AMI with findings at or above the threshold is quarantined: its history parameter version is
labelled, the security topic gets the CVE list, the factory Pipeline is started to rebuild the
family from the latest base, and the AMI is tagged vulnerable. A later run deprecates it once the
family's `latest` parameter points elsewhere, i.e. once the replacement is published.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import ClientError

from handlers.common import (
    AMI_ID,
    TAG_FAMILY,
    TAG_RAN_IN,
    TAG_SCAN_DATE,
    BakehouseError,
    EventReader,
    assumed_session,
    client,
    dict_to_tags,
    tags_to_dict,
)

IMAGES_PATH = "/bakehouse/images/"
HISTORY_PARAMETER = "/bakehouse/images/{family}/history"  # as handlers/publish.py writes it
LATEST_PARAMETER = "/bakehouse/images/{family}/latest"
SCANNER_ROLE = "BakehouseImageScanner"  # estate.naming.IMAGE_SCANNER_ROLE
TAG_VULNERABLE = "bakehouse:vulnerable"
TAG_PROD_LAST_SEEN = "bakehouse:prod-last-seen"
TAG_REBUILD = "bakehouse:rebuild-execution"
TAG_RESCAN_EXECUTION = "bakehouse:rescan-execution"
ACCOUNT_ENV = re.compile(r"[a-z][a-z0-9]{1,15}=\d{12}")
SUBNET = re.compile(r"subnet-[0-9a-f]{8,17}")
SECURITY_GROUP = re.compile(r"sg-[0-9a-f]{8,17}")
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}")
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")
DEPRECATION_LEAD = timedelta(minutes=1)


SEVERITY_ORDER = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNTRIAGED")
# Inspector accepts at most 10 values per filter field.
FILTER_VALUES = 10
POLL_SECONDS = 30


class ScanTimedOut(BakehouseError):
    def __init__(self, pending: Iterable[str], waited: int):
        super().__init__(f"Inspector did not scan {', '.join(sorted(pending))} within {waited} s")


def _resource_filter(ids: Sequence[str]) -> list[dict[str, str]]:
    return [{"comparison": "EQUALS", "value": i} for i in ids]


def wait_for_findings(inspector, instance_ids: Sequence[str], wait_seconds: int,
                      sleep: Callable[[float], None], clock: Callable[[], float]) -> dict[str, list[dict[str, Any]]]:
    """Poll coverage until every instance has been scanned, then read its active findings."""
    deadline = clock() + wait_seconds
    pending = set(instance_ids)
    while pending:
        for chunk in _batches(sorted(pending), FILTER_VALUES):
            pages = inspector.get_paginator("list_coverage").paginate(filterCriteria={
                "resourceId": _resource_filter(chunk),
                "scanStatusCode": [{"comparison": "EQUALS", "value": "ACTIVE"}]})
            pending -= {r["resourceId"] for p in pages for r in p["coveredResources"] if r.get("lastScannedAt")}
        if not pending:
            break
        if clock() >= deadline:
            raise ScanTimedOut(pending, wait_seconds)
        sleep(POLL_SECONDS)
    out: dict[str, list[dict[str, Any]]] = {i: [] for i in instance_ids}
    for chunk in _batches(list(instance_ids), FILTER_VALUES):
        pages = inspector.get_paginator("list_findings").paginate(filterCriteria={
            "resourceId": _resource_filter(chunk),
            "findingStatus": [{"comparison": "EQUALS", "value": "ACTIVE"}]})
        for page in pages:
            for finding in page["findings"]:
                for resource in finding.get("resources", []):
                    if resource.get("id") in out:
                        out[resource["id"]].append(finding)
    return out


class RescanFailed(BakehouseError):
    pass


@dataclass(frozen=True)
class RescanRequest:
    accounts: tuple[tuple[str, str], ...]  # (env, account id) of the workload accounts
    subnet_id: str
    security_group_ids: tuple[str, ...]
    instance_profile: str
    evidence_bucket: str
    topic_arn: str
    pipeline_role_arn: str
    execution_id: str
    batch_size: int = 10
    severity_threshold: str = "HIGH"
    wait_seconds: int = 1800
    instance_type: str = "t3.medium"
    prod_env: str = "prod"
    pipeline_document: str = "Bakehouse-Pipeline"

    @classmethod
    def parse(cls, event: Any) -> RescanRequest:
        r = EventReader("rescan", event)
        threshold = r.string("SeverityThreshold", default="HIGH")
        if threshold and threshold not in ("CRITICAL", "HIGH", "MEDIUM", "LOW"):
            r.problems.append(f"SeverityThreshold is {threshold!r}, expected CRITICAL, HIGH, MEDIUM or LOW")
        request = cls(
            accounts=tuple(tuple(a.split("=", 1)) for a in r.strings("WorkloadAccounts", ACCOUNT_ENV, allow_empty=True)),
            subnet_id=r.string("SubnetId", SUBNET),
            security_group_ids=r.strings("SecurityGroupIds", SECURITY_GROUP),
            instance_profile=r.string("InstanceProfileName"),
            evidence_bucket=r.string("EvidenceBucket", BUCKET),
            topic_arn=r.string("TopicArn", TOPIC_ARN),
            pipeline_role_arn=r.string("PipelineRoleArn", ROLE_ARN),
            execution_id=r.string("ExecutionId", default="manual"),
            # EC2's default On-Demand vCPU quota is the real bound; 100 keeps one batch well inside it.
            batch_size=r.integer("BatchSize", 1, 100, default=10),
            severity_threshold=threshold,
            wait_seconds=r.integer("WaitSeconds", 60, 7200, default=1800),
            instance_type=r.string("InstanceType", default="t3.medium"),
            prod_env=r.string("ProdEnv", default="prod"),
            pipeline_document=r.string("PipelineDocument", default="Bakehouse-Pipeline"),
        )
        r.done()
        return request


@dataclass
class Candidate:
    image_id: str
    sources: set[str] = field(default_factory=set)  # "parameter:<name>", "running:<env>"
    family: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def ran_in(self, env: str) -> bool:
        return f"running:{env}" in self.sources


@dataclass(frozen=True)
class Clients:
    """Build-account clients, plus how to read a workload account (its EC2 and SSM)."""
    ec2: Any
    ssm: Any
    s3: Any
    sns: Any
    inspector2: Any
    automation: Any  # SSM client used only for start_automation_execution
    workload: Callable[[str], tuple[Any, Any]]


@dataclass
class RescanResult:
    candidates: int = 0
    unresolved: list[str] = field(default_factory=list)
    skipped_vulnerable: list[str] = field(default_factory=list)
    launched: list[str] = field(default_factory=list)
    scanned: dict[str, dict[str, int]] = field(default_factory=dict)
    quarantined: list[str] = field(default_factory=list)
    rebuilds: dict[str, str] = field(default_factory=dict)
    deprecated: list[str] = field(default_factory=list)
    marked_prod: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "Candidates": self.candidates, "Unresolved": self.unresolved,
            "SkippedVulnerable": self.skipped_vulnerable, "Launched": len(self.launched),
            "Scanned": self.scanned, "Quarantined": self.quarantined, "Rebuilds": self.rebuilds,
            "Deprecated": self.deprecated, "MarkedProd": self.marked_prod,
        }


# --- discovery -----------------------------------------------------------------------------------
def _parameter_amis(ssm, path: str) -> Iterator[tuple[str, str]]:
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=True):
        for p in page["Parameters"]:
            if AMI_ID.fullmatch(p["Value"]):
                yield p["Name"], p["Value"]


def _running_amis(ec2) -> Iterator[str]:
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                yield instance["ImageId"]


def discover(request: RescanRequest, clients: Clients) -> dict[str, Candidate]:
    found: dict[str, Candidate] = {}

    def add(image_id: str, source: str) -> None:
        found.setdefault(image_id, Candidate(image_id)).sources.add(source)

    for name, image_id in _parameter_amis(clients.ssm, IMAGES_PATH):
        add(image_id, f"parameter:{name}")
    for env, account in request.accounts:
        ec2, ssm = clients.workload(account)
        for name, image_id in _parameter_amis(ssm, f"/bakehouse/{env}/ami/"):
            add(image_id, f"parameter:{account}:{name}")
        for image_id in set(_running_amis(ec2)):  # a set: 500 instances of one AMI are one candidate
            add(image_id, f"running:{env}")
    return found


def _describe_owned(ec2, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for start in range(0, len(image_ids), 100):
        chunk = list(image_ids[start:start + 100])
        # A filter, not ImageIds: one unknown id (a team's own AMI) would fail the whole call.
        pages = _images(ec2, Owners=["self"], Filters=[{"Name": "image-id", "Values": chunk}])
        out.update({i["ImageId"]: i for i in pages})
    return out


def _images(ec2, **params: Any) -> Iterator[dict[str, Any]]:
    for page in ec2.get_paginator("describe_images").paginate(**params):
        yield from page["Images"]


# --- scanning ------------------------------------------------------------------------------------
def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _launch(ec2, request: RescanRequest, image_id: str) -> str:
    return ec2.run_instances(
        ImageId=image_id, InstanceType=request.instance_type, MinCount=1, MaxCount=1,
        SubnetId=request.subnet_id, SecurityGroupIds=list(request.security_group_ids),
        IamInstanceProfile={"Name": request.instance_profile},
        MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
        InstanceInitiatedShutdownBehavior="terminate",
        TagSpecifications=[{"ResourceType": "instance", "Tags": dict_to_tags({
            "Name": f"bakehouse-rescan-{image_id}", "bakehouse:purpose": "rescan",
            "bakehouse:scan-of": image_id, TAG_RESCAN_EXECUTION: request.execution_id})}],
    )["Instances"][0]["InstanceId"]


def _terminate(ec2, instance_ids: Iterable[str]) -> None:
    ids = sorted(set(instance_ids))
    for chunk in _batches(ids, 500):
        ec2.terminate_instances(InstanceIds=list(chunk))


def _sweep(ec2, execution_id: str) -> list[str]:
    """Instances tagged with this execution that are still alive: covers a launch whose response
    was lost, which no list kept in memory would know about."""
    pages = ec2.get_paginator("describe_instances").paginate(Filters=[
        {"Name": f"tag:{TAG_RESCAN_EXECUTION}", "Values": [execution_id]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    return [i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]]


def scan(request: RescanRequest, clients: Clients, image_ids: Sequence[str], result: RescanResult,
         sleep: Callable[[float], None], clock: Callable[[], float]) -> dict[str, list[dict[str, Any]]]:
    """Findings per AMI; every scan instance is terminated before this returns or raises."""
    findings: dict[str, list[dict[str, Any]]] = {}
    try:
        for batch in _batches(list(image_ids), request.batch_size):
            by_instance: dict[str, str] = {}
            try:
                for image_id in batch:
                    instance_id = _launch(clients.ec2, request, image_id)
                    result.launched.append(instance_id)
                    by_instance[instance_id] = image_id
                per_instance = wait_for_findings(clients.inspector2, sorted(by_instance), request.wait_seconds,
                                                 sleep=sleep, clock=clock)
            finally:
                _terminate(clients.ec2, by_instance)
            for instance_id, image_id in by_instance.items():
                findings[image_id] = per_instance[instance_id]
    finally:
        leftovers = _sweep(clients.ec2, request.execution_id)
        if leftovers:
            _terminate(clients.ec2, leftovers)
    return findings


def counts(findings: Iterable[dict[str, Any]]) -> dict[str, int]:
    out = {s.lower(): 0 for s in SEVERITY_ORDER}
    for f in findings:
        key = f.get("severity", "UNTRIAGED").lower()
        out[key] = out.get(key, 0) + 1
    return out


def above_threshold(findings: Iterable[dict[str, Any]], threshold: str) -> list[dict[str, Any]]:
    limit = SEVERITY_ORDER.index(threshold)
    return [f for f in findings if f.get("severity") in SEVERITY_ORDER[:limit + 1]]


def _cve(finding: dict[str, Any]) -> str:
    return finding.get("packageVulnerabilityDetails", {}).get("vulnerabilityId") or finding.get("title", "?")


# --- recording and the feedback loop -------------------------------------------------------------
def record(request: RescanRequest, clients: Clients, candidate: Candidate, found: list[dict[str, Any]],
           today: str) -> dict[str, int]:
    tally = counts(found)
    key = f"rescans/{today}/{candidate.image_id}.json"
    report = {"image_id": candidate.image_id, "family": candidate.family, "scan_date": today,
              "execution_id": request.execution_id, "sources": sorted(candidate.sources), "counts": tally,
              "findings": [{"cve": _cve(f), "severity": f.get("severity"), "title": f.get("title"),
                            "arn": f.get("findingArn")} for f in found]}
    clients.s3.put_object(Bucket=request.evidence_bucket, Key=key, Body=json.dumps(report, indent=1).encode(),
                          ContentType="application/json")
    tags = {TAG_SCAN_DATE: today, **{f"bakehouse:cves-{s}": str(n) for s, n in tally.items()}}
    clients.ec2.create_tags(Resources=[candidate.image_id], Tags=dict_to_tags(tags))
    return tally


def quarantine(request: RescanRequest, clients: Clients, candidate: Candidate, bad: list[dict[str, Any]],
               result: RescanResult) -> None:
    image_id, family = candidate.image_id, candidate.family
    if family:
        name = HISTORY_PARAMETER.format(family=family)
        label = f"quarantined-{image_id}"
        try:
            versions = [p for page in clients.ssm.get_paginator("get_parameter_history").paginate(Name=name)
                        for p in page["Parameters"]]
        except ClientError as err:
            if err.response["Error"]["Code"] != "ParameterNotFound":
                raise
            versions = []
        for version in versions:
            if version["Value"] == image_id and label not in version.get("Labels", []):
                clients.ssm.label_parameter_version(Name=name, ParameterVersion=version["Version"], Labels=[label])
    cves = sorted({_cve(f) for f in bad})
    clients.sns.publish(TopicArn=request.topic_arn, Subject=f"Bakehouse: {image_id} is vulnerable"[:100],
                        Message=json.dumps({"image_id": image_id, "family": family, "threshold": request.severity_threshold,
                                            "cves": cves, "in_use": sorted(candidate.sources)}, indent=1))
    tags = {TAG_VULNERABLE: "true"}
    if family and TAG_REBUILD not in candidate.tags:
        execution = clients.automation.start_automation_execution(
            DocumentName=request.pipeline_document,
            Parameters={"Family": [family], "AutomationAssumeRole": [request.pipeline_role_arn]},
        )["AutomationExecutionId"]
        tags[TAG_REBUILD] = execution
        result.rebuilds[image_id] = execution
    clients.ec2.create_tags(Resources=[image_id], Tags=dict_to_tags(tags))
    result.quarantined.append(image_id)


def retire_replaced(clients: Clients, now: datetime, result: RescanResult) -> None:
    """Deprecate quarantined AMIs whose family has published a replacement since."""
    for image in _images(clients.ec2, Owners=["self"],
                                  Filters=[{"Name": f"tag:{TAG_VULNERABLE}", "Values": ["true"]}]):
        family = tags_to_dict(image.get("Tags")).get(TAG_FAMILY)
        if image.get("DeprecationTime") or not family:
            continue
        try:
            latest = clients.ssm.get_parameter(Name=LATEST_PARAMETER.format(family=family))["Parameter"]["Value"]
        except ClientError as err:
            if err.response["Error"]["Code"] != "ParameterNotFound":
                raise
            continue
        if latest != image["ImageId"]:
            clients.ec2.enable_image_deprecation(ImageId=image["ImageId"], DeprecateAt=now + DEPRECATION_LEAD)
            result.deprecated.append(image["ImageId"])


def mark_prod(request: RescanRequest, clients: Clients, candidate: Candidate, today: str, result: RescanResult) -> None:
    if candidate.ran_in(request.prod_env) and (candidate.tags.get(TAG_RAN_IN) != "prod"
                                                or candidate.tags.get(TAG_PROD_LAST_SEEN) != today):
        clients.ec2.create_tags(Resources=[candidate.image_id],
                                Tags=dict_to_tags({TAG_RAN_IN: "prod", TAG_PROD_LAST_SEEN: today}))
        result.marked_prod.append(candidate.image_id)


# --- the whole run -------------------------------------------------------------------------------
def rescan(request: RescanRequest, clients: Clients, now: datetime | None = None,
           sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> RescanResult:
    now = now or datetime.now(timezone.utc)
    today = now.strftime("%Y-%m-%d")
    result = RescanResult()
    retire_replaced(clients, now, result)
    found = discover(request, clients)
    result.candidates = len(found)
    owned = _describe_owned(clients.ec2, sorted(found))
    result.unresolved = sorted(set(found) - set(owned))
    to_scan = []
    for image_id in sorted(owned):
        candidate = found[image_id]
        candidate.tags = tags_to_dict(owned[image_id].get("Tags"))
        candidate.family = candidate.tags.get(TAG_FAMILY)
        mark_prod(request, clients, candidate, today, result)
        if candidate.tags.get(TAG_VULNERABLE) == "true":
            result.skipped_vulnerable.append(image_id)
        else:
            to_scan.append(image_id)
    findings = scan(request, clients, to_scan, result, sleep, clock)
    for image_id in to_scan:
        candidate = found[image_id]
        result.scanned[image_id] = record(request, clients, candidate, findings[image_id], today)
        bad = above_threshold(findings[image_id], request.severity_threshold)
        if bad:
            quarantine(request, clients, candidate, bad, result)
    return result


def handler(event: dict, context: Any) -> dict:
    request = RescanRequest.parse(event)
    sts = client("sts")
    region = client("ec2").meta.region_name

    def workload(account: str):
        session = assumed_session(sts, f"arn:aws:iam::{account}:role/{SCANNER_ROLE}",
                                  f"bakehouse-rescan-{request.execution_id}", region)
        return client("ec2", region, session), client("ssm", region, session)

    ssm = client("ssm")
    clients = Clients(client("ec2"), ssm, client("s3"), client("sns"), client("inspector2"), ssm, workload)
    try:
        return rescan(request, clients).as_dict()
    except ScanTimedOut as err:
        raise RescanFailed(str(err)) from err
