"""The roles every provider assumes exist because code made them: the org stack declares each member's
deploy, preview and BakehouseReadOnly roles through the access role Organizations created there, and
the management account's come from the bootstrap template kept in the repository (cfn-lint clean)."""

from __future__ import annotations

import json

import pytest
from cfnlint import api as cfnlint

from components.org.account_access import PREVIEW_DATA_READS
from tests.iam.evaluate import Simulation, simulate
from tests.org._identity_graph import BOOTSTRAP, bootstrap_template
from tools.mockrun import cached_run

MEMBERS = ("security", "build", "dev", "uat", "prod")
MGMT = "111111111111"


def _member_roles(run, key):
    return {r.inputs["name"]: r for r in run.of_type("aws:iam/role:Role") if r.name.startswith(f"org-access-{key}-")}


def _provider(run, resource):
    [provider] = [r for r in run.resources if r.is_provider and r.name == resource.provider_name]
    return provider


@pytest.mark.parametrize("key", MEMBERS)
def test_each_member_gets_its_deploy_preview_and_read_only_roles_inside_its_own_account(stack_run, key):
    run = stack_run("org")
    roles = _member_roles(run, key)
    assert set(roles) == {"BakehouseDeploy", "BakehousePreview", "BakehouseReadOnly"}
    account = f"org-organization-account-{key}-id"
    for role in roles.values():
        provider = _provider(run, role)
        assert provider.inputs["allowedAccountIds"] == [account]
        assert [hop["roleArn"] for hop in provider.inputs["assumeRoles"]] == [
            f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
        ]


def test_a_preview_enters_members_through_their_preview_role_only():
    run = cached_run("org", preview=True)
    for key in MEMBERS:
        provider = _provider(run, _member_roles(run, key)["BakehousePreview"])
        assert [hop["roleArn"] for hop in provider.inputs["assumeRoles"]] == [
            f"arn:aws:iam::org-organization-account-{key}-id:role/BakehousePreview"
        ]


def _attached(run, key, role):
    return {
        a.inputs["policyArn"]
        for a in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.name.startswith(f"org-access-{key}-{role}-")
    }


def test_preview_role_reads_configuration_but_not_the_estates_data(stack_run):
    run = stack_run("org")
    assert _attached(run, "prod", "BakehousePreview") == {"arn:aws:iam::aws:policy/ReadOnlyAccess"}
    assert _attached(run, "prod", "BakehouseDeploy") == {"arn:aws:iam::aws:policy/AdministratorAccess"}
    [deny] = [p for p in run.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == "org-access-prod-BakehousePreview-no-data"]
    [stmt] = json.loads(deny.inputs["policy"])["Statement"]
    assert stmt["Effect"] == "Deny" and {"s3:GetObject", "secretsmanager:GetSecretValue", "kms:Decrypt"} <= set(stmt["Action"])


def _people_may_assume(run, context):
    trust = json.loads(_member_roles(run, "prod")["BakehouseReadOnly"].inputs["assumeRolePolicy"])
    person = f"arn:aws:iam::{MGMT}:role/Analyst"
    allow_all = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}
    [verdict] = simulate(
        [
            Simulation(
                person,
                "sts:AssumeRole",
                "arn:aws:iam::666666666666:role/BakehouseReadOnly",
                {"aws:PrincipalArn": person, **context},
                identity=[allow_all],
                resource_policy=trust,
            )
        ]
    )
    return verdict.allowed


def test_people_read_only_role_requires_mfa_from_the_management_account(stack_run):
    run = stack_run("org")
    assert _people_may_assume(run, {"aws:MultiFactorAuthPresent": "true"})
    assert not _people_may_assume(run, {})
    assert _attached(run, "prod", "BakehouseReadOnly") == {"arn:aws:iam::aws:policy/ReadOnlyAccess"}


# --- the management account's one-time bootstrap ----------------------------------------------------


def _lint(text: str) -> list[str]:
    return [str(m) for m in cfnlint.lint(text, config=cfnlint.ManualArgs(regions=["eu-west-1"], include_checks=["I"]))]


def test_bootstrap_template_is_cfn_lint_clean():
    assert _lint(BOOTSTRAP.read_text()) == []


def test_cfn_lint_catches_a_broken_bootstrap_template():
    broken = BOOTSTRAP.read_text().replace("MaxSessionDuration: 3600", "MaxSessionDuration: 60", 1)
    assert any("MaxSessionDuration" in m or "60" in m for m in _lint(broken))


def test_bootstrap_makes_the_management_roles_the_code_names():
    roles = {
        r["Properties"]["RoleName"] if isinstance(r["Properties"]["RoleName"], str) else "deploy"
        for r in bootstrap_template()["Resources"].values()
        if r["Type"] == "AWS::IAM::Role"
    }
    assert roles == {"deploy", "BakehousePreview", "BakehouseReadOnly"}
    assert bootstrap_template()["Parameters"]["DeployRoleName"]["Default"] == "BakehouseDeploy"


def test_bootstrap_preview_role_denies_the_same_data_reads_as_the_members():
    [preview] = [
        r
        for r in bootstrap_template()["Resources"].values()
        if r["Type"] == "AWS::IAM::Role" and r["Properties"]["RoleName"] == "BakehousePreview"
    ]
    [stmt] = preview["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert stmt["Effect"] == "Deny" and tuple(stmt["Action"]) == PREVIEW_DATA_READS
