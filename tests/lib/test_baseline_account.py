"""The account baseline alone, under mocks: what every account gets, region by region, and in which order
AWS needs it (recording before conformance packs; the central bucket before deliveries)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pytest
import yaml

from components.lib.account_baseline import AccountBaseline, AccountBaselineArgs
from components.org.scps import ec2_defaults
from estate.config import Accounts, EstateConfig
from tools import mockrun
from tools.mockrun import STACKS, run_program

REGIONS = ("eu-west-1", "eu-central-1", "us-east-1")
HOME = "eu-west-1"
KEY = "arn:aws:kms:eu-west-1:444444444444:key/k"
BUCKET = "bakehouse-config-222222222222-eu-west-1"
# Settings the organization's EC2 declarative policy owns; an account-level copy is a second owner.
DECLARATIVE_POLICY_OWNED = (
    "aws:ec2/instanceMetadataDefaults:InstanceMetadataDefaults",
    "aws:ec2/imageBlockPublicAccess:ImageBlockPublicAccess",
    "aws:ebs/snapshotBlockPublicAccess:SnapshotBlockPublicAccess",
)


@pytest.fixture
def dependencies(monkeypatch):
    """resource name -> URNs it waits for (depends_on), as the engine would receive them."""
    seen: dict[str, set[str]] = {}
    original = mockrun.RecordingMonitor.RegisterResource

    def register(self, request):
        seen[request.name] = set(request.dependencies)
        return original(self, request)

    monkeypatch.setattr(mockrun.RecordingMonitor, "RegisterResource", register)
    return seen


def _baseline(**options):
    def program():
        AccountBaseline(
            "acct",
            AccountBaselineArgs(
                account_id="444444444444", kms_key_arn=KEY, config_bucket=BUCKET, home_region=HOME, regions=REGIONS, **options
            ),
            opts=pulumi.ResourceOptions(),
        )

    return run_program(program)


def _by_region(run, type_token):
    return {r.inputs.get("region"): r for r in run.of_type(type_token)}


def test_baseline_leaves_imds_and_image_snapshot_sharing_to_the_ec2_declarative_policy():
    owned = ec2_defaults().content["ec2_attributes"]
    assert {"instance_metadata_defaults", "image_block_public_access", "snapshot_block_public_access"} <= set(owned)
    run = _baseline(workload=True)
    assert not [r.name for r in run.resources if r.type in DECLARATIVE_POLICY_OWNED]


@pytest.mark.parametrize("stack", STACKS)
def test_no_account_stack_declares_a_setting_the_ec2_declarative_policy_owns(stack, stack_run):
    run = stack_run(stack)
    assert not [(r.type, r.name) for r in run.resources if r.type in DECLARATIVE_POLICY_OWNED]


def test_every_allowed_region_records_to_the_central_bucket_and_global_types_once():
    run = _baseline()
    recorders = _by_region(run, "aws:cfg/recorder:Recorder")
    channels = _by_region(run, "aws:cfg/deliveryChannel:DeliveryChannel")
    statuses = _by_region(run, "aws:cfg/recorderStatus:RecorderStatus")
    assert set(recorders) == set(channels) == set(statuses) == set(REGIONS)
    assert all(c.inputs["s3BucketName"] == BUCKET for c in channels.values())
    assert all(s.inputs["isEnabled"] is True for s in statuses.values())
    globals_in = [r for r, rec in recorders.items() if rec.inputs["recordingGroup"]["includeGlobalResourceTypes"]]
    assert globals_in == [HOME]
    assert all(rec.inputs["recordingGroup"]["allSupported"] is True for rec in recorders.values())


def test_conformance_packs_are_account_level_and_wait_for_their_regions_recorder(dependencies):
    run = _baseline(workload=True)
    assert not run.of_type("aws:cfg/organizationConformancePack:OrganizationConformancePack")
    packs = run.of_type("aws:cfg/conformancePack:ConformancePack")
    assert {(p.inputs["region"], p.inputs["name"]) for p in packs} == {
        (r, n) for r in REGIONS for n in ("bakehouse-baseline", "bakehouse-workloads")
    }
    statuses = {s.inputs["region"]: s.urn for s in run.of_type("aws:cfg/recorderStatus:RecorderStatus")}
    for pack in packs:
        assert statuses[pack.inputs["region"]] in dependencies[pack.name], pack.name
        rules = yaml.safe_load(pack.inputs["templateBody"])["Resources"]
        assert all(rule["Type"] == "AWS::Config::ConfigRule" for rule in rules.values())


def test_only_workload_accounts_get_the_workload_pack():
    names = {p.inputs["name"] for p in _baseline().of_type("aws:cfg/conformancePack:ConformancePack")}
    assert names == {"bakehouse-baseline"}


def test_delivery_channels_wait_for_the_bucket_they_deliver_to(dependencies):
    def program():
        bucket = aws.s3.Bucket("central-config", bucket=BUCKET)
        AccountBaseline(
            "acct",
            AccountBaselineArgs(
                account_id="222222222222",
                kms_key_arn=KEY,
                config_bucket=BUCKET,
                home_region=HOME,
                regions=REGIONS,
                config_bucket_ready=[bucket],
            ),
            opts=pulumi.ResourceOptions(),
        )

    run = run_program(program)
    bucket = run.named("central-config").urn
    channels = run.of_type("aws:cfg/deliveryChannel:DeliveryChannel")
    assert len(channels) == len(REGIONS)
    assert all(bucket in dependencies[c.name] for c in channels)


def test_default_vpc_is_locked_and_public_access_blocked_in_every_allowed_region():
    run = _baseline()
    vpcs = _by_region(run, "aws:ec2/defaultVpc:DefaultVpc")
    groups = _by_region(run, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    acls = _by_region(run, "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl")
    blocks = _by_region(run, "aws:ec2/vpcBlockPublicAccessOptions:VpcBlockPublicAccessOptions")
    assert set(vpcs) == set(groups) == set(acls) == set(blocks) == set(REGIONS)
    assert all(g.inputs.get("ingress", []) == [] and g.inputs.get("egress", []) == [] for g in groups.values())
    assert all(a.inputs.get("ingress", []) == [] and a.inputs.get("egress", []) == [] for a in acls.values())
    assert all(b.inputs["internetGatewayBlockMode"] == "block-bidirectional" for b in blocks.values())


def test_an_account_that_needs_nat_egress_blocks_ingress_only():
    blocks = _by_region(
        _baseline(vpc_block_mode="block-ingress"), "aws:ec2/vpcBlockPublicAccessOptions:VpcBlockPublicAccessOptions"
    )
    assert {b.inputs["internetGatewayBlockMode"] for b in blocks.values()} == {"block-ingress"}


def test_unknown_block_mode_or_home_outside_the_regions_is_refused_before_declaring_anything():
    for bad, message in (({"vpc_block_mode": "off"}, "vpc_block_mode"), ({"home_region": "ap-south-1"}, "home_region")):

        def program(bad=bad):
            AccountBaseline(
                "acct",
                AccountBaselineArgs(
                    **{
                        "account_id": "444444444444",
                        "kms_key_arn": KEY,
                        "config_bucket": BUCKET,
                        "home_region": HOME,
                        "regions": REGIONS,
                        **bad,
                    }
                ),
            )

        run = run_program(program, raise_errors=False)
        assert isinstance(run.error, ValueError) and message in str(run.error)
        assert not run.resources


def test_secure_account_defaults_hold_in_every_region():
    run = _baseline()
    assert set(_by_region(run, "aws:ebs/encryptionByDefault:EncryptionByDefault")) == set(REGIONS)
    serial = _by_region(run, "aws:ec2/serialConsoleAccess:SerialConsoleAccess")
    assert set(serial) == set(REGIONS) and all(s.inputs["enabled"] is False for s in serial.values())
    [key] = run.of_type("aws:ebs/defaultKmsKey:DefaultKmsKey")
    assert key.inputs["keyArn"] == KEY and key.inputs["region"] == HOME
    [block] = run.of_type("aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock")
    assert all(
        block.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    [password] = run.of_type("aws:iam/accountPasswordPolicy:AccountPasswordPolicy")
    assert password.inputs["minimumPasswordLength"] >= 14 and password.inputs["passwordReusePrevention"] >= 24
    [analyzer] = run.of_type("aws:accessanalyzer/analyzer:Analyzer")
    assert analyzer.inputs["type"] == "ACCOUNT"


def test_the_estate_arguments_name_the_central_bucket_and_every_allowed_region():
    estate = EstateConfig(
        "o-exampleorg01",
        Accounts("111111111111", "222222222222", "333333333333", {"dev": "444444444444"}),
        allowed_regions=("eu-central-1", "eu-west-1"),
        home_region="eu-west-1",
        deploy_role_name="BakehouseDeploy",
    )
    args = AccountBaselineArgs.for_estate(estate, "444444444444", kms_key_arn=KEY, workload=True)
    assert args.config_bucket == BUCKET and args.workload is True
    assert args.region_list() == ["eu-west-1", "eu-central-1"]


def test_an_account_recorded_from_another_stack_gets_every_default_but_no_config_recording():
    run = _baseline(record_config=False)
    assert not [
        r.name for r in run.resources if r.type.startswith("aws:cfg/") or r.type == "aws:iam/serviceLinkedRole:ServiceLinkedRole"
    ]
    assert set(_by_region(run, "aws:ec2/vpcBlockPublicAccessOptions:VpcBlockPublicAccessOptions")) == set(REGIONS)
    assert set(_by_region(run, "aws:ebs/encryptionByDefault:EncryptionByDefault")) == set(REGIONS)
    assert run.of_type("aws:iam/accountPasswordPolicy:AccountPasswordPolicy")


def test_recorders_name_configs_service_linked_role_by_its_fixed_arn_and_wait_for_it(dependencies):
    run = _baseline()
    [role] = run.of_type("aws:iam/serviceLinkedRole:ServiceLinkedRole")
    for recorder in run.of_type("aws:cfg/recorder:Recorder"):
        assert recorder.inputs["roleArn"] == (
            "arn:aws:iam::444444444444:role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig"
        )
        assert role.urn in dependencies[recorder.name]
