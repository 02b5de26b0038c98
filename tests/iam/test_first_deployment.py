"""First-deployment rehearsal: the stacks in deploy order (tools.mockrun.STACKS) from an empty
organization, checked against the prerequisites AWS documents for the services they use. Each check
is data-driven from the mock runs; the comment above it names the AWS page it relies on."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.iam.first_deployment import (
    CREATED_BY_ORGANIZATIONS,
    Rehearsed,
    bootstrap_roles,
    member_account_id,
    rehearse,
    role_arn_of,
)
from tests.iam.scp_fit import accounts, allowed_regions
from tools.mockrun import STACKS, Declared

ORG_TYPE = "aws:organizations/organization:Organization"
DELEGATED = "aws:organizations/delegatedAdministrator:DelegatedAdministrator"
# (stack, resource name) -> the file whose change removes the finding.
KNOWN_FINDINGS: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def stacks() -> list[Rehearsed]:
    return rehearse()


def _each(stacks: list[Rehearsed], type_token: str) -> Iterator[tuple[int, Rehearsed, Declared]]:
    for index, stack in enumerate(stacks):
        for resource in stack.run.of_type(type_token):
            yield index, stack, resource


def _trusted_access(stacks: list[Rehearsed], before: int) -> set[str]:
    """Service principals with trusted access, as the stacks before `before` leave the organization."""
    enabled: set[str] = set()
    for _, _, org in _each(stacks[:before], ORG_TYPE):
        enabled |= set(org.inputs.get("awsServiceAccessPrincipals") or [])
    for _, _, access in _each(stacks[:before], "aws:servicecatalog/organizationsAccess:OrganizationsAccess"):
        # EnableAWSOrganizationsAccess calls organizations:EnableAWSServiceAccess for Service Catalog.
        if access.inputs.get("enabled"):
            enabled.add("servicecatalog.amazonaws.com")
    return enabled


def _delegated(stacks: list[Rehearsed], before: int) -> set[tuple[str, str, str | None]]:
    """(service principal, account id, region or None for organization-wide) delegated before `before`."""
    found: set[tuple[str, str, str | None]] = set()
    for _, _, d in _each(stacks[:before], DELEGATED):
        found.add((d.inputs["servicePrincipal"], member_account_id(d.inputs["accountId"]), None))
    for token, principal, key in (
        ("aws:guardduty/organizationAdminAccount:OrganizationAdminAccount", "guardduty.amazonaws.com", "adminAccountId"),
        ("aws:securityhub/organizationAdminAccount:OrganizationAdminAccount", "securityhub.amazonaws.com", "adminAccountId"),
        ("aws:inspector2/delegatedAdminAccount:DelegatedAdminAccount", "inspector2.amazonaws.com", "accountId"),
    ):
        for _, stack, r in _each(stacks[:before], token):
            scope = stack.scope(r)
            found.add((principal, member_account_id(r.inputs[key]), scope.region if scope else None))
    return found


def _organization_features(stack: Rehearsed) -> Iterator[tuple[Declared, str, bool]]:
    """(resource, service principal, per region?) for each organization-level feature a stack uses."""
    per_region = {
        "aws:guardduty/organizationConfiguration:OrganizationConfiguration": "guardduty.amazonaws.com",
        "aws:guardduty/organizationConfigurationFeature:OrganizationConfigurationFeature": "guardduty.amazonaws.com",
        "aws:inspector2/organizationConfiguration:OrganizationConfiguration": "inspector2.amazonaws.com",
    }
    home_region = {
        "aws:securityhub/organizationConfiguration:OrganizationConfiguration": "securityhub.amazonaws.com",
        "aws:securityhub/configurationPolicy:ConfigurationPolicy": "securityhub.amazonaws.com",
        "aws:securityhub/configurationPolicyAssociation:ConfigurationPolicyAssociation": "securityhub.amazonaws.com",
        "aws:cfg/organizationConformancePack:OrganizationConformancePack": "config-multiaccountsetup.amazonaws.com",
        "aws:cfg/organizationManagedRule:OrganizationManagedRule": "config-multiaccountsetup.amazonaws.com",
    }
    for r in stack.custom():
        if r.type in per_region:
            yield r, per_region[r.type], True
        elif r.type in home_region:
            yield r, home_region[r.type], False
        elif r.type == "aws:cfg/configurationAggregator:ConfigurationAggregator" and r.inputs.get(
            "organizationAggregationSource"
        ):
            yield r, "config.amazonaws.com", False
        elif r.type == "aws:servicecatalog/portfolioShare:PortfolioShare" and str(r.inputs.get("type", "")).startswith(
            "ORGANIZATION"
        ):
            yield r, "servicecatalog.amazonaws.com", False
        elif r.type == "aws:accessanalyzer/analyzer:Analyzer" and str(r.inputs.get("type", "")).startswith("ORGANIZATION"):
            yield r, "access-analyzer.amazonaws.com", False
        elif r.type == "aws:cloudtrail/trail:Trail" and r.inputs.get("isOrganizationTrail"):
            yield r, "cloudtrail.amazonaws.com", False


# Organizations User Guide, "Using AWS Organizations with other AWS services": a service acts on the
# organization only once trusted access is enabled for it, and a member account administers it only
# as its registered delegated administrator (GuardDuty/Security Hub/Inspector: EnableOrganizationAdminAccount
# / EnableDelegatedAdminAccount, per Region for GuardDuty and Inspector). Service Catalog API Reference,
# "EnableAWSOrganizationsAccess": only the management account can enable portfolio sharing through Organizations.
def organization_feature_problems(stacks: list[Rehearsed]) -> list[str]:
    management = accounts()["management"]
    problems = []
    for index, stack in enumerate(stacks):
        trusted, delegated = _trusted_access(stacks, index), _delegated(stacks, index)
        for resource, principal, regional in _organization_features(stack):
            scope = stack.scope(resource)
            assert scope is not None, f"{stack.stack}:{resource.name} names no provider"
            if principal not in trusted:
                problems.append(f"{stack.stack}:{resource.name}: no earlier stack enables trusted access for {principal}")
            if scope.account == management:
                continue
            admins = {(p, a) for p, a, r in delegated if not regional or r in (None, scope.region)}
            if (principal, scope.account) not in admins:
                problems.append(
                    f"{stack.stack}:{resource.name}: account {scope.account} is not {principal}'s delegated "
                    f"administrator{' in ' + scope.region if regional else ''} before this stack"
                )
    return problems


def test_organization_features_are_enabled_and_delegated_in_a_stack_that_runs_before_their_use(stacks):
    problems = organization_feature_problems(stacks)
    assert not problems, "\n".join(problems)


def test_portfolio_shares_to_ous_without_catalog_delegation_are_refused(stacks):
    # Known bad (issue 11.4): the org stack without the build account's Service Catalog delegation.
    org = stacks[0]
    without = [
        r
        for r in org.run.resources
        if not (r.type == DELEGATED and r.inputs["servicePrincipal"] == "servicecatalog.amazonaws.com")
    ]
    doctored = [Rehearsed(org.stack, replace(org.run, resources=without), org.waits_for), *stacks[1:]]
    problems = organization_feature_problems(doctored)
    assert problems and all("servicecatalog.amazonaws.com's delegated administrator" in p for p in problems)
    assert any(p.startswith("build:") for p in problems)


def test_the_rehearsal_sees_the_organization_features_the_estate_uses(stacks):
    used = {principal for stack in stacks for _, principal, _ in _organization_features(stack)}
    assert {
        "guardduty.amazonaws.com",
        "securityhub.amazonaws.com",
        "inspector2.amazonaws.com",
        "servicecatalog.amazonaws.com",
        "cloudtrail.amazonaws.com",
    } <= used


# Organizations API Reference, "RegisterDelegatedAdministrator" and "EnablePolicyType": the service must
# be trusted and the policy type enabled in the root before an account is delegated or a policy attached.
def test_delegations_and_policy_attachments_wait_for_the_organization_that_enables_them(stacks):
    org_stack = stacks[0]
    (org,) = org_stack.run.of_type(ORG_TYPE)
    trusted = _trusted_access(stacks, 1)
    enabled_types = set(org.inputs.get("enabledPolicyTypes") or [])
    policies = {f"{p.name}-id": p for p in org_stack.run.of_type("aws:organizations/policy:Policy")}
    problems = []
    for d in org_stack.run.of_type(DELEGATED):
        if d.inputs["servicePrincipal"] not in trusted:
            problems.append(f"{d.name}: {d.inputs['servicePrincipal']} has no trusted access")
        enabler = [
            r.urn
            for r in org_stack.run.resources
            if r.type == ORG_TYPE
            or (
                r.type.endswith("organizationsAccess:OrganizationsAccess")
                and d.inputs["servicePrincipal"] == "servicecatalog.amazonaws.com"
            )
        ]
        if not set(enabler) & org_stack.closure(d.urn):
            problems.append(f"{d.name} does not wait for the trusted access it needs")
    for a in org_stack.run.of_type("aws:organizations/policyAttachment:PolicyAttachment"):
        policy = policies[a.inputs["policyId"]]
        if policy.inputs["type"] not in enabled_types:
            problems.append(f"{a.name}: policy type {policy.inputs['type']} is not enabled in the root")
        if org.urn not in org_stack.closure(a.urn):
            problems.append(f"{a.name} does not wait for the organization that enables {policy.inputs['type']}")
    assert not problems, "\n".join(problems)


# AWS Config Developer Guide, "Prerequisites for conformance packs": recording is on before a pack is
# deployed; Config API Reference, "StartConfigurationRecorder": a delivery channel must exist first.
def test_every_conformance_pack_waits_for_a_recording_recorder_in_its_account_and_region(stacks):
    problems = []
    packs = 0
    for stack in stacks:
        for pack in stack.run.of_type("aws:cfg/conformancePack:ConformancePack"):
            packs += 1
            where = stack.scope(pack)
            waits = stack.closure(pack.urn)
            started = [
                s
                for s in stack.run.of_type("aws:cfg/recorderStatus:RecorderStatus")
                if s.urn in waits and s.inputs.get("isEnabled") and stack.scope(s) == where
            ]
            recorders = [r for r in stack.run.of_type("aws:cfg/recorder:Recorder") if r.urn in waits and stack.scope(r) == where]
            if not started or not recorders:
                problems.append(f"{stack.stack}:{pack.name} ({where}) does not wait for a started recorder there")
            for status in started:
                channels = [
                    c
                    for c in stack.run.of_type("aws:cfg/deliveryChannel:DeliveryChannel")
                    if c.urn in stack.closure(status.urn) and stack.scope(c) == where
                ]
                if not channels:
                    problems.append(f"{stack.stack}:{status.name} starts recording before a delivery channel exists")
    assert packs, "the rehearsal found no conformance pack"
    assert not problems, "\n".join(problems)


# Issue 11.2: every account records, in every allowed Region (the organization's Config rules and the
# aggregator see nothing from an account that does not).
def test_every_account_records_in_every_allowed_region(stacks):
    recording = {
        (s.scope(r).account, s.scope(r).region)
        for s in stacks
        for r in s.run.of_type("aws:cfg/recorderStatus:RecorderStatus")
        if r.inputs.get("isEnabled")
    }
    missing = sorted(
        {
            (key, region)
            for key, account in accounts().items()
            for region in allowed_regions()
            if (account, region) not in recording
        }
    )
    assert not missing


# AWS Config Developer Guide, "Prerequisites for conformance packs" (organization packs deploy into every
# member account, each of which must already record): no stack that declares a recorder runs after one.
def test_organization_conformance_packs_come_after_every_accounts_recorder(stacks):
    last_recorder = max(i for i, _, _ in _each(stacks, "aws:cfg/recorderStatus:RecorderStatus"))
    early = [
        (s.stack, p.name)
        for i, s, p in _each(stacks, "aws:cfg/organizationConformancePack:OrganizationConformancePack")
        if i < last_recorder
    ]
    assert not early


# GuardDuty User Guide, "Managing GuardDuty accounts with AWS Organizations": designating the delegated
# administrator enables GuardDuty (its detector) there in that Region, and auto-enable creates members'
# detectors; a second CreateDetector fails ("The request is rejected because a detector already exists").
def test_no_stack_creates_a_guardduty_detector_that_delegation_or_auto_enable_already_made(stacks):
    made_by_aws = {
        (account, region)
        for principal, account, region in _delegated(stacks, len(stacks))
        if principal == "guardduty.amazonaws.com"
    }
    for _, stack, config in _each(stacks, "aws:guardduty/organizationConfiguration:OrganizationConfiguration"):
        if config.inputs.get("autoEnableOrganizationMembers") in ("ALL", "NEW") or config.inputs.get("autoEnable"):
            made_by_aws |= {(a, stack.scope(config).region) for a in accounts().values()}
    assert made_by_aws
    created = [
        (s.stack, d.name)
        for _, s, d in _each(stacks, "aws:guardduty/detector:Detector")
        if (s.scope(d).account, s.scope(d).region) in made_by_aws
    ]
    assert not created


# Lambda Developer Guide, "Configuring reserved concurrency for a function": an account keeps at least
# 100 unreserved; a new account's concurrency quota can be lower than that, leaving nothing to reserve.
def test_no_lambda_function_reserves_concurrency(stacks):
    reserving = [
        (s.stack, f.name, f.inputs["reservedConcurrentExecutions"])
        for _, s, f in _each(stacks, "aws:lambda/function:Function")
        if f.inputs.get("reservedConcurrentExecutions") not in (None, -1)
    ]
    assert not reserving


# Organizations User Guide, "Accessing a member account that has a management account access role":
# CreateAccount makes OrganizationAccountAccessRole in the new account. Every other role a provider
# assumes must exist before the stack runs: declared by an earlier stack or the bootstrap template.
def test_every_provider_assumes_a_role_that_exists_before_its_stack_runs(stacks):
    bootstrap = {f"arn:aws:iam::{accounts()['management']}:role/{n}" for names in bootstrap_roles().values() for n in names}
    assert bootstrap, "bootstrap/ declares no role"
    declared: set[str] = set(bootstrap)
    created_accounts: set[str] = set()
    problems = []
    for stack in stacks:
        created_accounts |= {
            accounts()[a.inputs["tags"]["bakehouse:account"]] for a in stack.run.of_type("aws:organizations/account:Account")
        }
        for name, scope in stack.scopes.items():
            if scope.role is None:
                problems.append(f"{stack.stack}: provider {name} assumes no role (ambient credentials)")
            elif scope.role not in declared and not (
                scope.role.endswith(f":role/{CREATED_BY_ORGANIZATIONS}") and scope.account in created_accounts
            ):
                problems.append(f"{stack.stack}: provider {name} assumes {scope.role}, which no earlier stack declares")
        declared |= {role_arn_of(r, stack.scope(r)) for r in stack.run.of_type("aws:iam/role:Role") if stack.scope(r) is not None}
    assert not problems, "\n".join(problems)


# Pulumi: a resource that names no provider (explicitly or through its parent) uses the default
# provider, i.e. whatever credentials and Region the deploying shell has (STYLE.md: never the ambient one).
def test_every_resource_is_created_through_an_explicit_provider(stacks):
    ambient = sorted((s.stack, r.name) for s in stacks for r in s.custom() if r.provider_name is None)
    assert set(ambient) == {k for k in KNOWN_FINDINGS}, ambient[:20]


# Organizations User Guide, "Service control policies": the region SCP denies every regional call
# outside bakehouse:allowedRegions, so a resource there fails to create.
def test_every_resource_lands_in_an_allowed_region(stacks):
    outside = sorted(
        (s.stack, r.name, s.scope(r).region)
        for s in stacks
        for r in s.custom()
        if s.scope(r) is not None and s.scope(r).region not in allowed_regions()
    )
    assert not outside


def test_the_rehearsal_walks_every_stack_in_deploy_order(stacks):
    assert [s.stack for s in stacks] == list(STACKS)
    assert STACKS[0] == "org", "the organization (trusted access, delegation, SCPs) must come first"
