"""The key-policy questions answered by the one evaluator: alone, delegated to IAM, a recreated role."""

from tests.iam.key_policy import ALLOW, DELEGATED, DENY, IMPLICIT_DENY, Caller, evaluate

DEV, PROD = "444444444444", "666666666666"
DEPLOY = f"arn:aws:iam::{DEV}:role/BakehouseDeploy"


def _policy(*statements):
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", **s} for s in statements]}


def test_a_role_the_key_policy_names_needs_no_iam_policy_in_the_keys_account():
    policy = _policy({"Sid": "Deployer", "Principal": {"AWS": DEPLOY}, "Action": "kms:Decrypt"})
    assert evaluate(policy, Caller(DEPLOY), "kms:Decrypt").decision == ALLOW
    assert evaluate(policy, Caller(DEPLOY), "kms:Encrypt").decision == IMPLICIT_DENY


def test_the_account_principal_only_delegates_to_iam():
    policy = _policy({"Sid": "Account", "Principal": {"AWS": f"arn:aws:iam::{DEV}:root"}, "Action": "kms:*"})
    verdict = evaluate(policy, Caller(f"arn:aws:iam::{DEV}:role/Anything"), "kms:Decrypt")
    assert (verdict.decision, verdict.sids) == (DELEGATED, ("Account",))


def test_a_caller_in_another_account_always_needs_its_iam_policy_too():
    other = f"arn:aws:iam::{PROD}:role/Reader"
    policy = _policy({"Principal": {"AWS": other}, "Action": "kms:Decrypt"})
    assert evaluate(policy, Caller(other), "kms:Decrypt", key_account=DEV).decision == DELEGATED


def test_a_recreated_role_no_longer_matches_its_old_statement():
    policy = _policy({"Sid": "Deployer", "Principal": {"AWS": [DEPLOY]}, "Action": "kms:PutKeyPolicy"})
    assert evaluate(policy, Caller(DEPLOY, recreated=True), "kms:PutKeyPolicy").decision == IMPLICIT_DENY


def test_a_service_principal_is_judged_on_the_key_policy_alone_and_a_deny_names_its_statement():
    logs = "logs.eu-west-1.amazonaws.com"
    policy = _policy(
        {"Principal": {"Service": logs}, "Action": "kms:GenerateDataKey"},
        {
            "Sid": "NotThere",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "kms:GenerateDataKey",
            "Condition": {"StringNotEquals": {"aws:SourceAccount": DEV}},
        },
    )
    assert (
        evaluate(policy, Caller(logs, service=True), "kms:GenerateDataKey", {"aws:SourceAccount": DEV}, key_account=DEV).decision
        == ALLOW
    )
    denied = evaluate(policy, Caller(logs, service=True), "kms:GenerateDataKey", {"aws:SourceAccount": PROD}, key_account=DEV)
    assert (denied.decision, denied.sids) == (DENY, ("NotThere",))
