"""What a GitHub token of this repository can become, walked through every trust and permission the
estate declares (org stack, management bootstrap template, the access role in each member account):
pull requests reach only read-only preview roles; each environment only its own accounts' deploy roles."""

from __future__ import annotations

import pytest

from tests.org._identity_graph import IdentityGraph, estate_graph

MANAGEMENT = "111111111111"
REPO = "acme/bakehouse"
OPERATOR = f"arn:aws:iam::{MANAGEMENT}:role/Admin"
ENVIRONMENTS = ("security", "build", "dev", "uat", "production")
PULL_REQUEST = f"repo:{REPO}:pull_request"


def _env(environment: str, repo: str = REPO) -> str:
    return f"repo:{repo}:environment:{environment}"


IDS = {
    "management": MANAGEMENT,
    "security": "222222222222",
    "build": "333333333333",
    "dev": "444444444444",
    "uat": "555555555555",
    "prod": "666666666666",
}


@pytest.fixture(scope="module")
def graph(stack_run) -> IdentityGraph:
    return estate_graph(stack_run("org"), IDS, [OPERATOR])


def _deploy_role(graph: IdentityGraph, key: str) -> str:
    return f"arn:aws:iam::{IDS[key]}:role/BakehouseDeploy"


def _names(arns: set[str]) -> set[str]:
    return {a.rsplit("/", 1)[-1] for a in arns}


def test_pull_request_tokens_reach_only_read_only_preview_roles(graph):
    reached = graph.from_subject(PULL_REQUEST, MANAGEMENT)
    assert _names(reached) == {"BakehouseGitHubPreview", "BakehousePreview"}
    # every account's preview role, the management one (bootstrap) included: the test is not vacuous
    previews = {a for a in reached if a.endswith(":role/BakehousePreview")}
    assert len(previews) == 6 and f"arn:aws:iam::{MANAGEMENT}:role/BakehousePreview" in previews


@pytest.mark.parametrize("key", ["management", "security", "build", "dev", "uat", "prod"])
def test_pull_request_tokens_cannot_reach_any_deploy_role(graph, key):
    assert _deploy_role(graph, key) not in graph.from_subject(PULL_REQUEST, MANAGEMENT)


def test_prod_deploy_role_is_reachable_only_from_the_production_environment(graph):
    prod = _deploy_role(graph, "prod")
    subjects = [
        PULL_REQUEST,
        *(_env(e) for e in ENVIRONMENTS),
        _env("management"),
        _env("production", "someone/else"),
        f"repo:{REPO}:ref:refs/heads/main",
        _env("Production"),
        _env("production-copy"),
    ]
    reaching = {s for s in subjects if prod in graph.from_subject(s, MANAGEMENT)}
    # The org stack, which administers every account through OrganizationAccountAccessRole, deploys from
    # the production environment too: no other environment leads to prod (docs/identity.md).
    assert reaching == {_env("production")}
    # and directly, prod's deploy role admits only production's GitHub role and the management deploy role
    direct = {arn for arn, role in graph.roles.items() if graph.may_assume(role, graph.roles[prod])}
    assert _names(direct) == {"BakehouseGitHubDeploy-production", "BakehouseDeploy"}
    assert direct >= {f"arn:aws:iam::{MANAGEMENT}:role/BakehouseGitHubDeploy-production"}


@pytest.mark.parametrize(
    "environment,keys", [("security", {"security"}), ("build", {"build"}), ("dev", {"dev"}), ("uat", {"uat"})]
)
def test_each_environment_reaches_only_its_own_accounts_deploy_role(graph, environment, keys):
    reached = graph.from_subject(_env(environment), MANAGEMENT)
    deploy_roles = {a for a in reached if a.endswith(":role/BakehouseDeploy")}
    assert deploy_roles == {_deploy_role(graph, k) for k in keys}
    assert not any(a.endswith(":role/OrganizationAccountAccessRole") for a in reached)


def test_the_production_environment_reaches_prod_and_the_organizations_root_and_nothing_else_deploys(graph):
    reached = graph.from_subject(_env("production"), MANAGEMENT)
    deploy_roles = {a for a in reached if a.endswith(":role/BakehouseDeploy")}
    # prod's and the management account's (the org stack); members only through the access role the org
    # stack declares their roles with
    assert deploy_roles >= {_deploy_role(graph, "prod"), _deploy_role(graph, "management")}
    assert not graph.from_subject(_env("management"), MANAGEMENT)  # no management environment any more


def test_a_token_from_another_repository_becomes_nothing(graph):
    for environment in ENVIRONMENTS:
        assert graph.web_identity(_env(environment, "acme/bakehouse-fork"), MANAGEMENT) == set()
    assert graph.web_identity("repo:acme/bakehouse-fork:pull_request", MANAGEMENT) == set()
