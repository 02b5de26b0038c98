"""The build account gets the account baseline every account has (components/lib/account_baseline.py)."""

from __future__ import annotations

REGIONS = {"eu-west-1", "eu-central-1", "us-east-1"}  # the estate's allowedRegions
FACTORY_KEY = "arn:aws:kms:eu-west-1:333333333333:key/build-factory-key-key"


def test_build_account_records_config_in_every_allowed_region_with_the_baseline_pack_only(stack_run):
    run = stack_run("build")
    assert {r.inputs["region"] for r in run.of_type("aws:cfg/recorderStatus:RecorderStatus")} == REGIONS
    packs = run.of_type("aws:cfg/conformancePack:ConformancePack")
    # Not the workload pack: the factory launches Amazon's base images, which that pack forbids.
    assert {(p.inputs["region"], p.inputs["name"]) for p in packs} == {(r, "bakehouse-baseline") for r in REGIONS}


def test_build_account_has_the_secure_account_defaults(stack_run):
    run = stack_run("build")
    assert run.of_type("aws:iam/accountPasswordPolicy:AccountPasswordPolicy")
    assert run.of_type("aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock")
    assert {v.inputs["region"] for v in run.of_type("aws:ec2/defaultVpc:DefaultVpc")} == REGIONS


def test_build_vpcs_block_internet_ingress_but_keep_nat_egress_for_the_firewall(stack_run):
    modes = {
        o.inputs["region"]: o.inputs["internetGatewayBlockMode"]
        for o in stack_run("build").of_type("aws:ec2/vpcBlockPublicAccessOptions:VpcBlockPublicAccessOptions")
    }
    assert modes == {r: "block-ingress" for r in REGIONS}


def test_unspecified_build_volumes_are_encrypted_with_the_key_the_factory_roles_may_use(stack_run):
    # The automation role may use and let EBS grant on the factory key; a default key it could not
    # use would fail any launch whose volume names no key.
    [key] = stack_run("build").of_type("aws:ebs/defaultKmsKey:DefaultKmsKey")
    assert key.inputs["keyArn"] == FACTORY_KEY
