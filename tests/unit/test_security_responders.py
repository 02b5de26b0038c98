"""The responders' role exists where break-glass trusts it, needs MFA and a team tag, and can only
read here and assume the workloads' break-glass roles."""

from __future__ import annotations

import json

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


def test_responders_may_assume_exactly_the_workloads_break_glass_roles(stack_run):
    run = stack_run("security")
    [policy] = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("responders-break-glass")]
    [stmt] = json.loads(policy.inputs["policy"])["Statement"]
    assert stmt["Action"] == ["sts:AssumeRole"]
    assert sorted(stmt["Resource"]) == sorted(f"arn:aws:iam::{a}:role/BakehouseBreakGlass" for a in WORKLOADS)
    [attachment] = [r for r in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                    if r.name.endswith("responders-read-only")]
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/SecurityAudit"
