"""The approver role the factory's configuration names exists, is assumable only by the configured
people, and may only answer approval steps."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.iam.evaluate import allowed
from tools.mockrun import PROJECT_DIR

REGION, BUILD = "eu-west-1", "333333333333"
EXECUTION = f"arn:aws:ssm:{REGION}:{BUILD}:automation-execution/0123abcd-0123-abcd-0123-0123456789ab"


def factory_section() -> dict:
    return yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())["config"]["bakehouse:factory"]


@pytest.fixture(scope="module")
def approver(stack_run):
    run = stack_run("build")
    [role] = [r for r in run.of_type("aws:iam/role:Role") if r.inputs.get("name") == "BakehouseImageApprover"]
    policies = [
        json.loads(p.inputs["policy"])
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if p.inputs["role"] == "BakehouseImageApprover"
    ]
    statements = [s for p in policies for s in p["Statement"]]
    return json.loads(role.inputs["assumeRolePolicy"]), {"Version": "2012-10-17", "Statement": statements}


def test_the_configured_approver_role_is_created_in_the_build_account(approver):
    configured = factory_section()["approvers"]
    assert f"arn:aws:iam::{BUILD}:role/BakehouseImageApprover" in configured


def test_only_the_configured_approver_principals_may_assume_the_approver_role(approver):
    trust, _ = approver
    [statement] = trust["Statement"]
    assert statement["Action"] in ("sts:AssumeRole", ["sts:AssumeRole"])
    principals = statement["Principal"]["AWS"]
    assert sorted(principals if isinstance(principals, list) else [principals]) == sorted(factory_section()["approverPrincipals"])


def test_the_approver_may_only_answer_automation_approvals(approver):
    _, policy = approver
    assert allowed(policy, "ssm:SendAutomationSignal", EXECUTION)
    for action, resource in [
        ("ssm:StartAutomationExecution", f"arn:aws:ssm:{REGION}:{BUILD}:automation-definition/Bakehouse-Pipeline:$DEFAULT"),
        ("ssm:StopAutomationExecution", EXECUTION),
        ("ssm:SendAutomationSignal", f"arn:aws:ssm:us-east-1:{BUILD}:automation-execution/x"),
        ("ssm:PutParameter", f"arn:aws:ssm:{REGION}:{BUILD}:parameter/bakehouse/images/al2023/latest"),
        ("ec2:CreateTags", f"arn:aws:ec2:{REGION}::image/ami-0123456789abcdef0"),
    ]:
        assert not allowed(policy, action, resource), (action, resource)
