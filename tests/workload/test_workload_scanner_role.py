"""The workload account's BakehouseImageScanner role, judged by the estate's one IAM evaluator: what
the rescan does in a workload account (read AMIs in use and Inspector's findings on them; on a
quarantine move /bakehouse/<env>/ami/* and tag the account's view of the image) and nothing more."""

from __future__ import annotations

import pytest

from components.lib.iam import VERSION
from components.workload.factory_access import FactoryAccessArgs, scanner_statements
from tests.iam.evaluate import allowed

PROD = "666666666666"
ARGS = FactoryAccessArgs(
    env="prod",
    account_id=PROD,
    region="eu-west-1",
    build_account_id="333333333333",
    organization_id="o-abcdef1234",
    regions=("eu-central-1",),
)
POLICY = {"Version": VERSION, "Statement": scanner_statements(ARGS)}
IMAGE = "arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0"
PARAMETER = f"arn:aws:ssm:eu-west-1:{PROD}:parameter/bakehouse/prod/ami/al2023"
IN_REGION = {"aws:RequestedRegion": "eu-west-1"}


@pytest.mark.parametrize("action", ["inspector2:ListFindings", "inspector2:ListCoverage"])
def test_scanner_reads_its_own_accounts_inspector_findings_and_coverage(action):
    # Neither action takes a resource type (service authorization reference, Amazon Inspector).
    assert allowed(POLICY, action, "*", IN_REGION)


@pytest.mark.parametrize("action", ["ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter"])
def test_scanner_moves_the_envs_ami_parameters_on_quarantine(action):
    assert allowed(POLICY, action, PARAMETER)
    assert not allowed(POLICY, action, f"arn:aws:ssm:eu-west-1:{PROD}:parameter/bakehouse/prod/app/db-password")


def test_scanner_tags_images_only_with_the_quarantined_tag():
    quarantine = {"aws:TagKeys": ["bakehouse:quarantined"], "aws:RequestTag/bakehouse:quarantined": "true"}
    assert allowed(POLICY, "ec2:CreateTags", IMAGE, quarantine)
    assert not allowed(
        POLICY, "ec2:CreateTags", IMAGE, {"aws:TagKeys": ["bakehouse:approved"], "aws:RequestTag/bakehouse:approved": "true"}
    )
    assert not allowed(
        POLICY,
        "ec2:CreateTags",
        IMAGE,
        {
            "aws:TagKeys": ["bakehouse:quarantined", "Name"],
            "aws:RequestTag/bakehouse:quarantined": "true",
            "aws:RequestTag/Name": "x",
        },
    )
    # Un-quarantining is not the rescan's business.
    assert not allowed(
        POLICY,
        "ec2:CreateTags",
        IMAGE,
        {"aws:TagKeys": ["bakehouse:quarantined"], "aws:RequestTag/bakehouse:quarantined": "false"},
    )
    assert not allowed(POLICY, "ec2:DeleteTags", IMAGE, {"aws:TagKeys": ["bakehouse:quarantined"]})
    assert not allowed(POLICY, "ec2:CreateTags", f"arn:aws:ec2:eu-west-1:{PROD}:instance/i-0123456789abcdef0", quarantine)


def test_the_build_accounts_lifecycle_function_may_read_the_envs_pins_through_the_scanner_but_not_publish():
    from components.workload.factory_access import factory_trust, scanner_trust

    lifecycle = "arn:aws:iam::333333333333:role/BakehouseImageLifecycle"
    automation = "arn:aws:iam::333333333333:role/BakehouseFactoryAutomation"
    in_org = {"aws:PrincipalOrgID": "o-abcdef1234"}
    role = f"arn:aws:iam::{PROD}:role/BakehouseImageScanner"
    scanner = {"Version": VERSION, "Statement": [scanner_trust(ARGS)]}
    publisher = {"Version": VERSION, "Statement": [factory_trust(ARGS)]}
    assert allowed(scanner, "sts:AssumeRole", role, in_org, principal=lifecycle)
    assert allowed(scanner, "sts:AssumeRole", role, in_org, principal=automation)
    assert not allowed(publisher, "sts:AssumeRole", role, in_org, principal=lifecycle)
    assert not allowed(scanner, "sts:AssumeRole", role, {"aws:PrincipalOrgID": "o-other00000"}, principal=lifecycle)
