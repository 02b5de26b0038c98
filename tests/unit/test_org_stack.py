"""The org stack (management account): organization, OUs, accounts, trail, delegated administrators,
and its `bakehouse:org` config section, asserted on what the real program declares."""

from __future__ import annotations

import json

import pytest

from estate.config import ConfigError
from tools.mockrun import run_stack

MGMT, SECURITY = "111111111111", "222222222222"
TRAIL = f"arn:aws:cloudtrail:eu-west-1:{MGMT}:trail/bakehouse-organization"
LOG_BUCKETS = ("trail", "config", "flowlogs", "evidence", "sessions")
GOOD_SECTION = {
    "accountEmails": {k: f"aws+{k}@example.com" for k in ("security", "build", "dev", "uat", "prod")},
    "githubRepository": "acme/bakehouse",
}


@pytest.fixture(scope="module")
def org(stack_run):
    return stack_run("org")


def _one(run, type_token):
    found = run.of_type(type_token)
    assert len(found) == 1, f"{len(found)} of {type_token}"
    return found[0]


def test_organization_has_all_features_and_trusts_the_security_services(org):
    organization = _one(org, "aws:organizations/organization:Organization")
    assert organization.inputs["featureSet"] == "ALL"
    assert {"cloudtrail.amazonaws.com", "guardduty.amazonaws.com", "securityhub.amazonaws.com",
            "config.amazonaws.com", "config-multiaccountsetup.amazonaws.com", "inspector2.amazonaws.com",
            "access-analyzer.amazonaws.com"} <= set(organization.inputs["awsServiceAccessPrincipals"])
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
    ou_name = {f"{r.name}-id": r.inputs["name"]
               for r in org.of_type("aws:organizations/organizationalUnit:OrganizationalUnit")}
    accounts = {r.inputs["tags"]["bakehouse:account"]: r for r in org.of_type("aws:organizations/account:Account")}
    expected = {"security": "Security", "build": "Infrastructure", "dev": "NonProd", "uat": "NonProd", "prod": "Prod"}
    assert {k: ou_name[a.inputs["parentId"]] for k, a in accounts.items()} == expected
    for key, account in accounts.items():
        assert account.inputs["closeOnDeletion"] is False
        assert account.inputs["roleName"] == "OrganizationAccountAccessRole"
        assert account.inputs["email"] == f"aws+{key}@example.com"


def test_trail_is_organization_wide_validated_and_encrypted(org):
    trail = _one(org, "aws:cloudtrail/trail:Trail")
    inputs = trail.inputs
    assert inputs["name"] == "bakehouse-organization"
    assert inputs["isOrganizationTrail"] is True
    assert inputs["isMultiRegionTrail"] is True
    assert inputs["includeGlobalServiceEvents"] is True
    assert inputs["enableLogFileValidation"] is True
    assert inputs["kmsKeyId"] == f"arn:aws:kms:eu-west-1:{SECURITY}:alias/bakehouse-trail"
    assert inputs["s3BucketName"] == f"bakehouse-trail-{SECURITY}-eu-west-1"
    assert inputs["cloudWatchLogsGroupArn"] == \
        f"arn:aws:logs:eu-west-1:{MGMT}:log-group:/bakehouse/cloudtrail/organization:*"


def test_trail_records_management_events_and_data_events_on_log_buckets_and_lambda(org):
    selectors = {s["name"]: {f["field"]: f for f in s["fieldSelectors"]}
                 for s in _one(org, "aws:cloudtrail/trail:Trail").inputs["advancedEventSelectors"]}
    assert selectors["Management events"]["eventCategory"]["equals"] == ["Management"]
    s3 = selectors["Log-archive object access"]
    assert s3["eventCategory"]["equals"] == ["Data"] and s3["resources.type"]["equals"] == ["AWS::S3::Object"]
    assert sorted(s3["resources.ARN"]["startsWiths"]) == sorted(
        f"arn:aws:s3:::bakehouse-{kind}-{SECURITY}-eu-west-1/" for kind in LOG_BUCKETS)
    assert selectors["Lambda invocations"]["resources.type"]["equals"] == ["AWS::Lambda::Function"]


def test_trail_log_group_is_encrypted_and_its_role_writes_only_there(org):
    group = _one(org, "aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["kmsKeyId"].startswith(f"arn:aws:kms:eu-west-1:{MGMT}:key/")
    assert group.inputs["retentionInDays"] == 365
    role = next(r for r in org.of_type("aws:iam/role:Role") if "trail" in r.name)
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceArn"] == TRAIL
    (trail_policy,) = [p for p in org.of_type("aws:iam/rolePolicy:RolePolicy") if "trail" in p.name]
    policy = json.loads(trail_policy.inputs["policy"])
    (stmt,) = policy["Statement"]
    assert sorted(stmt["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert stmt["Resource"] == [f"arn:aws:logs:eu-west-1:{MGMT}:log-group:/bakehouse/cloudtrail/organization:log-stream:*"]


def test_security_account_is_delegated_administrator_of_every_security_service(org):
    security_id = next(f"{r.name}-id" for r in org.of_type("aws:organizations/account:Account")
                       if r.inputs["tags"]["bakehouse:account"] == "security")
    guardduty = org.of_type("aws:guardduty/organizationAdminAccount:OrganizationAdminAccount")
    inspector = org.of_type("aws:inspector2/delegatedAdminAccount:DelegatedAdminAccount")
    assert {g.inputs["region"] for g in guardduty} == {"eu-west-1", "eu-central-1", "us-east-1"}
    assert {i.inputs["region"] for i in inspector} == {"eu-west-1", "eu-central-1", "us-east-1"}
    assert all(g.inputs["adminAccountId"] == security_id for g in guardduty)
    assert all(i.inputs["accountId"] == security_id for i in inspector)
    hub = _one(org, "aws:securityhub/organizationAdminAccount:OrganizationAdminAccount")
    assert hub.inputs["adminAccountId"] == security_id
    delegated = {d.inputs["servicePrincipal"]: d.inputs["accountId"]
                 for d in org.of_type("aws:organizations/delegatedAdministrator:DelegatedAdministrator")}
    assert delegated == {"config.amazonaws.com": security_id, "config-multiaccountsetup.amazonaws.com": security_id,
                         "access-analyzer.amazonaws.com": security_id}


def test_first_deployment_declares_no_trail_until_the_log_archive_exists():
    run = run_stack("org", overrides={"bakehouse:org": {**GOOD_SECTION, "logArchiveReady": False}})
    assert run.of_type("aws:cloudtrail/trail:Trail") == []
    assert run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm") == []
    assert len(run.of_type("aws:organizations/account:Account")) == 5


def test_bad_org_section_lists_every_problem_and_declares_nothing():
    bad = {"accountEmails": {"security": "not-an-email", "build": "aws+build@example.com",
                             "dev": "aws+build@example.com", "staging": "x@example.com"},
           "prodEnvs": ["production"], "trailLogRetentionDays": 42, "logArchiveReady": "yes", "colour": "blue"}
    run = run_stack("org", overrides={"bakehouse:org": bad}, raise_errors=False)
    assert isinstance(run.error, ConfigError)
    message = str(run.error)
    for expected in ("bakehouse:org.accountEmails.security is 'not-an-email'", "bakehouse:org.accountEmails.uat",
                     "bakehouse:org.accountEmails.staging", "a distinct email per account",
                     "bakehouse:org.prodEnvs", "bakehouse:org.trailLogRetentionDays is 42",
                     "bakehouse:org.logArchiveReady", "bakehouse:org.colour"):
        assert expected in message, expected
    assert message.startswith("stack org has ")
    assert [r for r in run.resources if not r.is_provider] == []
