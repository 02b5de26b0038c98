"""handlers.inspector_summary against moto (S3, KMS, EC2) and the Inspector v2 recording fake."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from handlers import inspector_summary as insp
from handlers.common import MalformedEvent
from tests.fakes import FakeInspector2
from tests.fakes.seed import FAST_EC2_ENV, NoAwsCalls, golden_ami

REGION = "eu-west-1"
INSTANCE = "i-0123456789abcdef0"
OTHER = "i-0fedcba9876543210"


@pytest.fixture
def world(monkeypatch):
    for key, value in FAST_EC2_ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        s3, kms = boto3.client("s3", region_name=REGION), boto3.client("kms", region_name=REGION)
        key = kms.create_key()["KeyMetadata"]["Arn"]
        s3.create_bucket(Bucket="evidence", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_encryption(
            Bucket="evidence",
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]
            },
        )
        ec2 = boto3.client("ec2", region_name=REGION)
        inspector = FakeInspector2(boto3.client("inspector2", region_name=REGION), s3=s3, kms=kms)
        yield {"s3": s3, "ec2": ec2, "inspector": inspector, "key": key, "image": golden_ami(ec2)}


def _request(world, **kw):
    values = dict(
        image_id=world["image"],
        instance_id=INSTANCE,
        family="al2023",
        bucket="evidence",
        threshold="HIGH",
        wait_seconds=600,
        poll_seconds=5,
        execution_id="exec-1",
        kms_key_id=None,
    )
    values.update(kw)
    return insp.SummaryRequest(**values)


def _tags(world):
    image = world["ec2"].describe_images(ImageIds=[world["image"]])["Images"][0]
    return {t["Key"]: t["Value"] for t in image.get("Tags", [])}


def _summary(world, key="inspector/al2023/{}/exec-1.json"):
    obj = world["s3"].get_object(Bucket="evidence", Key=key.format(world["image"]))
    return obj, json.loads(obj["Body"].read())


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_coverage_is_awaited_by_polling_with_backoff(world):
    world["inspector"].add_coverage(INSTANCE, ami_id=world["image"], after_polls=3)
    sleeps: list[float] = []
    summary = insp.validate_image(_request(world), world["inspector"], world["s3"], world["ec2"], sleeps.append)
    assert sleeps == [5, 10, 20]
    assert len(world["inspector"].calls_to("list_coverage")) == 4
    assert summary.verdict == "PASS"


def test_coverage_that_never_arrives_fails_naming_the_instance(world):
    sleeps: list[float] = []
    with pytest.raises(insp.NotCovered, match=INSTANCE):
        insp.validate_image(_request(world, wait_seconds=60), world["inspector"], world["s3"], world["ec2"], sleeps.append)
    assert sum(sleeps) <= 60
    assert world["s3"].list_objects_v2(Bucket="evidence")["KeyCount"] == 0


def test_an_unscannable_instance_fails_at_once(world):
    world["inspector"].add_coverage(INSTANCE, status="INACTIVE", reason="UNSUPPORTED_OS")
    sleeps: list[float] = []
    with pytest.raises(insp.NotCovered, match="UNSUPPORTED_OS"):
        insp.validate_image(_request(world), world["inspector"], world["s3"], world["ec2"], sleeps.append)
    assert sleeps == []


def test_pending_initial_scan_is_waited_out(world):
    world["inspector"].add_coverage(INSTANCE, status="ACTIVE", reason="PENDING_INITIAL_SCAN")
    with pytest.raises(insp.NotCovered, match="within"):
        insp.validate_image(_request(world, wait_seconds=30), world["inspector"], world["s3"], world["ec2"], lambda s: None)


def test_summary_is_written_with_the_buckets_customer_key(world):
    world["inspector"].add_coverage(INSTANCE)
    world["inspector"].add_finding(INSTANCE, "MEDIUM", vulnerability_id="CVE-2026-0001")
    insp.validate_image(_request(world), world["inspector"], world["s3"], world["ec2"], lambda s: None)
    obj, body = _summary(world)
    assert obj["ServerSideEncryption"] == "aws:kms" and obj["SSEKMSKeyId"] == world["key"]
    assert body["counts"]["MEDIUM"] == 1 and body["verdict"] == "PASS"
    assert [f["vulnerabilityId"] for f in body["findings"]] == ["CVE-2026-0001"]
    assert body["context"]["instanceId"] == INSTANCE


def test_the_ami_is_tagged_with_counts_per_severity(world):
    world["inspector"].add_coverage(INSTANCE)
    for severity in ("MEDIUM", "MEDIUM", "LOW", "INFORMATIONAL"):
        world["inspector"].add_finding(INSTANCE, severity)
    insp.validate_image(_request(world), world["inspector"], world["s3"], world["ec2"], lambda s: None)
    tags = _tags(world)
    assert {k: tags[k] for k in tags if k.startswith("bakehouse:cves-")} == {
        "bakehouse:cves-critical": "0",
        "bakehouse:cves-high": "0",
        "bakehouse:cves-medium": "2",
        "bakehouse:cves-low": "1",
        "bakehouse:cves-informational": "1",
        "bakehouse:cves-untriaged": "0",
    }
    assert tags[insp.TAG_VERDICT] == "PASS" and "bakehouse:scan-date" in tags


def test_a_finding_at_the_threshold_fails_validation_but_keeps_the_evidence(world):
    world["inspector"].add_coverage(INSTANCE)
    world["inspector"].add_finding(INSTANCE, "HIGH")
    world["inspector"].add_finding(INSTANCE, "CRITICAL")
    with pytest.raises(insp.FindingsAboveThreshold, match=rf"{world['image']}: 1 CRITICAL, 1 HIGH at or above HIGH"):
        insp.validate_image(_request(world), world["inspector"], world["s3"], world["ec2"], lambda s: None)
    _, body = _summary(world)
    assert body["verdict"] == "FAIL" and body["blocking"] == {"CRITICAL": 1, "HIGH": 1}
    assert _tags(world)["bakehouse:cves-critical"] == "1"


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_findings_below_the_threshold_pass(world):
    world["inspector"].add_coverage(INSTANCE)
    world["inspector"].add_finding(INSTANCE, "HIGH")
    summary = insp.validate_image(
        _request(world, threshold="CRITICAL"), world["inspector"], world["s3"], world["ec2"], lambda s: None
    )
    assert summary.verdict == "PASS" and summary.counts["HIGH"] == 1


def test_suppressed_findings_and_other_instances_do_not_count(world):
    world["inspector"].add_coverage(INSTANCE)
    world["inspector"].add_finding(INSTANCE, "CRITICAL", status="SUPPRESSED")
    world["inspector"].add_finding(OTHER, "CRITICAL")
    summary = insp.validate_image(_request(world), world["inspector"], world["s3"], world["ec2"], lambda s: None)
    assert summary.counts["CRITICAL"] == 0
    assert world["inspector"].calls_to("list_findings")[0]["filterCriteria"]["findingStatus"] == [
        {"comparison": "EQUALS", "value": "ACTIVE"}
    ]


def test_a_bucket_without_a_customer_key_gets_no_summary(world):
    world["s3"].create_bucket(Bucket="plain", CreateBucketConfiguration={"LocationConstraint": REGION})
    world["s3"].delete_bucket_encryption(Bucket="plain")
    world["inspector"].add_coverage(INSTANCE)
    with pytest.raises(insp.EvidenceNotEncrypted, match="plain"):
        insp.validate_image(_request(world, bucket="plain"), world["inspector"], world["s3"], world["ec2"], lambda s: None)
    assert world["s3"].list_objects_v2(Bucket="plain")["KeyCount"] == 0


def test_summarize_findings_covers_every_instance_of_an_image_for_rescans(world):
    image = world["image"]
    world["inspector"].add_finding(INSTANCE, "CRITICAL", ami_id=image)
    world["inspector"].add_finding(OTHER, "LOW", ami_id=image)
    world["inspector"].add_finding(OTHER, "CRITICAL", ami_id="ami-0aaaaaaaaaaaaaaaa")
    summary = insp.summarize_findings(
        world["inspector"],
        world["s3"],
        world["ec2"],
        image_id=image,
        bucket="evidence",
        key="rescan/x.json",
        filter_criteria={"ec2InstanceImageId": [{"comparison": "EQUALS", "value": image}]},
        threshold="CRITICAL",
    )
    assert (summary.counts["CRITICAL"], summary.counts["LOW"], summary.verdict) == (1, 1, "FAIL")
    assert summary.as_dict()["SummaryKey"] == "rescan/x.json"


def test_inspectors_own_report_is_exported_beside_the_summary(world):
    world["inspector"].add_coverage(INSTANCE)
    world["inspector"].add_finding(INSTANCE, "LOW", vulnerability_id="CVE-2026-0002")
    sleeps: list[float] = []
    insp.validate_image(_request(world, full_report=True), world["inspector"], world["s3"], world["ec2"], sleeps.append)
    (create,) = world["inspector"].calls_to("create_findings_report")
    assert create["s3Destination"] == {
        "bucketName": "evidence",
        "kmsKeyArn": world["key"],
        "keyPrefix": f"inspector/al2023/{world['image']}/full",
    }
    assert create["filterCriteria"] == {"resourceId": [{"comparison": "EQUALS", "value": INSTANCE}]}
    _, body = _summary(world)
    assert body["context"]["ReportStatus"] == "SUCCEEDED" and sleeps  # IN_PROGRESS was polled, not assumed
    report = world["s3"].get_object(Bucket="evidence", Key=world["inspector"].report_key(body["context"]["ReportId"]))
    assert report["SSEKMSKeyId"] == world["key"]
    assert [f["packageVulnerabilityDetails"]["vulnerabilityId"] for f in json.loads(report["Body"].read())["findings"]] == [
        "CVE-2026-0002"
    ]


def test_a_clean_image_has_no_report_to_export_and_still_passes(world):
    world["inspector"].add_coverage(INSTANCE)
    summary = insp.validate_image(
        _request(world, full_report=True), world["inspector"], world["s3"], world["ec2"], lambda s: None
    )
    _, body = _summary(world)
    assert summary.verdict == "PASS" and body["context"]["ReportError"] == "NO_FINDINGS_FOUND"


def test_a_report_inspector_cannot_write_fails_validation(world):
    world["inspector"].add_coverage(INSTANCE)
    world["inspector"].add_finding(INSTANCE, "LOW")
    world["s3"].create_bucket(Bucket="gone", CreateBucketConfiguration={"LocationConstraint": REGION})
    world["s3"].delete_bucket(Bucket="gone")
    with pytest.raises(insp.FindingsReportFailed, match="BUCKET_NOT_FOUND"):
        insp.export_findings_report(
            world["inspector"], bucket="gone", key_prefix="x", kms_key_arn=world["key"], filter_criteria={}, sleep=lambda s: None
        )


def test_inspector_reports_need_a_key_arn_not_an_alias(world):
    world["inspector"].add_coverage(INSTANCE)
    with pytest.raises(insp.EvidenceNotEncrypted, match="KMS key ARN"):
        insp.validate_image(
            _request(world, full_report=True, kms_key_id="alias/evidence"),
            world["inspector"],
            world["s3"],
            world["ec2"],
            lambda s: None,
        )
    assert world["inspector"].calls_to("create_findings_report") == []


def test_handler_accepts_the_instance_list_run_instances_outputs(world, monkeypatch):
    world["inspector"].add_coverage(INSTANCE)
    monkeypatch.setattr(
        insp,
        "client",
        lambda service: world["inspector"] if service == "inspector2" else boto3.client(service, region_name=REGION),
    )
    out = insp.handler(
        {
            "ImageId": world["image"],
            "InstanceId": [INSTANCE],
            "Family": "al2023",
            "FindingsBucket": "evidence",
            "SeverityThreshold": "HIGH",
            "WaitSeconds": "0",
            "PollSeconds": 0,
            "ExecutionId": "exec-1",
        },
        None,
    )
    assert out["Verdict"] == "PASS" and out["SummaryKey"] == f"inspector/al2023/{world['image']}/exec-1.json"


GOOD = {
    "ImageId": "ami-0123456789abcdef0",
    "InstanceId": INSTANCE,
    "Family": "al2023",
    "FindingsBucket": "evidence",
    "SeverityThreshold": "HIGH",
}


@pytest.mark.parametrize(
    "change,problem",
    [
        ({"SeverityThreshold": "SEVERE"}, "SeverityThreshold"),
        ({"InstanceId": [INSTANCE, OTHER]}, "InstanceId"),
        ({"InstanceId": "ami-0123456789abcdef0"}, "InstanceId"),
        ({"FindingsBucket": "Not_A_Bucket"}, "FindingsBucket"),
        ({"WaitSeconds": -1}, "WaitSeconds"),
        ({"KmsKeyId": "my key"}, "KmsKeyId"),
        ({"FullReport": "yes"}, "FullReport"),
    ],
)
def test_a_malformed_event_is_rejected_before_any_aws_call(monkeypatch, change, problem):
    monkeypatch.setattr(insp, "client", NoAwsCalls("client"))
    with pytest.raises(MalformedEvent, match=problem):
        insp.handler({**GOOD, **change}, None)
