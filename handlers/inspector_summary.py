"""Inspector v2 verdict on an image: wait for coverage, count findings, write evidence, tag, judge.

Used by ValidateImage (the test instance launched from a new AMI) and, through summarize_findings,
by the operations rescan (every image in use). Coverage is polled with backoff: a scan finishes
minutes after the SSM agent reports inventory, never at a predictable time.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from handlers.common import AMI_ID, INSTANCE_ID, TAG_SCAN_DATE, BakehouseError, EventReader, PollTimeout, client, poll
from handlers.contract import BUCKET_NAME as BUCKET
from handlers.contract import EXECUTION_REF, FAMILY, TAG_CVES, TAG_VERDICT

# Highest first; a threshold fails the image on any ACTIVE finding at or above it.
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL")
THRESHOLDS = SEVERITIES + ("NONE",)
COUNTED = SEVERITIES + ("UNTRIAGED",)
# Inactive coverage that waiting will not fix: report at once instead of burning the timeout.
TERMINAL_REASONS = frozenset(
    {
        "UNSUPPORTED_OS",
        "EXCLUDED_BY_TAG",
        "RESOURCE_TERMINATED",
        "ACCESS_DENIED",
        "ACCESS_DENIED_TO_ENCRYPTION_KEY",
        "NO_SCAN_CONFIGURATION_ASSOCIATED",
    }
)
KMS_KEY_REF = re.compile(
    r"(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[A-Za-z0-9/_-]+|alias/[A-Za-z0-9/_-]+"
    r"|[0-9a-f-]{36})"
)


class NotCovered(BakehouseError):
    """Inspector did not (or cannot) scan the resource."""


class FindingsAboveThreshold(BakehouseError):
    """The image has ACTIVE findings at or above the configured severity."""


class EvidenceNotEncrypted(BakehouseError):
    """No customer-managed key to encrypt the summary with (none given, none as bucket default)."""


class FindingsReportFailed(BakehouseError):
    """Inspector could not export its findings report (bucket, key or permissions)."""


@dataclass(frozen=True)
class SummaryRequest:
    image_id: str
    instance_id: str
    family: str
    bucket: str
    threshold: str
    wait_seconds: int
    poll_seconds: int
    execution_id: str
    kms_key_id: str | None
    full_report: bool = False  # also export Inspector's own JSON findings report beside the summary

    @classmethod
    def parse(cls, event: Any) -> SummaryRequest:
        read = EventReader("inspector_summary", event)
        instance = read.event.get("InstanceId")
        if isinstance(instance, list | tuple) and len(instance) == 1:
            # aws:runInstances outputs InstanceIds as a StringList; a single test instance is expected.
            read.event = {**read.event, "InstanceId": instance[0]}
        threshold = read.string("SeverityThreshold", default="HIGH")
        if threshold and threshold not in THRESHOLDS:
            read.problems.append(f"SeverityThreshold is {threshold!r}, expected one of {', '.join(THRESHOLDS)}")
        kms = read.event.get("KmsKeyId")
        request = cls(
            image_id=read.string("ImageId", AMI_ID),
            instance_id=read.string("InstanceId", INSTANCE_ID),
            family=read.string("Family", FAMILY),
            bucket=read.string("FindingsBucket", BUCKET),
            threshold=threshold,
            wait_seconds=read.integer("WaitSeconds", 0, 4 * 3600, 540),
            poll_seconds=read.integer("PollSeconds", 0, 300, 15),
            execution_id=read.string("ExecutionId", EXECUTION_REF, "manual"),
            kms_key_id=read.string("KmsKeyId", KMS_KEY_REF) if kms not in (None, "") else None,
            full_report=read.boolean("FullReport", False),
        )
        read.done()
        return request


@dataclass(frozen=True)
class Summary:
    image_id: str
    threshold: str
    counts: dict[str, int]
    findings: tuple[dict[str, Any], ...] = field(repr=False)
    bucket: str = ""
    key: str = ""

    @property
    def blocking(self) -> dict[str, int]:
        """Counts at or above the threshold (empty when the threshold is NONE)."""
        if self.threshold == "NONE":
            return {}
        limit = SEVERITIES.index(self.threshold)
        return {s: self.counts[s] for s in SEVERITIES[: limit + 1] if self.counts[s]}

    @property
    def verdict(self) -> str:
        return "FAIL" if self.blocking else "PASS"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ImageId": self.image_id,
            "Verdict": self.verdict,
            "Threshold": self.threshold,
            "Counts": dict(self.counts),
            "SummaryBucket": self.bucket,
            "SummaryKey": self.key,
        }


def wait_for_coverage(
    inspector: Any, resource_id: str, timeout: float, first_delay: float = 15.0, sleep: Callable[[float], None] | None = None
) -> dict[str, Any]:
    """The coverage record of `resource_id` once its first scan has completed."""
    criteria = {"resourceId": [{"comparison": "EQUALS", "value": resource_id}]}

    def check() -> dict[str, Any] | None:
        for page in inspector.get_paginator("list_coverage").paginate(filterCriteria=criteria):
            for resource in page["coveredResources"]:
                status = resource["scanStatus"]
                if status["statusCode"] == "ACTIVE" and status["reason"] == "SUCCESSFUL":
                    covered: dict[str, Any] = resource
                    return covered
                if status["statusCode"] == "INACTIVE" and status["reason"] in TERMINAL_REASONS:
                    raise NotCovered(f"{resource_id}: Inspector cannot scan it ({status['reason']})")
        return None

    try:
        return poll(
            check,
            f"Inspector coverage of {resource_id}",
            first_delay=first_delay,
            max_delay=max(first_delay, 60),
            timeout=timeout,
            sleep=sleep,
        )
    except PollTimeout as err:
        raise NotCovered(f"{resource_id}: not scanned by Inspector within {timeout:g}s") from err


def _brief(finding: dict[str, Any]) -> dict[str, Any]:
    vuln = finding.get("packageVulnerabilityDetails", {})
    packages = vuln.get("vulnerablePackages", [])
    return {
        "findingArn": finding["findingArn"],
        "severity": finding["severity"],
        "title": finding.get("title", ""),
        "vulnerabilityId": vuln.get("vulnerabilityId"),
        "resourceId": finding["resources"][0]["id"],
        "packages": [{"name": p["name"], "version": p["version"], "fixedInVersion": p.get("fixedInVersion")} for p in packages],
        "fixAvailable": finding.get("fixAvailable"),
    }


def _kms_key(s3: Any, bucket: str, given: str | None) -> str:
    if given:
        return given
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    except ClientError as err:
        raise EvidenceNotEncrypted(f"{bucket}: no default encryption and no KmsKeyId given") from err
    for rule in rules:
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm", "").startswith("aws:kms") and default.get("KMSMasterKeyID"):
            key_id: str = default["KMSMasterKeyID"]
            return key_id
    raise EvidenceNotEncrypted(f"{bucket}: default encryption is not a customer-managed KMS key")


def summarize_findings(
    inspector: Any,
    s3: Any,
    ec2: Any,
    *,
    image_id: str,
    filter_criteria: dict[str, Any],
    bucket: str,
    key: str,
    threshold: str = "HIGH",
    kms_key_id: str | None = None,
    context: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> Summary:
    """Collect ACTIVE findings matching `filter_criteria`, write the JSON summary, tag `image_id`.

    Judges nothing by itself beyond computing the verdict: callers decide whether FAIL raises
    (validation) or quarantines (rescan). Reusable for any image: pass resourceId filters for a
    test instance, or an ec2InstanceImageId filter for every instance running an image.
    """
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold {threshold!r} is not one of {THRESHOLDS}")
    criteria = active(filter_criteria)
    return record_summary(
        s3,
        ec2,
        image_id=image_id,
        findings=list_active_findings(inspector, filter_criteria),
        criteria=criteria,
        bucket=bucket,
        key=key,
        threshold=threshold,
        kms_key_id=kms_key_id,
        context=context,
        now=now,
    )


def active(filter_criteria: dict[str, Any]) -> dict[str, Any]:
    return {**filter_criteria, "findingStatus": [{"comparison": "EQUALS", "value": "ACTIVE"}]}


def list_active_findings(inspector: Any, filter_criteria: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        f
        for page in inspector.get_paginator("list_findings").paginate(filterCriteria=active(filter_criteria))
        for f in page["findings"]
    ]


def record_summary(
    s3: Any,
    ec2: Any,
    *,
    image_id: str,
    findings: list[dict[str, Any]],
    criteria: Any,
    bucket: str,
    key: str,
    threshold: str = "HIGH",
    kms_key_id: str | None = None,
    context: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> Summary:
    """Count `findings` (however they were gathered: one instance, or every account running the
    image), write the JSON summary and tag `image_id`."""
    if threshold not in THRESHOLDS:
        raise ValueError(f"threshold {threshold!r} is not one of {THRESHOLDS}")
    counted = Counter(f["severity"] for f in findings)
    counts = {s: counted.get(s, 0) for s in COUNTED}
    summary = Summary(image_id, threshold, counts, tuple(_brief(f) for f in findings), bucket, key)
    when = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")

    body = {
        "imageId": image_id,
        "generatedAt": when,
        "verdict": summary.verdict,
        "threshold": threshold,
        "blocking": summary.blocking,
        "counts": counts,
        "filter": criteria,
        "context": context or {},
        "findings": list(summary.findings),
    }
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(body, indent=1, sort_keys=True).encode(),
        ContentType="application/json",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=_kms_key(s3, bucket, kms_key_id),
    )

    tags = {TAG_CVES.format(s.lower()): str(counts[s]) for s in COUNTED}
    tags.update({TAG_SCAN_DATE: when, TAG_VERDICT: summary.verdict})
    ec2.create_tags(Resources=[image_id], Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])
    return summary


def export_findings_report(
    inspector: Any,
    *,
    bucket: str,
    key_prefix: str,
    kms_key_arn: str,
    filter_criteria: dict[str, Any],
    timeout: float = 300,
    first_delay: float = 5,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, str]:
    """Inspector's own JSON report of the matching findings, written by Inspector into `bucket`.

    NO_FINDINGS_FOUND is an answer, not a failure: a clean image has nothing to export.
    """
    if not re.fullmatch(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+", kms_key_arn):
        raise EvidenceNotEncrypted(f"{bucket}: Inspector reports need a KMS key ARN, got {kms_key_arn!r}")
    report_id = inspector.create_findings_report(
        reportFormat="JSON",
        filterCriteria=filter_criteria,
        s3Destination={"bucketName": bucket, "keyPrefix": key_prefix, "kmsKeyArn": kms_key_arn},
    )["reportId"]

    def check() -> dict[str, Any] | None:
        status = inspector.get_findings_report_status(reportId=report_id)
        return None if status["status"] == "IN_PROGRESS" else status

    status = poll(
        check,
        f"Inspector findings report {report_id}",
        first_delay=first_delay,
        max_delay=max(first_delay, 30),
        timeout=timeout,
        sleep=sleep,
    )
    if status["status"] == "SUCCEEDED" or status.get("errorCode") == "NO_FINDINGS_FOUND":
        return {
            "ReportId": report_id,
            "ReportStatus": status["status"],
            "ReportError": status.get("errorCode", ""),
            "ReportPrefix": key_prefix,
        }
    raise FindingsReportFailed(
        f"report {report_id} for s3://{bucket}/{key_prefix}: {status['status']} "
        f"{status.get('errorCode', '')} {status.get('errorMessage', '')}".strip()
    )


def validate_image(
    request: SummaryRequest, inspector: Any, s3: Any, ec2: Any, sleep: Callable[[float], None] | None = None
) -> Summary:
    """ValidateImage's Inspector gate: raises FindingsAboveThreshold after recording the evidence."""
    coverage = wait_for_coverage(inspector, request.instance_id, request.wait_seconds, request.poll_seconds, sleep)
    by_instance = {"resourceId": [{"comparison": "EQUALS", "value": request.instance_id}]}
    report: dict[str, str] = {}
    if request.full_report:  # before the summary, so a failing image still leaves Inspector's own report
        report = export_findings_report(
            inspector,
            bucket=request.bucket,
            key_prefix=f"inspector/{request.family}/{request.image_id}/full",
            kms_key_arn=_kms_key(s3, request.bucket, request.kms_key_id),
            filter_criteria=by_instance,
            first_delay=max(request.poll_seconds, 1),
            sleep=sleep,
        )
    key = f"inspector/{request.family}/{request.image_id}/{request.execution_id}.json"
    summary = summarize_findings(
        inspector,
        s3,
        ec2,
        image_id=request.image_id,
        bucket=request.bucket,
        key=key,
        threshold=request.threshold,
        filter_criteria=by_instance,
        kms_key_id=request.kms_key_id,
        context={
            "instanceId": request.instance_id,
            "executionId": request.execution_id,
            "lastScannedAt": str(coverage.get("lastScannedAt", "")),
            **report,
        },
    )
    if summary.blocking:
        counts = ", ".join(f"{n} {s}" for s, n in summary.blocking.items())
        raise FindingsAboveThreshold(
            f"{request.image_id}: {counts} at or above {request.threshold} (s3://{request.bucket}/{key})"
        )
    return summary


def handler(events: dict[str, Any], context: Any) -> dict[str, Any]:
    """SSM aws:executeScript entry point (InputPayload arrives as `events`).

    Event: ImageId, InstanceId (or a one-item list), Family, FindingsBucket, SeverityThreshold,
    WaitSeconds, PollSeconds, ExecutionId, KmsKeyId (optional), FullReport (optional).
    Output: ImageId, Verdict, Threshold, Counts, SummaryBucket, SummaryKey; raises
    FindingsAboveThreshold (after writing the evidence) when the verdict is FAIL.
    """
    request = SummaryRequest.parse(events)
    return validate_image(request, inspector=client("inspector2"), s3=client("s3"), ec2=client("ec2")).as_dict()
