"""The canary env's BakehouseImagePublisher: what handlers/dev_canary.py does there (the candidate
parameter, one launch from the app template, the canary's health, its termination) and nothing more;
other envs' publishers get none of it. Judged by the estate's IAM evaluator and AWS's authorization data."""

from __future__ import annotations

from dataclasses import replace

import pytest

from components.lib.iam import VERSION
from components.workload.factory_access import FactoryAccessArgs, canary_statements, publisher_statements
from tests.iam.authz import check_document
from tests.iam.evaluate import allowed

DEV, BUILD, REGION = "444444444444", "333333333333", "eu-west-1"
TEMPLATE = f"arn:aws:ec2:{REGION}:{DEV}:launch-template/lt-0123456789abcdef0"
OTHER_TEMPLATE = f"arn:aws:ec2:{REGION}:{DEV}:launch-template/lt-0fedcba9876543210"
ARGS = FactoryAccessArgs(
    env="dev",
    account_id=DEV,
    region=REGION,
    build_account_id=BUILD,
    organization_id="o-abcdef1234",
    regions=("eu-central-1",),
    canary_launch_template_arn=TEMPLATE,
)
POLICY = {"Version": VERSION, "Statement": publisher_statements(ARGS)}
INSTANCE = f"arn:aws:ec2:{REGION}:{DEV}:instance/i-0123456789abcdef0"
CANDIDATE = f"arn:aws:ec2:{REGION}::image/ami-0123456789abcdef0"
LAUNCH = {"ec2:LaunchTemplate": TEMPLATE, "aws:RequestedRegion": REGION}
CANARY_TAGS = {"aws:RequestTag/bakehouse:purpose": "dev-canary"}


def test_the_canary_statements_fit_aws_authorization_data():
    assert check_document(POLICY) == []


@pytest.mark.parametrize("action", ["ssm:PutParameter", "ssm:GetParameter", "ssm:DeleteParameter"])
def test_canary_publisher_writes_and_removes_only_the_candidate_parameter(action):
    assert allowed(POLICY, action, f"arn:aws:ssm:{REGION}:{DEV}:parameter/bakehouse/dev/ami-candidate/al2023")
    assert not allowed(POLICY, "ssm:DeleteParameter", f"arn:aws:ssm:{REGION}:{DEV}:parameter/bakehouse/dev/ami/al2023")
    assert not allowed(POLICY, action, f"arn:aws:ssm:{REGION}:{DEV}:parameter/bakehouse/dev/app/db-password")


def test_canary_launches_only_from_the_app_template_tagged_as_a_canary():
    for resource in (
        INSTANCE,
        f"arn:aws:ec2:{REGION}:{DEV}:volume/vol-0123456789abcdef0",
        f"arn:aws:ec2:{REGION}:{DEV}:subnet/subnet-0123456789abcdef0",
        f"arn:aws:ec2:{REGION}:{DEV}:security-group/sg-0123456789abcdef0",
        f"arn:aws:ec2:{REGION}:{DEV}:network-interface/eni-0123456789abcdef0",
        TEMPLATE,
    ):
        assert allowed(POLICY, "ec2:RunInstances", resource, {**LAUNCH, **CANARY_TAGS}), resource
    assert not allowed(POLICY, "ec2:RunInstances", INSTANCE, {**LAUNCH, "ec2:LaunchTemplate": OTHER_TEMPLATE, **CANARY_TAGS})
    assert not allowed(POLICY, "ec2:RunInstances", INSTANCE, {"aws:RequestedRegion": REGION, **CANARY_TAGS})
    assert not allowed(POLICY, "ec2:RunInstances", INSTANCE, LAUNCH)  # untagged: not a canary


def test_canary_runs_only_images_the_build_account_owns():
    assert allowed(POLICY, "ec2:RunInstances", CANDIDATE, {**LAUNCH, "ec2:Owner": BUILD})
    assert not allowed(POLICY, "ec2:RunInstances", CANDIDATE, {**LAUNCH, "ec2:Owner": "amazon"})


def test_canary_tags_only_at_launch_and_terminates_only_canaries():
    assert allowed(POLICY, "ec2:CreateTags", INSTANCE, {"ec2:CreateAction": "RunInstances"})
    assert not allowed(POLICY, "ec2:CreateTags", INSTANCE, {"ec2:CreateAction": "CreateImage"})
    assert not allowed(POLICY, "ec2:CreateTags", INSTANCE)
    assert allowed(POLICY, "ec2:TerminateInstances", INSTANCE, {"ec2:ResourceTag/bakehouse:purpose": "dev-canary"})
    assert not allowed(POLICY, "ec2:TerminateInstances", INSTANCE, {"ec2:ResourceTag/bakehouse:purpose": "app"})
    assert not allowed(POLICY, "ec2:TerminateInstances", INSTANCE)


def test_canary_passes_only_the_envs_app_role_to_ec2():
    app_role = f"arn:aws:iam::{DEV}:role/bakehouse/app/bakehouse-dev-app"
    assert allowed(POLICY, "iam:PassRole", app_role, {"iam:PassedToService": "ec2.amazonaws.com"})
    assert not allowed(POLICY, "iam:PassRole", app_role, {"iam:PassedToService": "lambda.amazonaws.com"})
    assert not allowed(
        POLICY, "iam:PassRole", f"arn:aws:iam::{DEV}:role/BakehouseDeploy", {"iam:PassedToService": "ec2.amazonaws.com"}
    )


@pytest.mark.parametrize(
    "action", ["ec2:DescribeInstanceStatus", "ssm:DescribeInstanceInformation", "ec2:DescribeSubnets", "ec2:DescribeInstances"]
)
def test_canary_reads_health_and_network_in_its_region(action):
    # None of these takes a resource type (service authorization reference, EC2 and Systems Manager).
    assert allowed(POLICY, action, "*", {"aws:RequestedRegion": REGION})
    assert not allowed(POLICY, action, "*", {"aws:RequestedRegion": "ap-south-1"})


def test_canary_volumes_use_keys_only_through_ec2():
    key = f"arn:aws:kms:{REGION}:{BUILD}:key/0f0e0d0c-1111-4aaa-8bbb-000000000001"
    via_ec2 = {"kms:ViaService": f"ec2.{REGION}.amazonaws.com"}
    assert allowed(POLICY, "kms:CreateGrant", key, via_ec2)
    assert not allowed(POLICY, "kms:Decrypt", key)


def test_publishers_of_other_envs_get_no_canary_rights():
    prod = replace(ARGS, env="prod")
    assert canary_statements(prod) == []
    policy = {"Version": VERSION, "Statement": publisher_statements(prod)}
    assert not allowed(policy, "ec2:RunInstances", INSTANCE.replace(DEV, prod.account_id), {**LAUNCH, **CANARY_TAGS})


def test_the_canary_env_follows_the_factory_setting():
    uat = replace(ARGS, env="uat", canary_env="uat")
    assert canary_statements(uat)
    assert canary_statements(replace(ARGS, canary_env="uat")) == []


def test_without_the_app_template_the_canary_env_gets_no_launch_rights():
    assert canary_statements(replace(ARGS, canary_launch_template_arn=None)) == []


def test_the_dev_stack_gives_its_publisher_the_canary_statements_and_prod_does_not(stack_run):
    import json

    def sids(env):
        (policy,) = [
            p
            for p in stack_run(env).of_type("aws:iam/rolePolicy:RolePolicy")
            if p.name == f"{env}-factory-access-publisher-policy"
        ]
        return {s.get("Sid") for s in json.loads(policy.inputs["policy"])["Statement"]}

    assert any("Canary" in (sid or "") for sid in sids("dev"))
    assert not any("Canary" in (sid or "") for sid in sids("prod"))
