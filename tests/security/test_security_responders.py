"""The responders' role exists where break-glass trusts it, needs MFA and a team tag, and can only
read here and assume the workloads' break-glass roles."""

from __future__ import annotations

import json

from tests.iam.evaluate import allowed

ORG = "o-exampleorg01"
SECURITY = "222222222222"
WORKLOADS = ("444444444444", "555555555555", "666666666666")


def _role(run):
    [role] = [r for r in run.of_type("aws:iam/role:Role") if r.inputs.get("name") == "BakehouseResponder"]
    return role


def test_responder_role_trusts_only_tagged_security_account_identities_with_mfa(stack_run):
    role = _role(stack_run("security"))
    assert role.inputs["maxSessionDuration"] == 3600
    [trust] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{SECURITY}:root"}
    assert trust["Condition"]["Bool"] == {"aws:MultiFactorAuthPresent": "true"}
    assert trust["Condition"]["StringEquals"] == {"aws:PrincipalTag/bakehouse:team": "security-responders"}


def _in(account: str, org: str = ORG) -> dict:
    return {"aws:PrincipalAccount": SECURITY, "aws:PrincipalOrgID": ORG, "aws:ResourceAccount": account, "aws:ResourceOrgID": org}


def test_responders_may_assume_exactly_the_workloads_break_glass_roles(stack_run):
    run = stack_run("security")
    [policy] = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("responders-break-glass")]
    document = policy.inputs["policy"]
    [stmt] = json.loads(document)["Statement"]
    assert stmt["Action"] == ["sts:AssumeRole"]
    # by name in the organization's accounts (not one ARN per account: the policy stays one size)
    for account in WORKLOADS:
        assert allowed(document, "sts:AssumeRole", f"arn:aws:iam::{account}:role/BakehouseBreakGlass", _in(account))
        assert not allowed(document, "sts:AssumeRole", f"arn:aws:iam::{account}:role/BakehouseDeploy", _in(account))
    assert not allowed(
        document, "sts:AssumeRole", "arn:aws:iam::999999999999:role/BakehouseBreakGlass", _in("999999999999", "o-other0000001")
    )
    assert not allowed(document, "sts:AssumeRole", f"arn:aws:iam::{SECURITY}:role/BakehouseBreakGlass", _in(SECURITY))
    [attachment] = [
        r for r in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") if r.name.endswith("responders-read-only")
    ]
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/SecurityAudit"
