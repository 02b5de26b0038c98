"""Inspector v2: moto 5.2.5 answers list_coverage / create_findings_report / get_findings_report_status
with 404 "Not yet implemented", and its list_findings always returns nothing (no way to seed)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ._base import RecordingFake, faked

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNTRIAGED")
_KMS_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+")
_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass
class _Coverage:
    resource: dict[str, Any]
    visible_after: int  # list_coverage calls before this resource shows up


@dataclass
class _Report:
    report_id: str
    destination: dict[str, Any]
    filter_criteria: dict[str, Any]
    report_format: str
    polls_left: int
    status: str = "IN_PROGRESS"
    error: tuple[str, str] | None = None
    key: str | None = None


@dataclass
class Inspector2State:
    coverage: list[_Coverage] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, _Report] = field(default_factory=dict)
    coverage_polls: int = 0


def _string_match(value: str | None, filters: list[dict[str, str]]) -> bool:
    """Inspector ORs the filters of one field (EQUALS / PREFIX / NOT_EQUALS)."""
    if not filters:
        return True
    value = value or ""
    for f in filters:
        cmp, want = f["comparison"], f["value"]
        if (
            (cmp == "EQUALS" and value == want)
            or (cmp == "PREFIX" and value.startswith(want))
            or (cmp == "NOT_EQUALS" and value != want)
        ):
            return True
    return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


class FakeInspector2(RecordingFake):
    """Seed with add_coverage / add_finding; the report lands in a real moto S3 bucket.

    s3 is a moto S3 client (reports are written there); kms, when given, is a moto KMS client used
    to check the report's key exists, as Inspector does before writing.
    """

    SERVICE = "inspector2"
    FAKED = frozenset({"list_coverage", "list_findings", "create_findings_report", "get_findings_report_status"})

    # Coverage filter fields this fake understands; others are refused rather than ignored.
    _COVERAGE_FIELDS = {"resourceId", "accountId", "resourceType", "scanType", "scanStatusCode", "ec2InstanceTags"}
    _FINDING_FIELDS = {
        "resourceId",
        "ec2InstanceImageId",
        "severity",
        "findingStatus",
        "awsAccountId",
        "resourceType",
        "vulnerabilityId",
        "findingType",
    }

    def __init__(
        self,
        inner: Any,
        s3: Any = None,
        kms: Any = None,
        account_id: str = "123456789012",
        region: str = "eu-west-1",
        report_polls: int = 1,
        state: Inspector2State | None = None,
    ):
        super().__init__(inner)
        self.s3, self.kms = s3, kms
        self.account_id, self.region = account_id, region
        self.report_polls = report_polls
        self.state = state or Inspector2State()
        self._seq = itertools.count(1)

    # --- seeding ------------------------------------------------------------------------------
    def add_coverage(
        self,
        resource_id: str,
        *,
        ami_id: str | None = None,
        tags: dict[str, str] | None = None,
        after_polls: int = 0,
        status: str = "ACTIVE",
        reason: str = "SUCCESSFUL",
        resource_type: str = "AWS_EC2_INSTANCE",
        scan_type: str = "PACKAGE",
    ) -> None:
        """Make `resource_id` covered; it appears once list_coverage has been called `after_polls` times."""
        ec2: dict[str, Any] = {"tags": dict(tags or {}), "platform": "LINUX"}
        if ami_id:
            ec2["amiId"] = ami_id
        resource = {
            "resourceType": resource_type,
            "resourceId": resource_id,
            "accountId": self.account_id,
            "scanType": scan_type,
            "scanStatus": {"statusCode": status, "reason": reason},
            "resourceMetadata": {"ec2": ec2},
            "scanMode": "EC2_SSM_AGENT_BASED",
        }
        if status == "ACTIVE":
            resource["lastScannedAt"] = _EPOCH
        self.state.coverage.append(_Coverage(resource, self.state.coverage_polls + after_polls))

    def add_finding(
        self,
        resource_id: str,
        severity: str,
        *,
        ami_id: str | None = None,
        vulnerability_id: str | None = None,
        status: str = "ACTIVE",
        package: str = "openssl",
        fixed_in: str | None = "3.0.8",
    ) -> str:
        """Seed one package-vulnerability finding on an EC2 instance; returns its ARN."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity {severity!r} is not one of {SEVERITIES}")
        n = next(self._seq)
        arn = f"arn:aws:inspector2:{self.region}:{self.account_id}:finding/{uuid.UUID(int=n).hex}"
        vuln = vulnerability_id or f"CVE-2026-{10000 + n}"
        package_detail: dict[str, Any] = {"name": package, "version": "3.0.7", "packageManager": "OS"}
        if fixed_in:
            package_detail["fixedInVersion"] = fixed_in
        instance: dict[str, Any] = {"type": "t3.micro", "platform": "AMAZON_LINUX_2023"}
        if ami_id:
            instance["imageId"] = ami_id
        self.state.findings.append(
            {
                "findingArn": arn,
                "awsAccountId": self.account_id,
                "type": "PACKAGE_VULNERABILITY",
                "title": f"{vuln} - {package}",
                "description": f"{vuln} in {package}",
                "remediation": {"recommendation": {"text": f"Update {package}"}},
                "severity": severity,
                "status": status,
                "firstObservedAt": _EPOCH,
                "lastObservedAt": _EPOCH,
                "updatedAt": _EPOCH,
                "resources": [
                    {
                        "type": "AWS_EC2_INSTANCE",
                        "id": resource_id,
                        "partition": "aws",
                        "region": self.region,
                        "details": {"awsEc2Instance": instance},
                    }
                ],
                "packageVulnerabilityDetails": {"vulnerabilityId": vuln, "source": "NVD", "vulnerablePackages": [package_detail]},
                "fixAvailable": "YES" if fixed_in else "NO",
            }
        )
        return arn

    # --- list_coverage ------------------------------------------------------------------------
    def _coverage_matches(self, resource: dict[str, Any], criteria: dict[str, Any]) -> bool:
        unknown = set(criteria) - self._COVERAGE_FIELDS
        if unknown:
            raise NotImplementedError(f"FakeInspector2.list_coverage does not filter on {sorted(unknown)}")
        fields = {
            "resourceId": resource["resourceId"],
            "accountId": resource["accountId"],
            "resourceType": resource["resourceType"],
            "scanType": resource["scanType"],
            "scanStatusCode": resource["scanStatus"]["statusCode"],
        }
        for name, value in fields.items():
            if not _string_match(value, criteria.get(name, [])):
                return False
        tag_filters = criteria.get("ec2InstanceTags", [])
        if tag_filters:
            tags = resource.get("resourceMetadata", {}).get("ec2", {}).get("tags", {})
            if not any(f["key"] in tags and ("value" not in f or tags[f["key"]] == f["value"]) for f in tag_filters):
                return False
        return True

    @staticmethod
    def _page(items: list[dict[str, Any]], key: str, maxResults: int | None, nextToken: str | None, limit: int) -> dict[str, Any]:
        start = int(nextToken) if nextToken else 0
        size = min(maxResults or limit, limit)
        response: dict[str, Any] = {key: items[start : start + size]}
        if start + size < len(items):
            response["nextToken"] = str(start + size)
        return response

    @faked
    def _list_coverage(
        self, filterCriteria: dict | None = None, maxResults: int | None = None, nextToken: str | None = None
    ) -> dict:
        if not nextToken:  # a new listing is one poll; further pages of it are not
            self.state.coverage_polls += 1
        visible = [c.resource for c in self.state.coverage if self.state.coverage_polls > c.visible_after]
        matching = [r for r in visible if self._coverage_matches(r, filterCriteria or {})]
        return self._page(matching, "coveredResources", maxResults, nextToken, 200)

    # --- list_findings ------------------------------------------------------------------------
    def _finding_matches(self, finding: dict[str, Any], criteria: dict[str, Any]) -> bool:
        unknown = set(criteria) - self._FINDING_FIELDS
        if unknown:
            raise NotImplementedError(f"FakeInspector2.list_findings does not filter on {sorted(unknown)}")
        resource = finding["resources"][0]
        fields = {
            "resourceId": resource["id"],
            "resourceType": resource["type"],
            "ec2InstanceImageId": resource.get("details", {}).get("awsEc2Instance", {}).get("imageId"),
            "severity": finding["severity"],
            "findingStatus": finding["status"],
            "awsAccountId": finding["awsAccountId"],
            "findingType": finding["type"],
            "vulnerabilityId": finding["packageVulnerabilityDetails"]["vulnerabilityId"],
        }
        return all(_string_match(fields[name], criteria.get(name, [])) for name in fields)

    def _select(self, criteria: dict[str, Any] | None) -> list[dict[str, Any]]:
        return [f for f in self.state.findings if self._finding_matches(f, criteria or {})]

    @faked
    def _list_findings(
        self,
        filterCriteria: dict | None = None,
        maxResults: int | None = None,
        nextToken: str | None = None,
        sortCriteria: dict | None = None,
    ) -> dict:
        if sortCriteria:
            raise NotImplementedError("FakeInspector2.list_findings does not sort")
        return self._page(self._select(filterCriteria), "findings", maxResults, nextToken, 100)

    # --- findings reports ---------------------------------------------------------------------
    @faked
    def _create_findings_report(self, reportFormat: str, s3Destination: dict, filterCriteria: dict | None = None) -> dict:
        report_id = str(uuid.UUID(int=next(self._seq) << 64))
        self.state.reports[report_id] = _Report(
            report_id, dict(s3Destination), dict(filterCriteria or {}), reportFormat, self.report_polls
        )
        return {"reportId": report_id}

    def _finish(self, report: _Report) -> None:
        """Inspector checks the destination when it writes, so problems surface as a FAILED status."""
        dest = report.destination
        if self.s3 is None:
            raise AssertionError("FakeInspector2 needs an s3 client to write findings reports")
        try:
            self.s3.head_bucket(Bucket=dest["bucketName"])
        except ClientError:
            report.status, report.error = "FAILED", ("BUCKET_NOT_FOUND", f"bucket {dest['bucketName']} not found")
            return
        if not _KMS_KEY_ARN.fullmatch(dest["kmsKeyArn"]):
            report.status, report.error = "FAILED", ("MALFORMED_KMS_KEY", f"{dest['kmsKeyArn']} is not a KMS key ARN")
            return
        if self.kms is not None:
            try:
                self.kms.describe_key(KeyId=dest["kmsKeyArn"])
            except ClientError:
                report.status, report.error = "FAILED", ("MALFORMED_KMS_KEY", f"key {dest['kmsKeyArn']} not found")
                return
        findings = self._select(report.filter_criteria)
        if not findings:
            report.status, report.error = "FAILED", ("NO_FINDINGS_FOUND", "no findings match the filter")
            return
        prefix = dest.get("keyPrefix", "").strip("/")
        report.key = f"{prefix + '/' if prefix else ''}{report.report_id}.{report.report_format.lower()}"
        if report.report_format == "JSON":
            body = json.dumps({"findings": _jsonable(findings)}, indent=1)
        else:
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(["Finding ARN", "Severity", "Resource ID", "Vulnerability Id", "Status"])
            for f in findings:
                writer.writerow(
                    [
                        f["findingArn"],
                        f["severity"],
                        f["resources"][0]["id"],
                        f["packageVulnerabilityDetails"]["vulnerabilityId"],
                        f["status"],
                    ]
                )
            body = out.getvalue()
        self.s3.put_object(
            Bucket=dest["bucketName"],
            Key=report.key,
            Body=body.encode(),
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=dest["kmsKeyArn"],
        )
        report.status = "SUCCEEDED"

    @faked
    def _get_findings_report_status(self, reportId: str | None = None) -> dict:
        report = self.state.reports.get(reportId or "")
        if report is None:
            raise self._error("get_findings_report_status", "ResourceNotFoundException", f"report {reportId} not found", 404)
        if report.status == "IN_PROGRESS":
            if report.polls_left > 0:
                report.polls_left -= 1
            else:
                self._finish(report)
        response: dict[str, Any] = {
            "reportId": report.report_id,
            "status": report.status,
            "destination": report.destination,
            "filterCriteria": report.filter_criteria,
        }
        if report.error:
            response["errorCode"], response["errorMessage"] = report.error
        return response

    def report_key(self, report_id: str) -> str | None:
        """Where a succeeded report was written (Inspector's real API does not return the key)."""
        return self.state.reports[report_id].key
