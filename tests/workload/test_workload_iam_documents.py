"""Every IAM document a workload stack declares is one IAM accepts: moto's IAM validates policy
grammar (versions, ARN formats, condition operators) the way the service does before storing it."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

ENVS = ("dev", "uat", "prod")


@pytest.fixture
def iam():
    with mock_aws():
        yield boto3.client("iam", region_name="us-east-1")


@pytest.mark.parametrize("env", ENVS)
def test_every_declared_role_trust_and_inline_policy_is_accepted_by_iam(env, stack_run, iam):
    run = stack_run(env)
    roles = run.of_type("aws:iam/role:Role")
    policies = run.of_type("aws:iam/rolePolicy:RolePolicy")
    assert len(roles) >= 7 and len(policies) >= 6
    names = {}
    for i, role in enumerate(roles):
        names[f"{role.name}-id"] = f"role{i}"  # a policy may name its role by the role's id output...
        if role.inputs.get("name"):
            names[role.inputs["name"]] = f"role{i}"  # ...or by the role's fixed name
        iam.create_role(
            RoleName=f"role{i}", Path=role.inputs.get("path", "/"), AssumeRolePolicyDocument=role.inputs["assumeRolePolicy"]
        )
    for policy in policies:
        iam.put_role_policy(RoleName=names[policy.inputs["role"]], PolicyName=policy.name, PolicyDocument=policy.inputs["policy"])
    stored = iam.list_role_policies(RoleName=names[policies[0].inputs["role"]])["PolicyNames"]
    assert policies[0].name in stored


def test_iam_rejects_what_the_validation_above_relies_on_it_rejecting(iam):
    iam.create_role(
        RoleName="probe",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
            }
        ),
    )
    bad = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "parameter/bakehouse/dev/*"}],
    }
    with pytest.raises(iam.exceptions.MalformedPolicyDocumentException):
        iam.put_role_policy(RoleName="probe", PolicyName="bad", PolicyDocument=json.dumps(bad))
