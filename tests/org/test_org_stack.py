"""The org stack (management account): organization, OUs, accounts, trail, delegated administrators,
and its `bakehouse:org` config section, asserted on what the real program declares."""

from __future__ import annotations

import json

import pytest

from estate.config import ConfigError
from tools import mockrun
from tools.mockrun import run_stack

MGMT, SECURITY = "111111111111", "222222222222"
TRAIL = f"arn:aws:cloudtrail:eu-west-1:{MGMT}:trail/bakehouse-organization"
LOG_BUCKETS = ("trail", "config", "flowlogs", "evidence", "sessions")
GOOD_SECTION = {
    "accountEmails": {k: f"aws+{k}@example.com" for k in ("security", "build", "dev", "uat", "prod")},
    "githubRepository": "acme/bakehouse",
}


EXPLICIT_DEPENDENCIES: dict[str, tuple[str, ...]] = {}


class _DependencyMonitor(mockrun.RecordingMonitor):
    """The project's recording monitor, also keeping each registration's explicit depends_on."""

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        EXPLICIT_DEPENDENCIES[response.urn] = tuple(request.dependencies)
        return response


@pytest.fixture(scope="module")
def org():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mockrun, "RecordingMonitor", _DependencyMonitor)
        return run_stack("org")


def _one(run, type_token):
    found = run.of_type(type_token)
    assert len(found) == 1, f"{len(found)} of {type_token}"
    return found[0]


def test_organization_has_all_features_and_trusts_the_security_services(org):
    organization = _one(org, "aws:organizations/organization:Organization")
    assert organization.inputs["featureSet"] == "ALL"
    assert {
        "cloudtrail.amazonaws.com",
        "guardduty.amazonaws.com",
        "securityhub.amazonaws.com",
        "config.amazonaws.com",
        "config-multiaccountsetup.amazonaws.com",
        "inspector2.amazonaws.com",
        "access-analyzer.amazonaws.com",
    } <= set(organization.inputs["awsServiceAccessPrincipals"])
    assert "SERVICE_CONTROL_POLICY" in organization.inputs["enabledPolicyTypes"]


def test_organization_trusts_service_catalog_so_the_factory_portfolio_can_reach_the_workload_ous(org):
    organization = _one(org, "aws:organizations/organization:Organization")
    assert "servicecatalog.amazonaws.com" in organization.inputs["awsServiceAccessPrincipals"]


def test_ous_form_the_estate_tree(org):
    ous = {r.inputs["name"]: r for r in org.of_type("aws:organizations/organizationalUnit:OrganizationalUnit")}
    assert set(ous) == {"Security", "Infrastructure", "Workloads", "NonProd", "Prod", "Suspended"}
    workloads_id = f"{ous['Workloads'].name}-id"
    assert ous["NonProd"].inputs["parentId"] == workloads_id
    assert ous["Prod"].inputs["parentId"] == workloads_id
    for top in ("Security", "Infrastructure", "Workloads", "Suspended"):
        assert ous[top].inputs.get("parentId") in (None, ""), f"{top} should sit at the root"


def test_member_accounts_sit_in_their_ous_and_are_never_closed_by_a_delete(org):
    ou_name = {f"{r.name}-id": r.inputs["name"] for r in org.of_type("aws:organizations/organizationalUnit:OrganizationalUnit")}
    accounts = {r.inputs["tags"]["bakehouse:account"]: r for r in org.of_type("aws:organizations/account:Account")}
    expected = {"security": "Security", "build": "Infrastructure", "dev": "NonProd", "uat": "NonProd", "prod": "Prod"}
    assert {k: ou_name[a.inputs["parentId"]] for k, a in accounts.items()} == expected
    for key, account in accounts.items():
        assert account.inputs["closeOnDeletion"] is False
        assert account.inputs["roleName"] == "OrganizationAccountAccessRole"
        assert account.inputs["email"] == f"aws+{key}@example.com"


def test_trail_log_group_is_encrypted_and_its_role_writes_only_there(org):
    group = _one(org, "aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["kmsKeyId"].startswith(f"arn:aws:kms:eu-west-1:{MGMT}:key/")
    assert group.inputs["retentionInDays"] == 365
    role = next(r for r in org.of_type("aws:iam/role:Role") if r.inputs.get("name") == "BakehouseOrgTrailToLogs")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceArn"] == TRAIL
    (trail_policy,) = [p for p in org.of_type("aws:iam/rolePolicy:RolePolicy") if "trail-logs" in p.name]
    policy = json.loads(trail_policy.inputs["policy"])
    (stmt,) = policy["Statement"]
    assert sorted(stmt["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert stmt["Resource"] == [f"arn:aws:logs:eu-west-1:{MGMT}:log-group:/bakehouse/cloudtrail/organization:log-stream:*"]


def test_security_account_is_delegated_administrator_of_every_security_service(org):
    security_id = next(
        f"{r.name}-id"
        for r in org.of_type("aws:organizations/account:Account")
        if r.inputs["tags"]["bakehouse:account"] == "security"
    )
    guardduty = org.of_type("aws:guardduty/organizationAdminAccount:OrganizationAdminAccount")
    inspector = org.of_type("aws:inspector2/delegatedAdminAccount:DelegatedAdminAccount")
    assert {g.inputs["region"] for g in guardduty} == {"eu-west-1", "eu-central-1", "us-east-1"}
    assert {i.inputs["region"] for i in inspector} == {"eu-west-1", "eu-central-1", "us-east-1"}
    assert all(g.inputs["adminAccountId"] == security_id for g in guardduty)
    assert all(i.inputs["accountId"] == security_id for i in inspector)
    hub = _one(org, "aws:securityhub/organizationAdminAccount:OrganizationAdminAccount")
    assert hub.inputs["adminAccountId"] == security_id
    delegated = {
        d.inputs["servicePrincipal"]: d.inputs["accountId"]
        for d in org.of_type("aws:organizations/delegatedAdministrator:DelegatedAdministrator")
        if d.inputs["servicePrincipal"] != "servicecatalog.amazonaws.com"
    }
    assert delegated == {
        "config.amazonaws.com": security_id,
        "config-multiaccountsetup.amazonaws.com": security_id,
        "access-analyzer.amazonaws.com": security_id,
    }


def test_org_stack_declares_no_trail_itself_the_security_stack_creates_it_after_its_bucket_and_key(org):
    # Ordering without a config flip: the trail needs the log archive, which the security stack owns.
    assert org.of_type("aws:cloudtrail/trail:Trail") == []


def test_first_org_run_needs_no_flip_the_trail_log_group_and_cis_alarms_are_declared_unconditionally(org):
    assert len(org.of_type("aws:cloudwatch/logGroup:LogGroup")) == 1
    assert len(org.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")) >= 16


def test_log_archive_ready_flip_is_gone_and_a_leftover_key_is_refused():
    run = run_stack("org", overrides={"bakehouse:org": {**GOOD_SECTION, "logArchiveReady": False}}, raise_errors=False)
    assert isinstance(run.error, ConfigError)
    assert "bakehouse:org.logArchiveReady" in str(run.error)


def test_service_catalog_organizations_access_is_enabled_from_the_management_account(org):
    access = _one(org, "aws:servicecatalog/organizationsAccess:OrganizationsAccess")
    assert access.inputs["enabled"] is True
    organization = _one(org, "aws:organizations/organization:Organization")
    assert organization.urn in _dependencies(org, access)


def test_build_account_is_the_service_catalog_delegated_administrator_after_organizations_access(org):
    build_id = next(
        f"{r.name}-id"
        for r in org.of_type("aws:organizations/account:Account")
        if r.inputs["tags"]["bakehouse:account"] == "build"
    )
    (catalog,) = [
        d
        for d in org.of_type("aws:organizations/delegatedAdministrator:DelegatedAdministrator")
        if d.inputs["servicePrincipal"] == "servicecatalog.amazonaws.com"
    ]
    assert catalog.inputs["accountId"] == build_id
    access = _one(org, "aws:servicecatalog/organizationsAccess:OrganizationsAccess")
    assert access.urn in _dependencies(org, catalog)


def test_trail_admin_role_is_trusted_only_by_the_security_deploy_role_and_may_not_stop_or_delete(org):
    (role,) = [r for r in org.of_type("aws:iam/role:Role") if r.inputs.get("name") == "BakehouseOrgTrailAdmin"]
    (trust,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{SECURITY}:role/BakehouseDeploy"}
    (policy,) = [p for p in org.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("trail-admin")]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    actions = {a for s in statements for a in s["Action"]}
    assert "cloudtrail:CreateTrail" in actions and "iam:PassRole" in actions
    assert not {"cloudtrail:StopLogging", "cloudtrail:DeleteTrail", "cloudtrail:*"} & actions
    trail_statement = next(s for s in statements if "cloudtrail:CreateTrail" in s["Action"])
    assert trail_statement["Resource"] == [TRAIL]
    pass_role = next(s for s in statements if s["Action"] == ["iam:PassRole"])
    assert pass_role["Resource"] == [f"arn:aws:iam::{MGMT}:role/BakehouseOrgTrailToLogs"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "cloudtrail.amazonaws.com"}}


def _dependencies(run, resource) -> set[str]:
    """URNs the resource waits for: explicit depends_on and the inputs' own dependencies."""
    deps = {urn for urns in resource.property_dependencies.values() for urn in urns}
    return deps | set(EXPLICIT_DEPENDENCIES.get(resource.urn, ()))


def test_bad_org_section_lists_every_problem_and_declares_nothing():
    bad = {
        "accountEmails": {
            "security": "not-an-email",
            "build": "aws+build@example.com",
            "dev": "aws+build@example.com",
            "staging": "x@example.com",
        },
        "prodEnvs": ["production"],
        "trailLogRetentionDays": 42,
        "colour": "blue",
    }
    run = run_stack("org", overrides={"bakehouse:org": bad}, raise_errors=False)
    assert isinstance(run.error, ConfigError)
    message = str(run.error)
    for expected in (
        "bakehouse:org.accountEmails.security is 'not-an-email'",
        "bakehouse:org.accountEmails.uat",
        "bakehouse:org.accountEmails.staging",
        "a distinct email per account",
        "bakehouse:org.prodEnvs",
        "bakehouse:org.trailLogRetentionDays is 42",
        "bakehouse:org.colour",
    ):
        assert expected in message, expected
    assert message.startswith("Pulumi.org.yaml has ")
    assert [r for r in run.resources if not r.is_provider] == []
