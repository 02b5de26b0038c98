"""The organization trail, as the security stack declares it: created in the management account (its
owner) through a provider that assumes the narrow trail-admin role there, after the log archive's
bucket and key, and naming that key by its ARN so CloudTrail's stored value never differs."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pytest

from components.security.org_trail import OrgTrail, OrgTrailArgs
from estate.config import Accounts, EstateConfig
from tools.mockrun import run_program

MGMT, SECURITY = "111111111111", "222222222222"
ESTATE = EstateConfig(
    "o-abcdefghij",
    Accounts(MGMT, SECURITY, "333333333333", {"dev": "444444444444"}),
    ("eu-west-1", "eu-central-1"),
    "eu-west-1",
    "BakehouseDeploy",
)
LOG_BUCKETS = ("trail", "config", "flowlogs", "evidence", "sessions")


@pytest.fixture(scope="module")
def run():
    def program():
        security = aws.Provider("security", region="eu-west-1", allowed_account_ids=[SECURITY])
        opts = pulumi.ResourceOptions(provider=security)
        key = aws.kms.Key("trail-key", opts=opts)
        bucket = aws.s3.Bucket("trail-bucket", bucket=f"bakehouse-trail-{SECURITY}-eu-west-1", opts=opts)
        policy = aws.s3.BucketPolicy("trail-bucket-policy", bucket=bucket.id, policy="{}", opts=opts)
        OrgTrail(
            "security-trail",
            OrgTrailArgs(ESTATE, key.arn, bucket.bucket, {"bakehouse:stack": "security"}),
            opts=pulumi.ResourceOptions(providers=[security], depends_on=[key, policy]),
        )

    return run_program(program, stack="security")


def _trail(run):
    (trail,) = run.of_type("aws:cloudtrail/trail:Trail")
    return trail


def test_trail_is_given_the_key_arn_not_an_alias_so_every_up_matches_what_cloudtrail_stores(run):
    kms_key = _trail(run).inputs["kmsKeyId"]
    assert kms_key == f"arn:aws:kms:eu-west-1:{SECURITY}:key/trail-key"
    assert ":alias/" not in kms_key


def test_trail_is_created_in_the_management_account_through_the_trail_admin_role(run):
    trail = _trail(run)
    provider = next(r for r in run.resources if r.is_provider and r.name == trail.provider_name)
    assert provider.inputs["allowedAccountIds"] == [MGMT]
    assert provider.inputs["region"] == "eu-west-1"
    (assume,) = provider.inputs["assumeRoles"]
    assert assume["roleArn"] == f"arn:aws:iam::{MGMT}:role/BakehouseOrgTrailAdmin"


def test_trail_waits_for_the_log_archive_bucket_and_key_of_the_same_stack(run):
    trail = _trail(run)
    bucket = next(r for r in run.resources if r.name == "trail-bucket")
    key = next(r for r in run.resources if r.name == "trail-key")
    waits_for = {urn for urns in trail.property_dependencies.values() for urn in urns}
    assert {bucket.urn, key.urn} <= waits_for


def test_trail_is_organization_wide_validated_and_delivers_to_the_management_log_group(run):
    inputs = _trail(run).inputs
    assert inputs["name"] == "bakehouse-organization"
    assert inputs["isOrganizationTrail"] is True
    assert inputs["isMultiRegionTrail"] is True
    assert inputs["includeGlobalServiceEvents"] is True
    assert inputs["enableLogFileValidation"] is True
    assert inputs["s3BucketName"] == f"bakehouse-trail-{SECURITY}-eu-west-1"
    assert inputs["cloudWatchLogsGroupArn"] == f"arn:aws:logs:eu-west-1:{MGMT}:log-group:/bakehouse/cloudtrail/organization:*"
    assert inputs["cloudWatchLogsRoleArn"] == f"arn:aws:iam::{MGMT}:role/BakehouseOrgTrailToLogs"


def test_trail_records_management_events_and_data_events_on_log_buckets_and_lambda(run):
    selectors = {s["name"]: {f["field"]: f for f in s["fieldSelectors"]} for s in _trail(run).inputs["advancedEventSelectors"]}
    assert selectors["Management events"]["eventCategory"]["equals"] == ["Management"]
    s3 = selectors["Log-archive object access"]
    assert s3["eventCategory"]["equals"] == ["Data"] and s3["resources.type"]["equals"] == ["AWS::S3::Object"]
    assert sorted(s3["resources.ARN"]["startsWiths"]) == sorted(
        f"arn:aws:s3:::bakehouse-{kind}-{SECURITY}-eu-west-1/" for kind in LOG_BUCKETS
    )
    assert selectors["Lambda invocations"]["resources.type"]["equals"] == ["AWS::Lambda::Function"]
