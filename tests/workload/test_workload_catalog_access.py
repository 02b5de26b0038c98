"""Workload accounts can launch the factory's catalog product: the launch constraint's local role
exists, trusts only Service Catalog here, and can build the product's stack; app teams provision
through a role that can do nothing else."""

from __future__ import annotations

import json

import pytest

from tests.iam.evaluate import allowed

DEV, BUILD, REGION = "444444444444", "333333333333", "eu-west-1"
ACCOUNTS = {"dev": DEV, "uat": "555555555555", "prod": "666666666666"}


def _role(run, name):
    [role] = [r for r in run.of_type("aws:iam/role:Role") if r.inputs.get("name") == name]
    return role


def _policy(run, suffix):
    [policy] = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith(suffix)]
    return policy.inputs["policy"]


@pytest.mark.parametrize("stack", ["dev", "uat", "prod"])
def test_every_workload_declares_the_launch_role_the_catalog_constraint_names(stack, stack_run):
    build = stack_run("build")
    [launch] = [r for r in build.of_type("aws:servicecatalog/constraint:Constraint") if r.inputs["type"] == "LAUNCH"]
    local_role = json.loads(launch.inputs["parameters"])["LocalRoleName"]
    role = _role(stack_run(stack), local_role)
    [trust] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": "servicecatalog.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNTS[stack]}}


@pytest.mark.parametrize("stack", ["dev", "uat", "prod"])
def test_every_workload_declares_the_deployer_roles_the_portfolio_shares_to(stack, stack_run):
    build = stack_run("build")
    patterns = [
        r.inputs["principalArn"]
        for r in build.of_type("aws:servicecatalog/principalPortfolioAssociation:PrincipalPortfolioAssociation")
    ]
    names = {r.inputs.get("name") for r in stack_run(stack).of_type("aws:iam/role:Role")}
    assert patterns
    for pattern in patterns:
        assert pattern.rsplit("/", 1)[-1] in names, pattern


def test_launch_role_can_build_the_products_stack_and_its_security_group_but_not_pass_other_roles(stack_run):
    policy = _policy(stack_run("dev"), "catalog-access-launch-policy")
    assert allowed(policy, "cloudformation:CreateStack", f"arn:aws:cloudformation:{REGION}:{DEV}:stack/SC-{DEV}-pp-1/x")
    assert allowed(policy, "ec2:CreateSecurityGroup", f"arn:aws:ec2:{REGION}:{DEV}:security-group/sg-1")
    assert allowed(policy, "autoscaling:CreateOrUpdateTags", f"arn:aws:autoscaling:{REGION}:{DEV}:autoScalingGroup:x")
    assert allowed(
        policy, "iam:PassRole", f"arn:aws:iam::{DEV}:role/bakehouse/app/dev-app", {"iam:PassedToService": "ec2.amazonaws.com"}
    )
    assert not allowed(
        policy, "iam:PassRole", f"arn:aws:iam::{DEV}:role/BakehouseBreakGlass", {"iam:PassedToService": "ec2.amazonaws.com"}
    )
    assert not allowed(policy, "cloudformation:CreateStack", f"arn:aws:cloudformation:{REGION}:{DEV}:stack/other/x")
    assert not allowed(
        policy, "ec2:RunInstances", f"arn:aws:ec2:{REGION}:{DEV}:instance/i-1", {"ec2:MetadataHttpTokens": "optional"}
    )


def test_deployer_can_provision_factory_products_only(stack_run):
    policy = _policy(stack_run("dev"), "catalog-access-deployer-policy")
    assert allowed(policy, "servicecatalog:ProvisionProduct", f"arn:aws:catalog:{REGION}:{BUILD}:product/prod-abc")
    assert not allowed(policy, "servicecatalog:ProvisionProduct", f"arn:aws:catalog:{REGION}:999999999999:product/p")
    assert not allowed(policy, "ec2:RunInstances", f"arn:aws:ec2:{REGION}:{DEV}:instance/i-1")
    # only the regions the image keys name (Pulumi.dev.yaml: eu-west-1, eu-central-1, us-east-1)
    assert not allowed(policy, "servicecatalog:SearchProducts", "*", {"aws:RequestedRegion": "ap-southeast-2"})


# --- a regional portfolio (bakehouse:factory.catalogRegionalPortfolios) is launchable in its region ---
def _regional_policies():
    from components.workload.catalog_access import CatalogAccessArgs, deployer_statements, launch_role_statements

    keys = {REGION: f"arn:aws:kms:{REGION}:{BUILD}:key/home", "eu-central-1": f"arn:aws:kms:eu-central-1:{BUILD}:key/fra"}
    args = CatalogAccessArgs(
        account_id=DEV,
        region=REGION,
        build_account_id=BUILD,
        kms_key_arn=f"arn:aws:kms:{REGION}:{DEV}:key/own",
        image_key_arn=keys[REGION],
        image_keys=keys,
    )
    as_policy = lambda statements: json.dumps({"Version": "2012-10-17", "Statement": statements})  # noqa: E731
    return as_policy(launch_role_statements(args)), as_policy(deployer_statements(args))


def test_launch_role_builds_the_products_stack_in_every_region_the_images_reach_and_no_other():
    launch, _ = _regional_policies()
    for region in (REGION, "eu-central-1"):
        assert allowed(launch, "cloudformation:CreateStack", f"arn:aws:cloudformation:{region}:{DEV}:stack/SC-{DEV}-pp-1/x")
        assert allowed(
            launch, "ec2:RunInstances", f"arn:aws:ec2:{region}:{DEV}:instance/i-1", {"ec2:MetadataHttpTokens": "required"}
        )
        assert allowed(launch, "ec2:DescribeImages", "*", {"aws:RequestedRegion": region})
    assert not allowed(launch, "cloudformation:CreateStack", f"arn:aws:cloudformation:us-west-2:{DEV}:stack/SC-{DEV}-pp-1/x")
    assert not allowed(launch, "ec2:DescribeImages", "*", {"aws:RequestedRegion": "us-west-2"})


def test_launch_role_reads_each_regions_image_key_through_ec2_in_that_region_only():
    launch, _ = _regional_policies()
    fra = f"arn:aws:kms:eu-central-1:{BUILD}:key/fra"
    assert allowed(launch, "kms:Decrypt", fra, {"kms:ViaService": "ec2.eu-central-1.amazonaws.com"})
    assert allowed(
        launch, "kms:CreateGrant", fra, {"kms:ViaService": "ec2.eu-central-1.amazonaws.com", "kms:GrantIsForAWSResource": "true"}
    )
    assert not allowed(launch, "kms:Decrypt", fra, {"kms:ViaService": "s3.eu-central-1.amazonaws.com"})
    # the volumes there are encrypted with this account's key in that region, used through EC2 alone
    own = f"arn:aws:kms:eu-central-1:{DEV}:key/volumes"
    assert allowed(launch, "kms:GenerateDataKeyWithoutPlaintext", own, {"kms:ViaService": "ec2.eu-central-1.amazonaws.com"})
    assert not allowed(launch, "kms:Decrypt", own, {"kms:ViaService": "ec2.us-west-2.amazonaws.com"})
    assert not allowed(
        launch, "kms:Decrypt", f"arn:aws:kms:eu-central-1:{BUILD}:key/other", {"kms:ViaService": "ec2.eu-central-1.amazonaws.com"}
    )


def test_deployer_provisions_the_factory_product_of_every_offered_region():
    _, deployer = _regional_policies()
    for region in (REGION, "eu-central-1"):
        assert allowed(deployer, "servicecatalog:ProvisionProduct", f"arn:aws:catalog:{region}:{BUILD}:product/prod-1")
        assert allowed(
            deployer,
            "servicecatalog:TerminateProvisionedProduct",
            "*",
            {"servicecatalog:roleLevel": "self", "aws:RequestedRegion": region},
        )
    assert not allowed(deployer, "servicecatalog:ProvisionProduct", f"arn:aws:catalog:us-west-2:{BUILD}:product/prod-1")


def test_the_workload_stack_lets_its_launch_role_work_in_every_region_its_image_keys_name(stack_run):
    import json

    (policy,) = [
        p for p in stack_run("dev").of_type("aws:iam/rolePolicy:RolePolicy") if p.name == "dev-catalog-access-launch-policy"
    ]
    text = json.dumps(json.loads(policy.inputs["policy"]))
    assert "eu-central-1" in text and "us-east-1" in text  # the regions of Pulumi.dev.yaml's imageKeys
