"""The pipeline's way in: GitHub OIDC roles in the management account, trusted only by this
repository's pull requests (preview) and protected environments (deploy), able only to assume the
estate's deploy roles; the workflows name exactly these roles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.unit._iam_eval import allowed
from tools.mockrun import run_stack

MANAGEMENT = "111111111111"
ESTATE = ("111111111111", "222222222222", "333333333333", "444444444444", "555555555555", "666666666666")
WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"
ISSUER = "token.actions.githubusercontent.com"


def _role(run, name):
    [role] = [r for r in run.of_type("aws:iam/role:Role") if r.inputs.get("name") == name]
    return role


def _trust(run, name):
    [stmt] = json.loads(_role(run, name).inputs["assumeRolePolicy"])["Statement"]
    return stmt


def test_github_oidc_provider_is_declared_for_sts(stack_run):
    [provider] = stack_run("org").of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert provider.inputs["url"] == f"https://{ISSUER}"
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]


def test_preview_role_trusts_only_this_repositorys_pull_requests(stack_run):
    stmt = _trust(stack_run("org"), "BakehouseGitHubPreview")
    assert stmt["Principal"] == {"Federated": f"arn:aws:iam::{MANAGEMENT}:oidc-provider/{ISSUER}"}
    assert stmt["Condition"]["StringEquals"] == {f"{ISSUER}:aud": "sts.amazonaws.com",
                                                 f"{ISSUER}:sub": ["repo:acme/bakehouse:pull_request"]}


def test_deploy_role_trusts_only_the_protected_environments_the_workflow_deploys_in(stack_run):
    stmt = _trust(stack_run("org"), "BakehouseGitHubDeploy")
    subs = stmt["Condition"]["StringEquals"][f"{ISSUER}:sub"]
    workflow_envs = set(re.findall(r"^\s+environment: (\w+)\s*$", (WORKFLOWS / "preview.yml").read_text(), re.M))
    assert {s.rsplit(":", 1)[-1] for s in subs} == workflow_envs
    assert all(s.startswith("repo:acme/bakehouse:environment:") for s in subs)
    assert "repo:acme/bakehouse:pull_request" not in subs


@pytest.mark.parametrize("role", ["BakehouseGitHubPreview", "BakehouseGitHubDeploy"])
def test_ci_roles_may_only_assume_the_estates_deploy_roles(role, stack_run):
    run = stack_run("org")
    [policy] = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith(f"{role}-policy")]
    document = policy.inputs["policy"]
    for account in ESTATE:
        assert allowed(document, "sts:AssumeRole", f"arn:aws:iam::{account}:role/BakehouseDeploy")
    assert not allowed(document, "sts:AssumeRole", "arn:aws:iam::999999999999:role/BakehouseDeploy")
    assert not allowed(document, "sts:AssumeRole", f"arn:aws:iam::{ESTATE[3]}:role/BakehouseBreakGlass")
    assert not allowed(document, "iam:CreateUser", "*")


def test_workflows_assume_exactly_the_declared_roles(stack_run):
    declared = {f"arn:aws:iam::{MANAGEMENT}:role/{n}" for n in ("BakehouseGitHubPreview", "BakehouseGitHubDeploy")}
    named = set()
    for workflow in WORKFLOWS.glob("*.yml"):
        named |= set(re.findall(r"arn:aws:iam::\d{12}:role/BakehouseGitHub\w+", workflow.read_text()))
    assert named == declared


@pytest.mark.parametrize("repository", ["acme", "acme/bake house", "-acme/bakehouse", ""])
def test_a_malformed_repository_is_rejected_before_anything_is_declared(repository):
    org = {"accountEmails": {k: f"aws+{k}@example.com" for k in ("security", "build", "dev", "uat", "prod")},
           "githubRepository": repository}
    run = run_stack("org", overrides={"bakehouse:org": org}, raise_errors=False)
    assert f"bakehouse:org.githubRepository is '{repository}'; allowed: the GitHub repository" in str(run.error)
    assert run.resources == []
