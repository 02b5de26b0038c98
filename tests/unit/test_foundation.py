"""Every stack's real program runs offline, writes through its explicit provider, and tags by default."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.lib.kms_key import KmsKey, KmsKeyArgs, ServiceGrant
from components.lib.providers import account_provider
from components.lib.secure_bucket import Lifecycle, ObjectLock, SecureBucket, SecureBucketArgs
from estate.config import ConfigError
from tools.mockrun import STACKS, EchoMocks, StackRun, run_program, run_stack

ACCOUNTS = {
    "org": "111111111111",
    "security": "222222222222",
    "build": "333333333333",
    "dev": "444444444444",
    "uat": "555555555555",
    "prod": "666666666666",
}
TAG_KEYS = {"bakehouse:stack", "bakehouse:env", "bakehouse:managed-by"}


class InvokesReturnNothing(EchoMocks):
    """The plainest runtime: inputs echoed, no synthesized outputs, every invoke empty."""

    def __init__(self):
        super().__init__(synthesize_arn=False)


@pytest.mark.parametrize("stack", STACKS)
def test_stack_program_runs_under_a_plain_mock_runtime(stack):
    run = run_stack(stack, mocks=InvokesReturnNothing())
    assert run.error is None
    assert sum(1 for r in run.resources if r.custom and not r.is_provider) >= 8


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_is_declared_through_the_stacks_explicit_provider(stack, stack_run):
    run = stack_run(stack)
    explicit = {r.name for r in run.resources if r.is_provider}
    assert f"{stack}-account" in explicit
    for res in run.resources:
        if res.custom and not res.is_provider:
            assert res.provider_name in explicit, f"{res.type} {res.name} uses provider {res.provider!r}"
            assert not res.provider_name.startswith("default"), f"{res.name} uses the ambient default provider"


@pytest.mark.parametrize("stack", STACKS)
def test_stack_provider_assumes_the_deploy_role_in_its_own_account_only(stack, stack_run):
    provider = stack_run(stack).named(f"{stack}-account")
    account = ACCOUNTS[stack]
    assert provider.inputs["allowedAccountIds"] == [account]
    assert provider.inputs["assumeRoles"][0]["roleArn"] == f"arn:aws:iam::{account}:role/BakehouseDeploy"
    assert provider.inputs["region"] == "eu-west-1"


@pytest.mark.parametrize("stack", STACKS)
def test_every_provider_applies_the_default_tags(stack, stack_run):
    env = stack if stack in ("dev", "uat", "prod") else stack
    for provider in (r for r in stack_run(stack).resources if r.is_provider):
        tags = provider.inputs["defaultTags"]["tags"]
        assert TAG_KEYS <= set(tags), provider.name
        assert tags["bakehouse:stack"] == stack and tags["bakehouse:env"] == env
        assert tags["bakehouse:managed-by"] == "pulumi"


BAD_CONFIG = {
    "role": (
        {"bakehouse:role": "warehouse"},
        "stack dev: Pulumi.dev.yaml: bakehouse:role is 'warehouse'; allowed: org, security, build, workload",
    ),
    "cidr": (
        {"bakehouse:network": {"cidr": "10.16.0.0/33", "azs": 2}},
        "stack dev: Pulumi.dev.yaml: bakehouse:network.cidr is '10.16.0.0/33'; allowed: a private IPv4 network",
    ),
    "overlap": (
        {"bakehouse:network": {"cidr": "10.32.0.0/16", "azs": 2}},
        "stack dev: Pulumi.dev.yaml: bakehouse:network.cidr is '10.32.0.0/16'; allowed: a range that does not overlap stack uat's",
    ),
    "azs": (
        {"bakehouse:network": {"cidr": "10.16.0.0/16", "azs": 9}},
        "stack dev: Pulumi.dev.yaml: bakehouse:network.azs is 9; allowed: an integer from 1 to 6",
    ),
    "account": (
        {
            "bakehouse:accounts": {
                **{k: v for k, v in ACCOUNTS.items() if k != "org"},
                "management": "111111111111",
                "dev": "4444",
            }
        },
        "stack dev: Pulumi.yaml: bakehouse:accounts.dev is '4444'; allowed: a 12-digit account id",
    ),
    "region": (
        {"bakehouse:region": "ap-south-1"},
        "stack dev: Pulumi.dev.yaml: bakehouse:region is 'ap-south-1'; allowed: eu-west-1, eu-central-1, us-east-1",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIG))
def test_bad_config_stops_the_program_before_any_resource_is_declared(case):
    overrides, expected = BAD_CONFIG[case]
    run = run_stack("dev", overrides=overrides, raise_errors=False)
    assert isinstance(run.error, ConfigError)
    assert expected in str(run.error)
    assert run.resources == []


# --- the shared building blocks, declared alone --------------------------------------------------


def _alone(build) -> StackRun:
    def program():
        provider = account_provider(
            "unit-account",
            account_id="444444444444",
            region="eu-west-1",
            role_arn="arn:aws:iam::444444444444:role/BakehouseDeploy",
            tags={"bakehouse:stack": "unit"},
            session_name="unit",
        )
        build(pulumi.ResourceOptions(provider=provider))

    return run_program(program)


def _sibling(run: StackRun, component: str, type_token: str):
    [res] = [r for r in run.of_type(type_token) if r.name.startswith(component)]
    return res


def test_secure_bucket_is_kms_encrypted_versioned_private_logged_and_tls_only():
    key = "arn:aws:kms:eu-west-1:444444444444:key/abc"
    run = _alone(
        lambda opts: SecureBucket(
            "data",
            SecureBucketArgs(purpose="data", kms_key_arn=key, access_log_bucket="logs-bucket", bucket_name="bakehouse-data-x"),
            opts,
        )
    )
    sse = _sibling(run, "data", "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    rule = sse.inputs["rules"][0]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key}
    assert rule["bucketKeyEnabled"] is True
    assert (
        _sibling(run, "data", "aws:s3/bucketVersioning:BucketVersioning").inputs["versioningConfiguration"]["status"] == "Enabled"
    )
    block = _sibling(run, "data", "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    assert (
        _sibling(run, "data", "aws:s3/bucketOwnershipControls:BucketOwnershipControls").inputs["rule"]["objectOwnership"]
        == "BucketOwnerEnforced"
    )
    assert _sibling(run, "data", "aws:s3/bucketLogging:BucketLogging").inputs["targetBucket"] == "logs-bucket"
    policy = json.loads(_sibling(run, "data", "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["DenyInsecureTransport"]["Effect"] == "Deny"
    assert by_sid["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert by_sid["DenyInsecureTransport"]["Resource"] == ["arn:aws:s3:::bakehouse-data-x", "arn:aws:s3:::bakehouse-data-x/*"]
    wrong_algo = by_sid["DenyWrongEncryptionAlgorithm"]["Condition"]
    assert wrong_algo["StringNotEquals"] == {"s3:x-amz-server-side-encryption": "aws:kms"}
    # header-less uploads fall to default encryption, so only an explicit other header is denied
    assert wrong_algo["Null"] == {"s3:x-amz-server-side-encryption": "false"}
    assert by_sid["DenyOtherKmsKey"]["Condition"]["StringNotEquals"] == {"s3:x-amz-server-side-encryption-aws-kms-key-id": key}
    assert not run.of_type("aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")


def test_secure_bucket_with_object_lock_enables_it_at_creation_and_sets_default_retention():
    run = _alone(
        lambda opts: SecureBucket(
            "evidence",
            SecureBucketArgs(
                purpose="evidence",
                kms_key_arn="arn:aws:kms:eu-west-1:444444444444:key/abc",
                access_log_bucket="logs",
                object_lock=ObjectLock("COMPLIANCE", 365),
                lifecycle=Lifecycle(glacier_after_days=30),
            ),
            opts,
        )
    )
    bucket = _sibling(run, "evidence", "aws:s3/bucket:Bucket")
    assert bucket.inputs["objectLockEnabled"] is True
    lock = _sibling(run, "evidence", "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration")
    assert lock.inputs["rule"]["defaultRetention"] == {"mode": "COMPLIANCE", "days": 365}
    lifecycle = _sibling(run, "evidence", "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    [rule] = lifecycle.inputs["rules"]
    assert rule["transitions"] == [{"days": 30, "storageClass": "GLACIER"}]
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}


def test_secure_bucket_refuses_to_be_declared_without_a_key_or_log_target():
    with pytest.raises(ValueError, match="customer-managed KMS key is required"):
        SecureBucketArgs(purpose="data", kms_key_arn=None, access_log_bucket="logs")
    with pytest.raises(ValueError, match="access_log_bucket is required"):
        SecureBucketArgs(purpose="data", kms_key_arn="arn:aws:kms:eu-west-1:1:key/a", access_log_bucket=None)
    with pytest.raises(ValueError, match="SSE-S3"):
        SecureBucketArgs(
            purpose="access-logs", kms_key_arn="arn:aws:kms:eu-west-1:1:key/a", access_log_bucket=None, access_log_target=True
        )
    with pytest.raises(ValueError, match="allowed: GOVERNANCE, COMPLIANCE"):
        ObjectLock("LEGAL", 1)


def test_access_log_bucket_uses_sse_s3_and_admits_only_log_delivery_from_its_account(stack_run):
    run = stack_run("dev")
    sse = _sibling(
        run, "dev-access-logs", "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    policy = json.loads(_sibling(run, "dev-access-logs", "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    [delivery] = [s for s in policy["Statement"] if s["Sid"] == "S3ServerAccessLogDelivery"]
    assert delivery["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert delivery["Condition"] == {"StringEquals": {"aws:SourceAccount": "444444444444"}}


def test_kms_key_rotates_and_its_policy_names_principals_and_scopes_services():
    grant = ServiceGrant(
        "Logs", "logs.eu-west-1.amazonaws.com", conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:*"}}
    )
    run = _alone(
        lambda opts: KmsKey(
            "data",
            KmsKeyArgs(
                description="d",
                alias="bakehouse-data",
                admin_arns=["arn:aws:iam::444444444444:role/BakehouseDeploy"],
                user_arns=["arn:aws:iam::444444444444:role/App"],
                services=[grant],
            ),
            opts,
        )
    )
    [key] = run.of_type("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["deletionWindowInDays"] == 30
    statements = json.loads(key.inputs["policy"])["Statement"]
    principals = [s["Principal"] for s in statements]
    assert {"AWS": ["arn:aws:iam::444444444444:role/BakehouseDeploy"]} in principals
    assert {"AWS": ["arn:aws:iam::444444444444:role/App"]} in principals
    for stmt in statements:
        assert stmt["Principal"] != "*" and stmt["Principal"] != {"AWS": "*"}
        assert not str(stmt["Principal"]).endswith(":root']}"), "no account-wide grant"
        if "Service" in stmt["Principal"]:
            assert stmt["Condition"], f"service grant {stmt['Sid']} has no condition"
    [alias] = run.of_type("aws:kms/alias:Alias")
    assert alias.inputs["name"] == "alias/bakehouse-data"


def test_kms_key_without_an_administrator_is_refused():
    with pytest.raises(ValueError, match="at least one administrator"):
        KmsKeyArgs(description="d", alias="a", admin_arns=[])


ROLE_SECTION_ERRORS = {
    "org": {"bakehouse:org": {"unexpected": 1}},
    "security": {"bakehouse:security": {"unexpected": 1}},
    "build": {"bakehouse:factory": {"unexpected": 1}},
    "dev": {"bakehouse:workload": {"unexpected": 1}},
}


@pytest.mark.parametrize("stack", sorted(ROLE_SECTION_ERRORS))
def test_a_bad_role_section_is_rejected_before_even_the_provider_is_declared(stack):
    run = run_stack(stack, overrides=ROLE_SECTION_ERRORS[stack], raise_errors=False)
    assert isinstance(run.error, ConfigError)
    assert f"stack {stack}: Pulumi.{stack}.yaml: bakehouse:" in str(run.error) and ".unexpected is 1" in str(run.error)
    assert run.resources == []
