"""KmsKey: who administers each key, how the deploy role writes data under it, and how it is recovered."""

from __future__ import annotations

import json

import pytest

from components.lib.kms_key import DeployerUse, KmsKey, KmsKeyArgs
from tests.iam.key_policy import ALLOW, Caller, evaluate
from tools.mockrun import run_program

REGION = "eu-west-1"
ACCOUNTS = {
    "org": "111111111111",
    "security": "222222222222",
    "build": "333333333333",
    "dev": "444444444444",
    "uat": "555555555555",
    "prod": "666666666666",
}


def _deploy(account: str) -> Caller:
    return Caller(f"arn:aws:iam::{account}:role/BakehouseDeploy")


def _account_key_policy(stack_run, stack: str) -> dict:
    return json.loads(stack_run(stack).named(f"{stack}-key-key").inputs["policy"])


def _via(service: str) -> dict[str, str]:
    return {"kms:ViaService": f"{service}.{REGION}.amazonaws.com"}


# --- issue 11, item 1: the deploy role's uploads and SecureStrings ------------------------------
@pytest.mark.parametrize("stack", ["build", "dev", "prod"])
def test_deploy_role_may_upload_sse_kms_objects_through_s3_under_the_account_key(stack, stack_run):
    # build: handlers zip and the catalog template; workloads: the incident-response handlers zip.
    policy, deploy = _account_key_policy(stack_run, stack), _deploy(ACCOUNTS[stack])
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):  # PutObject; SSM reading attachments back
        assert evaluate(policy, deploy, action, _via("s3")).decision == ALLOW, action


@pytest.mark.parametrize("stack", ["dev", "uat", "prod"])
def test_deploy_role_may_write_and_read_secure_string_parameters_through_ssm(stack, stack_run):
    policy, deploy = _account_key_policy(stack_run, stack), _deploy(ACCOUNTS[stack])
    for action in ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"):
        assert evaluate(policy, deploy, action, _via("ssm")).decision == ALLOW, action


@pytest.mark.parametrize("stack", ["org", "security", "build", "dev"])
def test_deploy_role_may_generate_data_keys_only_via_s3_and_ssm(stack, stack_run):
    policy, deploy = _account_key_policy(stack_run, stack), _deploy(ACCOUNTS[stack])
    for action in ("kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt"):
        assert not evaluate(policy, deploy, action).allowed_with_iam, f"{action} called directly"
        # Workload keys delegate EC2 use to the account (launching roles); the deploy role is not named.
        for service in ("ec2", "lambda", "sns"):
            assert evaluate(policy, deploy, action, _via(service)).decision != ALLOW, f"{action} via {service}"
    other_region = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    assert not evaluate(policy, deploy, "kms:GenerateDataKey", other_region).allowed_with_iam


def test_deployer_data_key_use_is_scoped_to_its_account_and_region():
    run = run_program(
        lambda: KmsKey(
            "data",
            KmsKeyArgs(
                description="d",
                alias="bakehouse-data",
                admin_arns=["arn:aws:iam::444444444444:role/BakehouseDeploy"],
                deployer_use=DeployerUse(region=REGION, account_id="444444444444"),
            ),
        )
    )
    [key] = run.of_type("aws:kms/key:Key")
    statements = {s["Sid"]: s for s in json.loads(key.inputs["policy"])["Statement"]}
    s3 = statements["DeployerWritesThroughS3"]
    assert s3["Principal"] == {"AWS": ["arn:aws:iam::444444444444:role/BakehouseDeploy"]}
    assert sorted(s3["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert s3["Condition"] == {
        "StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com", "kms:CallerAccount": "444444444444"}
    }
    assert statements["DeployerWritesThroughSsm"]["Condition"]["StringEquals"]["kms:ViaService"] == "ssm.eu-west-1.amazonaws.com"


def test_deployer_use_through_an_unknown_service_is_refused():
    with pytest.raises(ValueError, match="deployer use through 'sqs'.*allowed: s3, ssm"):
        DeployerUse(region=REGION, account_id="444444444444", services=("s3", "sqs"))


# --- issue 12, item 7: a second, constrained administrator --------------------------------------
def _every_key(stack_run):
    for stack, account in ACCOUNTS.items():
        for key in stack_run(stack).of_type("aws:kms/key:Key"):
            yield stack, account, key.name, json.loads(key.inputs["policy"])


def test_a_recreated_deploy_role_regains_control_of_every_key_policy(stack_run):
    # A key policy stores a role principal as the role's unique id: the recreated role (same ARN, new
    # id) no longer matches the administrator statement, only the account-principal recovery path.
    for stack, account, name, policy in _every_key(stack_run):
        again = Caller(f"arn:aws:iam::{account}:role/BakehouseDeploy", recreated=True)
        for action in ("kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:DescribeKey"):
            verdict = evaluate(policy, again, action)
            assert verdict.allowed_with_iam, f"{stack} {name}: a recreated deploy role may not {action}"
            assert verdict.sids == ("KeyAdministrationRecovery",), f"{stack} {name}: {verdict}"


def test_the_recovery_path_admits_no_data_use_deletion_or_grants(stack_run):
    for stack, account, name, policy in _every_key(stack_run):
        again = Caller(f"arn:aws:iam::{account}:role/BakehouseDeploy", recreated=True)
        for action in ("kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:ScheduleKeyDeletion", "kms:DisableKey"):
            assert not evaluate(policy, again, action).allowed_with_iam, f"{stack} {name}: recovery allows {action}"


def test_no_other_principal_of_the_account_may_rewrite_a_key_policy(stack_run):
    # IAM delegation through the account principal holds only for the deploy role's ARN, so an
    # administrator role with kms:* in IAM still cannot take a key over.
    for stack, account, name, policy in _every_key(stack_run):
        for other in ("OrganizationAccountAccessRole", "BakehouseBreakGlass", "BakehouseDeployer"):
            caller = Caller(f"arn:aws:iam::{account}:role/{other}")
            assert not evaluate(policy, caller, "kms:PutKeyPolicy").allowed_with_iam, f"{stack} {name}: {other}"


def test_recovery_names_the_administrators_account_principal_constrained_to_their_arns():
    run = run_program(
        lambda: KmsKey(
            "data",
            KmsKeyArgs(description="d", alias="bakehouse-data", admin_arns=["arn:aws:iam::444444444444:role/BakehouseDeploy"]),
        )
    )
    [key] = run.of_type("aws:kms/key:Key")
    [recovery] = [s for s in json.loads(key.inputs["policy"])["Statement"] if s["Sid"] == "KeyAdministrationRecovery"]
    assert recovery["Principal"] == {"AWS": "arn:aws:iam::444444444444:root"}
    assert recovery["Condition"] == {"ArnEquals": {"aws:PrincipalArn": ["arn:aws:iam::444444444444:role/BakehouseDeploy"]}}
    assert "kms:ScheduleKeyDeletion" not in recovery["Action"] and "kms:Decrypt" not in recovery["Action"]


def test_an_administrator_that_is_not_a_role_arn_is_refused():
    with pytest.raises(ValueError, match="administrator 'arn:aws:iam::444444444444:root'.*role ARN"):
        KmsKeyArgs(description="d", alias="a", admin_arns=["arn:aws:iam::444444444444:root"])
