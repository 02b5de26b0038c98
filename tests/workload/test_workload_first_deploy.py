"""A workload stack as a first `pulumi up` meets AWS: every resource in a region the region SCP
allows, the Auto Scaling role admitted by every key an app launch uses, and the catalog's launch role
able to read its template where Service Catalog keeps it and to attach encrypted volumes."""

from __future__ import annotations

import json

import pytest

from components.build.factory_keys import AUTOSCALING_GRANT_OPERATIONS
from estate.config import ConfigError
from tests.iam.evaluate import allowed
from tools.mockrun import StackRun, cached_run

ENVS = ("dev", "uat", "prod")
ACCOUNTS = {"dev": "444444444444", "uat": "555555555555", "prod": "666666666666"}
BUILD, ORG, HOME = "333333333333", "o-exampleorg01", "eu-west-1"
EU_ONLY = ["eu-west-1", "eu-central-1"]
IMAGE_KEYS = {
    "eu-west-1": "arn:aws:kms:eu-west-1:333333333333:key/0f0e0d0c-1111-4aaa-8bbb-000000000001",
    "eu-central-1": "arn:aws:kms:eu-central-1:333333333333:key/0f0e0d0c-2222-4aaa-8bbb-000000000002",
}


def slr(account: str) -> str:
    return f"arn:aws:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"


def _workload_section(stack: str, **changes) -> dict:
    import yaml

    from tools.mockrun import PROJECT_DIR

    section = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]["bakehouse:workload"]
    return {**section, **changes}


def regions_of(run: StackRun) -> dict[str, str]:
    """Where each custom resource lands: its own `region` input, else its provider's region (the
    stack's account provider when it inherits one)."""
    providers = {r.name: r.inputs.get("region") for r in run.resources if r.is_provider}
    return {
        r.name: r.inputs.get("region") or providers[r.provider_name or f"{run.stack}-account"]
        for r in run.resources
        if r.custom and not r.is_provider
    }


# --- item 8: every resource in an allowed region, or the config refused -----------------------------
@pytest.mark.parametrize("stack", ENVS)
def test_with_us_east_1_outside_allowed_regions_nothing_lands_there(stack):
    run = cached_run(
        stack,
        overrides={"bakehouse:allowedRegions": EU_ONLY, "bakehouse:workload": _workload_section(stack, imageKeys=IMAGE_KEYS)},
    )
    outside = {name: region for name, region in regions_of(run).items() if region not in EU_ONLY}
    assert outside == {}
    assert not [r for r in run.resources if r.is_provider and r.inputs.get("region") not in EU_ONLY]
    # the home-region alarm stays; the organization trail's alarm covers the global endpoint then
    assert regions_of(run)[f"{stack}-break-glass-used"] == HOME


def test_with_us_east_1_allowed_the_global_endpoint_forwarder_is_there_and_every_region_is_allowed(stack_run):
    run = stack_run("prod")
    assert set(regions_of(run).values()) <= {"eu-west-1", "eu-central-1", "us-east-1"}
    assert run.named("prod-break-glass-used-global-endpoint").provider_name == "prod-us-east-1"


def test_an_image_key_in_a_region_outside_allowed_regions_is_refused_naming_key_value_and_allowed():
    with pytest.raises(ConfigError) as err:
        cached_run(
            "dev",
            overrides={
                "bakehouse:allowedRegions": EU_ONLY,
                "bakehouse:workload": _workload_section(
                    "dev", imageKeys={**IMAGE_KEYS, "us-east-1": IMAGE_KEYS["eu-west-1"].replace("eu-west-1", "us-east-1")}
                ),
            },
        )
    [problem] = err.value.problems
    assert problem.startswith("stack dev: Pulumi.dev.yaml: bakehouse:workload.imageKeys.us-east-1 is 'arn:aws:kms:us-east-1:")
    assert "allowed: regions of bakehouse:allowedRegions: eu-west-1, eu-central-1" in problem


@pytest.mark.parametrize(
    "image_keys, key, allowed_text",
    [
        (None, "bakehouse:workload.imageKeys is missing", "an object of region -> key ARN"),
        (
            {"eu-central-1": IMAGE_KEYS["eu-central-1"]},
            "bakehouse:workload.imageKeys.eu-west-1 is missing",
            "the home region's image key",
        ),
        (
            {"eu-west-1": "arn:aws:kms:eu-west-1:333333333333:alias/bakehouse-factory"},
            "bakehouse:workload.imageKeys.eu-west-1 is 'arn:aws:kms:eu-west-1:333333333333:alias/bakehouse-factory'",
            "a key ARN arn:aws:kms:eu-west-1:333333333333:key/<key id> (not an alias)",
        ),
        (
            {"eu-west-1": IMAGE_KEYS["eu-west-1"].replace("333333333333", "999999999999")},
            "bakehouse:workload.imageKeys.eu-west-1 is 'arn:aws:kms:eu-west-1:999999999999:",
            "arn:aws:kms:eu-west-1:333333333333",
        ),
        (
            {"eu-west-1": IMAGE_KEYS["eu-central-1"]},
            "bakehouse:workload.imageKeys.eu-west-1 is 'arn:aws:kms:eu-central-1",
            "arn:aws:kms:eu-west-1:333333333333:key/",
        ),
    ],
)
def test_image_keys_must_be_build_key_arns_of_their_region_including_home(image_keys, key, allowed_text):
    section = _workload_section("dev", imageKeys=image_keys)
    if image_keys is None:
        del section["imageKeys"]
    with pytest.raises(ConfigError) as err:
        cached_run("dev", overrides={"bakehouse:workload": section})
    [problem] = err.value.problems
    assert problem.startswith(f"stack dev: Pulumi.dev.yaml: {key}") and allowed_text in problem, problem


# --- item 11: the Auto Scaling role, named by the account key and granted the image keys ------------
def _key_statements_for(policy: str, principal: str) -> dict:
    stmts = [
        s
        for s in json.loads(policy)["Statement"]
        if principal in (lambda p: p if isinstance(p, list) else [p])((s.get("Principal") or {}).get("AWS"))
    ]
    return {"Version": "2012-10-17", "Statement": stmts}


@pytest.mark.parametrize("env", ENVS)
def test_account_key_admits_the_autoscaling_role_for_ebs_and_grants_only_for_aws_resources(env, stack_run):
    run = stack_run(env)
    role = slr(ACCOUNTS[env])
    [key] = [k for k in run.of_type("aws:kms/key:Key") if k.name == f"{env}-key-key"]
    mine = _key_statements_for(key.inputs["policy"], role)
    for action in ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"):
        assert allowed(mine, action, "*"), action
    assert allowed(mine, "kms:CreateGrant", "*", {"kms:GrantIsForAWSResource": "true"})
    assert not allowed(mine, "kms:CreateGrant", "*", {"kms:GrantIsForAWSResource": "false"})
    assert not allowed(mine, "kms:ScheduleKeyDeletion", "*")


@pytest.mark.parametrize("env", ENVS)
def test_the_autoscaling_role_exists_before_the_key_policy_names_it(env, stack_run):
    run = stack_run(env)
    [role] = [
        r
        for r in run.of_type("aws:iam/serviceLinkedRole:ServiceLinkedRole")
        if r.inputs["awsServiceName"] == "autoscaling.amazonaws.com"
    ]
    [key] = [k for k in run.of_type("aws:kms/key:Key") if k.name == f"{env}-key-key"]
    assert role.urn in key.property_dependencies.get("policy", ())


@pytest.mark.parametrize("env", ENVS)
def test_each_image_key_grants_the_autoscaling_role_from_this_account_in_the_keys_region(env, stack_run):
    run = stack_run(env)
    regions = regions_of(run)
    grants = {g.inputs["keyId"]: g for g in run.of_type("aws:kms/grant:Grant")}
    configured = _workload_section(env)["imageKeys"]
    assert set(grants) == set(configured.values())
    for region, key_arn in configured.items():
        grant = grants[key_arn]
        assert regions[grant.name] == region  # CreateGrant is made in the key's region
        assert grant.inputs["granteePrincipal"] == slr(ACCOUNTS[env])
        assert sorted(grant.inputs["operations"]) == sorted(AUTOSCALING_GRANT_OPERATIONS)


def test_the_build_image_key_policies_admit_exactly_the_grant_each_workload_makes(stack_run):
    build = stack_run("build")
    policies = [
        k.inputs["policy"] for k in build.of_type("aws:kms/key:Key") if "WorkloadAutoScalingRoleGrants" in k.inputs["policy"]
    ]
    assert policies
    for env, account in ACCOUNTS.items():
        [grant, *_] = stack_run(env).of_type("aws:kms/grant:Grant")
        context = {
            "aws:PrincipalAccount": account,
            "aws:PrincipalOrgID": ORG,
            "kms:GranteePrincipal": grant.inputs["granteePrincipal"],
            "kms:GrantOperations": grant.inputs["operations"],
        }
        for policy in policies:
            assert allowed(policy, "kms:CreateGrant", "*", context), env


# --- items 10 and 12: the catalog launch role -------------------------------------------------------
def _launch_policy(run) -> str:
    [policy] = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith("catalog-access-launch-policy")]
    return policy.inputs["policy"]


def test_launch_role_reads_the_template_only_where_service_catalog_tags_it(stack_run):
    policy = _launch_policy(stack_run("dev"))
    service_owned = "arn:aws:s3:::cf-templates-sc-abc-eu-west-1/2026/template.yaml"
    assert allowed(policy, "s3:GetObject", service_owned, {"s3:ExistingObjectTag/servicecatalog:provisioning": "true"})
    assert not allowed(policy, "s3:GetObject", service_owned)
    assert not allowed(policy, "s3:GetObject", f"arn:aws:s3:::bakehouse-scripts-{BUILD}-{HOME}/catalog/x.yaml")


def test_launch_role_may_let_ebs_use_the_image_and_volume_keys_only_through_ec2(stack_run):
    run = stack_run("dev")
    policy = _launch_policy(run)
    keys = [run.exports["kmsKeyArn"], IMAGE_KEYS["eu-west-1"]]
    via_ec2 = {"kms:ViaService": f"ec2.{HOME}.amazonaws.com"}
    for key in keys:
        assert allowed(policy, "kms:CreateGrant", key, {**via_ec2, "kms:GrantIsForAWSResource": "true"}), key
        assert allowed(policy, "kms:Decrypt", key, via_ec2) and allowed(policy, "kms:DescribeKey", key, via_ec2)
        assert not allowed(policy, "kms:CreateGrant", key, {**via_ec2, "kms:GrantIsForAWSResource": "false"})
        assert not allowed(policy, "kms:Decrypt", key, {"kms:ViaService": f"s3.{HOME}.amazonaws.com"})
    assert not allowed(
        policy,
        "kms:CreateGrant",
        "arn:aws:kms:eu-west-1:333333333333:key/another",
        {**via_ec2, "kms:GrantIsForAWSResource": "true"},
    )


def test_launch_role_may_create_only_the_autoscaling_service_linked_role(stack_run):
    policy = _launch_policy(stack_run("dev"))
    role = slr(ACCOUNTS["dev"])
    assert allowed(policy, "iam:CreateServiceLinkedRole", role, {"iam:AWSServiceName": "autoscaling.amazonaws.com"})
    assert not allowed(policy, "iam:CreateServiceLinkedRole", role, {"iam:AWSServiceName": "ec2.amazonaws.com"})
    assert not allowed(
        policy,
        "iam:CreateServiceLinkedRole",
        "arn:aws:iam::444444444444:role/aws-service-role/ssm.amazonaws.com/AWSServiceRoleForSSM",
        {"iam:AWSServiceName": "ssm.amazonaws.com"},
    )
