"""The pipeline's way in: GitHub OIDC roles in the management account. Pull requests get one role,
trusted only by this repository's pull requests and able to assume only the read-only preview roles;
each GitHub environment gets its own role, trusted only by that environment's subject and able to
assume only the deploy role of the accounts it deploys. Environments derive from bakehouse:accounts."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.iam.evaluate import allowed
from tools.mockrun import PROJECT_DIR, cached_run

MANAGEMENT = "111111111111"
ISSUER = "token.actions.githubusercontent.com"
MEMBERS = ("security", "build", "dev", "uat", "prod")
ENVIRONMENT_OF = {
    "management": "production",
    "security": "security",
    "build": "build",
    "dev": "dev",
    "uat": "uat",
    "prod": "production",
}


ORG = "o-exampleorg01"


def _in_org(account: str, org: str = ORG) -> dict:
    """The request context of a CI role (in the management account, in the organization) assuming a role in
    `account`, which belongs to organization `org`."""
    return {
        "aws:PrincipalAccount": MANAGEMENT,
        "aws:PrincipalOrgID": ORG,
        "aws:ResourceAccount": account,
        "aws:ResourceOrgID": org,
    }


def _account(key: str) -> str:
    # the org stack names member accounts by the ids Organizations gives them (mocks: "<resource>-id")
    return MANAGEMENT if key == "management" else f"org-organization-account-{key}-id"


def _role(run, name):
    [role] = [r for r in run.of_type("aws:iam/role:Role") if r.inputs.get("name") == name and "-ci-" in r.name]
    return role


def _trust(run, name):
    [stmt] = json.loads(_role(run, name).inputs["assumeRolePolicy"])["Statement"]
    return stmt


def _policy(run, role):
    [policy] = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith(f"-ci-{role}-policy")]
    return policy.inputs["policy"]


def test_github_oidc_provider_is_declared_for_sts(stack_run):
    [provider] = stack_run("org").of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert provider.inputs["url"] == f"https://{ISSUER}"
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]


def test_preview_role_trusts_only_this_repositorys_pull_requests(stack_run):
    stmt = _trust(stack_run("org"), "BakehouseGitHubPreview")
    assert stmt["Principal"] == {"Federated": f"arn:aws:iam::{MANAGEMENT}:oidc-provider/{ISSUER}"}
    assert stmt["Condition"] == {
        "StringEquals": {f"{ISSUER}:aud": "sts.amazonaws.com", f"{ISSUER}:sub": "repo:acme/bakehouse:pull_request"}
    }


def test_pull_request_role_may_assume_preview_roles_and_no_deploy_role(stack_run):
    document = _policy(stack_run("org"), "BakehouseGitHubPreview")
    for key in ("management", *MEMBERS):
        context = _in_org(_account(key))
        assert allowed(document, "sts:AssumeRole", f"arn:aws:iam::{_account(key)}:role/BakehousePreview", context), key
        for forbidden in ("BakehouseDeploy", "OrganizationAccountAccessRole", "BakehouseReadOnly"):
            assert not allowed(document, "sts:AssumeRole", f"arn:aws:iam::{_account(key)}:role/{forbidden}", context)
    # a preview role of the same name in an account of another organization
    assert not allowed(
        document, "sts:AssumeRole", "arn:aws:iam::999999999999:role/BakehousePreview", _in_org("999999999999", "o-other0000001")
    )


@pytest.mark.parametrize("key", ["management", *MEMBERS])
def test_each_environment_has_its_own_role_trusted_only_by_its_subject(stack_run, key):
    environment = ENVIRONMENT_OF[key]
    stmt = _trust(stack_run("org"), f"BakehouseGitHubDeploy-{environment}")
    assert stmt["Condition"]["StringEquals"] == {
        f"{ISSUER}:aud": "sts.amazonaws.com",
        f"{ISSUER}:sub": f"repo:acme/bakehouse:environment:{environment}",
    }


@pytest.mark.parametrize("key", [m for m in MEMBERS if ENVIRONMENT_OF[m] != "production"])
def test_an_environments_role_may_assume_only_its_own_accounts_deploy_role(stack_run, key):
    document = _policy(stack_run("org"), f"BakehouseGitHubDeploy-{ENVIRONMENT_OF[key]}")
    for other in ("management", *MEMBERS):
        for role in ("BakehouseDeploy", "BakehousePreview", "OrganizationAccountAccessRole"):
            expected = other == key and role == "BakehouseDeploy"
            assert (
                allowed(document, "sts:AssumeRole", f"arn:aws:iam::{_account(other)}:role/{role}", _in_org(_account(other)))
                is expected
            ), (other, role)


def test_the_production_environment_deploys_the_org_stack_and_enters_members_through_the_access_role(stack_run):
    document = _policy(stack_run("org"), "BakehouseGitHubDeploy-production")
    assert allowed(document, "sts:AssumeRole", f"arn:aws:iam::{MANAGEMENT}:role/BakehouseDeploy", _in_org(MANAGEMENT))
    for key in MEMBERS:
        context = _in_org(_account(key))
        assert allowed(document, "sts:AssumeRole", f"arn:aws:iam::{_account(key)}:role/OrganizationAccountAccessRole", context)
        assert allowed(document, "sts:AssumeRole", f"arn:aws:iam::{_account(key)}:role/BakehouseDeploy", context) is (
            ENVIRONMENT_OF[key] == "production"
        )
    # by name and organization: not the management account's own role of that name, nor another organization's
    assert not allowed(
        document, "sts:AssumeRole", f"arn:aws:iam::{MANAGEMENT}:role/OrganizationAccountAccessRole", _in_org(MANAGEMENT)
    )
    assert not allowed(
        document,
        "sts:AssumeRole",
        "arn:aws:iam::999999999999:role/OrganizationAccountAccessRole",
        _in_org("999999999999", "o-other0000001"),
    )


def test_the_ci_roles_are_exactly_one_per_environment_of_the_config(stack_run):
    names = {r.inputs["name"] for r in stack_run("org").of_type("aws:iam/role:Role") if "-ci-" in r.name}
    assert names == {"BakehouseGitHubPreview", *(f"BakehouseGitHubDeploy-{e}" for e in ENVIRONMENT_OF.values())}


def test_a_staging_env_added_by_config_alone_is_trusted_by_ci_and_gets_its_account_roles():
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]
    org = yaml.safe_load((PROJECT_DIR / "Pulumi.org.yaml").read_text())["config"]["bakehouse:org"]
    accounts = {**project["bakehouse:accounts"]["value"], "staging": "777777777777"}
    org = {**org, "accountEmails": {**org["accountEmails"], "staging": "aws+staging@example.com"}}
    run = cached_run("org", overrides={"bakehouse:accounts": accounts, "bakehouse:org": org})
    stmt = _trust(run, "BakehouseGitHubDeploy-staging")
    assert stmt["Condition"]["StringEquals"][f"{ISSUER}:sub"] == "repo:acme/bakehouse:environment:staging"
    staging = _account("staging")
    assert allowed(
        _policy(run, "BakehouseGitHubDeploy-staging"),
        "sts:AssumeRole",
        f"arn:aws:iam::{staging}:role/BakehouseDeploy",
        _in_org(staging),
    )
    assert allowed(
        _policy(run, "BakehouseGitHubPreview"),
        "sts:AssumeRole",
        f"arn:aws:iam::{staging}:role/BakehousePreview",
        _in_org(staging),
    )
    declared = {r.inputs["name"] for r in run.of_type("aws:iam/role:Role") if r.name.startswith("org-access-staging-")}
    assert declared == {"BakehouseDeploy", "BakehousePreview", "BakehouseReadOnly"}


@pytest.mark.parametrize("repository", ["acme", "acme/bake house", "-acme/bakehouse", ""])
def test_a_malformed_repository_is_rejected_before_anything_is_declared(repository):
    org = {
        "accountEmails": {k: f"aws+{k}@example.com" for k in ("security", "build", "dev", "uat", "prod")},
        "githubRepository": repository,
    }
    run = cached_run("org", overrides={"bakehouse:org": org}, raise_errors=False)
    assert f"bakehouse:org.githubRepository is '{repository}'; allowed: the GitHub repository" in str(run.error)
    assert run.resources == []
