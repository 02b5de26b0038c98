"""The security stack meets AWS's first-deployment prerequisites: GuardDuty detectors come from the
delegation (looked up, never created), the account records Config into its own archive bucket, and
conformance packs run per account after the recorder instead of as organization packs."""

from __future__ import annotations

import pytest

from tools import mockrun
from tools.mockrun import run_stack

SECURITY = "222222222222"
REGIONS = {"eu-west-1", "eu-central-1", "us-east-1"}


@pytest.fixture(scope="module")
def traced():
    """The security stack's run plus, per resource name, the URNs it waits for (depends_on)."""
    seen: dict[str, set[str]] = {}
    original = mockrun.RecordingMonitor.RegisterResource

    def register(self, request):
        seen[request.name] = set(request.dependencies)
        return original(self, request)

    mockrun.RecordingMonitor.RegisterResource = register
    try:
        run = run_stack("security")
    finally:
        mockrun.RecordingMonitor.RegisterResource = original
    return run, seen


def test_guardduty_detectors_are_looked_up_never_created(traced):
    run, _ = traced
    assert not run.of_type("aws:guardduty/detector:Detector")
    configs = run.of_type("aws:guardduty/organizationConfiguration:OrganizationConfiguration")
    assert {c.inputs["region"]: c.inputs["detectorId"] for c in configs} == {r: f"mock-detector-{r}" for r in REGIONS}
    features = run.of_type("aws:guardduty/detectorFeature:DetectorFeature")
    assert features and all(f.inputs["detectorId"] == f"mock-detector-{f.inputs['region']}" for f in features)


def test_security_account_records_config_in_every_region_into_the_archive_bucket(traced):
    run, deps = traced
    [bucket] = [b for b in run.of_type("aws:s3/bucket:Bucket") if b.name == "security-archive-config"]
    policy = run.named("security-archive-config-policy")
    channels = run.of_type("aws:cfg/deliveryChannel:DeliveryChannel")
    assert {c.inputs["region"] for c in channels} == REGIONS
    for channel in channels:
        assert channel.inputs["s3BucketName"] == bucket.inputs["bucket"] == f"bakehouse-config-{SECURITY}-eu-west-1"
        assert {bucket.urn, policy.urn} <= deps[channel.name], channel.name
    assert {s.inputs["region"] for s in run.of_type("aws:cfg/recorderStatus:RecorderStatus")} == REGIONS


def test_security_account_runs_the_baseline_pack_after_its_recorder_and_no_organization_pack(traced):
    run, deps = traced
    assert not run.of_type("aws:cfg/organizationConformancePack:OrganizationConformancePack")
    # the security account's own; the management account's, recorded from this stack too, are tested apart
    packs = [p for p in run.of_type("aws:cfg/conformancePack:ConformancePack") if p.name.startswith("security-baseline-")]
    assert {(p.inputs["region"], p.inputs["name"]) for p in packs} == {(r, "bakehouse-baseline") for r in REGIONS}
    statuses = {
        s.inputs["region"]: s.urn
        for s in run.of_type("aws:cfg/recorderStatus:RecorderStatus")
        if s.name.startswith("security-baseline-")
    }
    assert all(statuses[p.inputs["region"]] in deps[p.name] for p in packs)


def test_security_account_has_the_account_baseline(traced):
    run, _ = traced
    assert run.of_type("aws:iam/accountPasswordPolicy:AccountPasswordPolicy")
    assert run.of_type("aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock")
    assert {v.inputs["region"] for v in run.of_type("aws:ec2/defaultVpc:DefaultVpc")} == REGIONS
    [key] = run.of_type("aws:ebs/defaultKmsKey:DefaultKmsKey")
    assert key.inputs["keyArn"] == run.exports["kmsKeyArn"]


def test_security_run_creates_the_organization_trail_in_the_management_account_after_its_archive(stack_run):
    run = stack_run("security")
    (trail,) = run.of_type("aws:cloudtrail/trail:Trail")
    assert trail.inputs["isOrganizationTrail"] is True
    assert trail.provider_name == "security-org-trail-management"  # the management account's trail-admin role
    (provider,) = [r for r in run.resources if r.is_provider and r.name == "security-org-trail-management"]
    assert provider.inputs["allowedAccountIds"] == ["111111111111"]
    assert "trailArn" in run.exports
