"""SCP fit: every create call each stack's `pulumi up` makes, and every API call the automation documents
and handlers make, evaluated (tests/iam/evaluate.py) against the SCP chain of the account it runs in,
as the principal that makes it. Nothing the estate needs may be denied; the attack cases still are.

Known findings are listed exactly, with the file that owns the fix: one that disappears, or a new one,
fails the test."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.build.factory_roles import LIFECYCLE_ROLE
from estate.naming import FACTORY_AUTOMATION_ROLE, READ_ONLY_ROLE
from tests.iam import scp_fit
from tests.iam.scp_fit import Request, judge
from tools.mockrun import STACKS

# (origin, action) -> the file whose change removes the denial.
KNOWN_STACK_FINDINGS: dict[tuple[str, str], str] = {}
# Build and validation launch through aws:executeAwsApi RunInstances with MetadataOptions (issue 11.7):
# aws:runInstances documents no MetadataOptions input, so the root SCP would deny it.
KNOWN_RUNTIME_FINDINGS: dict[tuple[str, str], str] = {}


def _denied(requests: list[Request]) -> dict[tuple[str, str], str]:
    return {
        (r.origin, r.action): f"{result} by {', '.join(sids) or 'no Allow'} as {r.principal} in {r.region}"
        for r, result, sids in judge(requests)
        if result != "Allowed"
    }


@pytest.fixture(scope="module")
def stack_requests() -> dict[str, list[Request]]:
    return {stack: scp_fit.stack_requests(stack) for stack in STACKS}


@pytest.fixture(scope="module")
def runtime_requests() -> list[Request]:
    return scp_fit.runtime_requests()


# --- the tables cannot drift -------------------------------------------------------------------------


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_every_create_action_the_stacks_need_exists_in_aws_authorization_data(stack_requests):
    unknown = sorted(
        {(r.origin.split(":")[0], r.action) for rs in stack_requests.values() for r in rs if not scp_fit.action_exists(r.action)}
    )
    assert not unknown, f"derived create actions that IAM does not define (add an override): {unknown}"


def test_every_create_override_names_actions_that_exist():
    unknown = sorted(a for actions in scp_fit.CREATE_OVERRIDES.values() for a in actions if not scp_fit.action_exists(a))
    assert not unknown


def test_create_actions_follow_the_type_token_unless_overridden(stack_run):
    run = stack_run("build")
    vpc = run.of_type("aws:ec2/vpc:Vpc")[0]
    role = run.of_type("aws:iam/role:Role")[0]
    assert scp_fit.create_actions(vpc) == ("ec2:CreateVpc",)
    assert scp_fit.create_actions(role) == ("iam:CreateRole",)
    policy = run.of_type("aws:s3/bucketPolicy:BucketPolicy")[0]
    assert scp_fit.create_actions(policy) == ("s3:PutBucketPolicy",)


def test_every_stack_creates_through_the_deploy_role_of_its_account(stack_requests):
    for stack in STACKS:
        if stack == "org":
            continue
        run = scp_fit.shaped_run(stack)
        home = scp_fit.provider_scopes(run)[scp_fit.home_provider(run)]
        assert home.role == f"arn:aws:iam::{home.account}:role/BakehouseDeploy", (stack, home)
        assert home.account != scp_fit.accounts()["management"], f"{stack} would escape the SCPs"


def test_every_handler_module_is_run_by_a_document_or_a_function():
    modules = {p.stem for p in scp_fit.HANDLERS_DIR.glob("*.py")} - {"__init__", "common"}
    assert modules - scp_fit.handler_runners() == set(), "who runs these handlers, where, as whom?"


def test_the_lifecycle_function_runs_as_its_own_role_in_the_build_account():
    assert scp_fit.lambda_runners()["lifecycle"] == (scp_fit.accounts()["build"], LIFECYCLE_ROLE)


def test_handler_calls_name_operations_botocore_defines():
    problems = [p for m in sorted(scp_fit.handler_runners()) for p in scp_fit.handler_calls(m)[1]]
    assert not problems


def test_the_handlers_calls_are_read_from_the_code():
    actions = {c.action for c in scp_fit.handler_calls("isolate")[0]}
    assert {"ec2:ModifyInstanceAttribute", "ec2:CreateSnapshot", "autoscaling:DetachInstances"} <= actions
    launches = [c for c in scp_fit.handler_calls("rescan")[0] if c.action == "ec2:RunInstances"]
    assert launches and all(dict(c.context) == {"ec2:MetadataHttpTokens": "required"} for c in launches)


def test_every_runtime_action_exists_in_aws_authorization_data(runtime_requests):
    unknown = sorted({(r.origin, r.action) for r in runtime_requests if not scp_fit.action_exists(r.action)})
    assert not unknown, f"map the operation to its IAM action in scp_fit.API_TO_IAM: {unknown}"


# --- nothing the estate needs is denied ---------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_no_create_call_of_the_stack_is_denied_by_its_accounts_scps(stack, stack_requests):
    denied = _denied(stack_requests[stack])
    known = {k: v for k, v in KNOWN_STACK_FINDINGS.items() if k[0].startswith(f"{stack}:")}
    assert set(denied) == set(known), f"denied: {denied}; known: {known}"


@pytest.mark.slow  # every runtime request through the evaluator (2 s): make test-slow and CI
def test_no_document_or_handler_call_is_denied_where_it_runs(runtime_requests):
    denied = _denied(runtime_requests)
    assert set(denied) == set(KNOWN_RUNTIME_FINDINGS), f"denied: {denied}"


def test_the_management_account_is_judged_without_scps(stack_requests):
    # Organizations User Guide, "Service control policies": SCPs do not affect the management account.
    management = [r for r in stack_requests["org"] if r.account == scp_fit.accounts()["management"]]
    assert management and not any(r.subject_to_scps for r in management)
    members = [r for r in stack_requests["org"] if r.account != scp_fit.accounts()["management"]]
    assert members and all(r.subject_to_scps and r.principal.endswith(":role/OrganizationAccountAccessRole") for r in members)


# --- the attack cases stay denied ---------------------------------------------------------------------


def _one(requests: list[Request]) -> tuple[str, tuple[str, ...]]:
    ((_, result, sids),) = judge(requests)
    return result, sids


def test_a_non_deploy_role_cannot_stop_the_organization_trail():
    security = scp_fit.accounts()["security"]
    stop = Request(
        "attack",
        "cloudtrail:StopLogging",
        f"arn:aws:iam::{security}:role/{READ_ONLY_ROLE}",
        security,
        "eu-west-1",
        f"arn:aws:cloudtrail:eu-west-1:{security}:trail/bakehouse-organization",
    )
    assert _one([stop]) == ("ExplicitlyDenied", ("DenySecurityServiceTampering",))


@pytest.mark.parametrize("stack", [s for s in STACKS if s != "org"])
def test_the_stacks_creates_are_denied_outside_allowed_regions(stack, stack_requests):
    # IAM, KMS, Config and account-level S3 settings are exempt from the region SCP by design.
    regional = [
        r
        for r in stack_requests[stack]
        if r.action.split(":")[0] not in scp_fit.GLOBAL_SERVICES | {"kms", "config"}
        and not r.action.startswith("s3:PutAccountPublic")
    ]
    assert regional
    moved = [replace(r, region="ap-southeast-2") for r in regional[:5]]
    assert "ap-southeast-2" not in scp_fit.allowed_regions()
    for _, result, sids in judge(moved):
        assert (result, sids) == ("ExplicitlyDenied", ("DenyOutsideAllowedRegions",))


def test_the_factorys_launches_without_imdsv2_are_denied(runtime_requests):
    launches = [
        r for r in runtime_requests if r.action == "ec2:RunInstances" and r.context.get("ec2:MetadataHttpTokens") == "required"
    ]
    assert launches
    for launch in launches[:1]:
        assert _one([launch])[0] == "Allowed"
        for tokens in ({}, {"ec2:MetadataHttpTokens": "optional"}):
            assert _one([replace(launch, context=tokens)]) == ("ExplicitlyDenied", ("DenyInstancesWithoutImdsv2",))


def test_the_factory_role_cannot_rewrite_the_deploy_roles_policy():
    build = scp_fit.accounts()["build"]
    tamper = Request(
        "attack",
        "iam:PutRolePolicy",
        f"arn:aws:iam::{build}:role/{FACTORY_AUTOMATION_ROLE}",
        build,
        "eu-west-1",
        f"arn:aws:iam::{build}:role/BakehouseDeploy",
    )
    assert _one([tamper]) == ("ExplicitlyDenied", ("DenyChangingTheRolesTheEstateIsEnteredThrough",))
