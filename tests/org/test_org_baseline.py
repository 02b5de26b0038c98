"""The management account's baseline, split across the two stacks that can make it:

- the org stack (first to deploy) gives the management account every secure default of the account
  baseline, but no Config delivery: the central Config bucket does not exist before the security stack;
- the security stack records the management account's configuration (recorder, delivery channel,
  recorder status, then the baseline conformance pack) through a provider in the management account,
  after the bucket and its policy, in one pass;
- the role that provider assumes may make exactly those calls and no deletes or stops.
"""

from __future__ import annotations

import json

import pytest

from tests.iam.evaluate import allowed
from tools import mockrun
from tools.mockrun import run_stack

MGMT, SECURITY = "111111111111", "222222222222"
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1")
HOME = "eu-west-1"
CONFIG_BUCKET = f"bakehouse-config-{SECURITY}-{HOME}"
CONFIG_SLR = f"arn:aws:iam::{MGMT}:role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig"
CONFORMS_SLR = f"arn:aws:iam::{MGMT}:role/aws-service-role/config-conforms.amazonaws.com/AWSServiceRoleForConfigConforms"
CONFIG_TYPES = (
    "aws:cfg/recorder:Recorder",
    "aws:cfg/deliveryChannel:DeliveryChannel",
    "aws:cfg/recorderStatus:RecorderStatus",
    "aws:cfg/conformancePack:ConformancePack",
    "aws:iam/serviceLinkedRole:ServiceLinkedRole",
)
DEPENDENCIES: dict[str, tuple[str, ...]] = {}


class _DependencyMonitor(mockrun.RecordingMonitor):
    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        DEPENDENCIES[response.urn] = tuple(request.dependencies)
        return response


def _run(stack: str, preview: bool = False):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(mockrun, "RecordingMonitor", _DependencyMonitor)
        return run_stack(stack, preview=preview)


@pytest.fixture(scope="module")
def org():
    return _run("org")


@pytest.fixture(scope="module")
def security():
    return _run("security")


def _account(run, resource) -> str:
    """The account a resource is written into: its provider's allowed account."""
    provider = next(r for r in run.resources if r.is_provider and r.name == resource.provider_name)
    (account,) = provider.inputs["allowedAccountIds"]
    return account


def _in(run, account: str, type_token: str) -> list:
    return [r for r in run.of_type(type_token) if _account(run, r) == account]


def _by_region(resources) -> dict:
    found = {r.inputs.get("region"): r for r in resources}
    assert len(found) == len(resources), [r.name for r in resources]
    return found


def _waits_for(resource) -> set[str]:
    return set(DEPENDENCIES.get(resource.urn, ())) | {u for urns in resource.property_dependencies.values() for u in urns}


# --- the org stack: secure defaults for the management account -------------------------------------
def test_management_account_gets_the_account_wide_secure_defaults_from_the_org_stack(org):
    [block] = _in(org, MGMT, "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock")
    assert all(
        block.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    [password] = _in(org, MGMT, "aws:iam/accountPasswordPolicy:AccountPasswordPolicy")
    assert password.inputs["minimumPasswordLength"] >= 14 and password.inputs["passwordReusePrevention"] >= 24
    [analyzer] = _in(org, MGMT, "aws:accessanalyzer/analyzer:Analyzer")
    assert analyzer.inputs["type"] == "ACCOUNT" and analyzer.inputs["region"] == HOME


def test_management_ebs_encrypts_by_default_in_every_region_with_the_org_storage_key_at_home(org):
    encryption = _by_region(_in(org, MGMT, "aws:ebs/encryptionByDefault:EncryptionByDefault"))
    assert set(encryption) == set(REGIONS) and all(e.inputs["enabled"] is True for e in encryption.values())
    [default_key] = _in(org, MGMT, "aws:ebs/defaultKmsKey:DefaultKmsKey")
    assert default_key.inputs["region"] == HOME
    assert default_key.inputs["keyArn"] == org.exports["kmsKeyArn"]
    serial = _by_region(_in(org, MGMT, "aws:ec2/serialConsoleAccess:SerialConsoleAccess"))
    assert set(serial) == set(REGIONS) and all(s.inputs["enabled"] is False for s in serial.values())


def test_management_default_vpcs_are_unusable_in_every_allowed_region(org):
    vpcs = _by_region(_in(org, MGMT, "aws:ec2/defaultVpc:DefaultVpc"))
    groups = _by_region(_in(org, MGMT, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"))
    acls = _by_region(_in(org, MGMT, "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl"))
    blocks = _by_region(_in(org, MGMT, "aws:ec2/vpcBlockPublicAccessOptions:VpcBlockPublicAccessOptions"))
    assert set(vpcs) == set(groups) == set(acls) == set(blocks) == set(REGIONS)
    assert all(not g.inputs.get("ingress") and not g.inputs.get("egress") for g in groups.values())
    assert all(not a.inputs.get("ingress") and not a.inputs.get("egress") for a in acls.values())
    assert {b.inputs["internetGatewayBlockMode"] for b in blocks.values()} == {"block-bidirectional"}


def test_org_stack_declares_no_config_recording_because_the_central_bucket_does_not_exist_yet(org):
    assert not [(r.type, r.name) for t in CONFIG_TYPES for r in org.of_type(t)]


# --- the security stack: the management account's Config recording ---------------------------------
def test_security_stack_records_the_management_account_in_every_region_global_types_at_home(security):
    recorders = _by_region(_in(security, MGMT, "aws:cfg/recorder:Recorder"))
    channels = _by_region(_in(security, MGMT, "aws:cfg/deliveryChannel:DeliveryChannel"))
    statuses = _by_region(_in(security, MGMT, "aws:cfg/recorderStatus:RecorderStatus"))
    assert set(recorders) == set(channels) == set(statuses) == set(REGIONS)
    assert [r for r, rec in recorders.items() if rec.inputs["recordingGroup"]["includeGlobalResourceTypes"]] == [HOME]
    assert all(rec.inputs["roleArn"] == CONFIG_SLR for rec in recorders.values())
    assert all(c.inputs["s3BucketName"] == CONFIG_BUCKET for c in channels.values())
    assert all(s.inputs["isEnabled"] is True for s in statuses.values())
    [slr] = _in(security, MGMT, "aws:iam/serviceLinkedRole:ServiceLinkedRole")
    assert slr.inputs["awsServiceName"] == "config.amazonaws.com"


def test_management_delivery_waits_for_the_central_bucket_and_its_policy_in_the_same_run(security):
    bucket = next(r for r in security.of_type("aws:s3/bucket:Bucket") if r.inputs.get("bucket") == CONFIG_BUCKET)
    policy = next(p for p in security.of_type("aws:s3/bucketPolicy:BucketPolicy") if bucket.urn in _waits_for(p))
    channels = _in(security, MGMT, "aws:cfg/deliveryChannel:DeliveryChannel")
    assert len(channels) == len(REGIONS)
    for channel in channels:
        assert {bucket.urn, policy.urn} <= _waits_for(channel), channel.name


def test_management_baseline_pack_follows_its_regions_recorder_status(security):
    statuses = _by_region(_in(security, MGMT, "aws:cfg/recorderStatus:RecorderStatus"))
    packs = _in(security, MGMT, "aws:cfg/conformancePack:ConformancePack")
    assert {(p.inputs["region"], p.inputs["name"]) for p in packs} == {(r, "bakehouse-baseline") for r in REGIONS}
    for pack in packs:
        assert statuses[pack.inputs["region"]].urn in _waits_for(pack), pack.name


def test_management_recording_provider_assumes_the_trail_admin_role_for_updates(security):
    [recorder] = [r for r in _in(security, MGMT, "aws:cfg/recorder:Recorder") if r.inputs["region"] == HOME]
    provider = next(r for r in security.resources if r.is_provider and r.name == recorder.provider_name)
    assert [hop["roleArn"] for hop in provider.inputs["assumeRoles"]] == [f"arn:aws:iam::{MGMT}:role/BakehouseOrgTrailAdmin"]


def test_management_recording_preview_reads_through_the_management_preview_role():
    run = _run("security", preview=True)
    [recorder] = [r for r in _in(run, MGMT, "aws:cfg/recorder:Recorder") if r.inputs["region"] == HOME]
    provider = next(r for r in run.resources if r.is_provider and r.name == recorder.provider_name)
    assert [hop["roleArn"] for hop in provider.inputs["assumeRoles"]] == [f"arn:aws:iam::{MGMT}:role/BakehousePreview"]


# --- the role the security stack assumes in the management account --------------------------------
@pytest.fixture(scope="module")
def admin_policy(org):
    (policy,) = [p for p in org.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("trail-admin")]
    return json.loads(policy.inputs["policy"])


RECORDER = f"arn:aws:config:{HOME}:{MGMT}:configuration-recorder/default/abc123"
PACK = f"arn:aws:config:eu-central-1:{MGMT}:conformance-pack/bakehouse-baseline/conformance-pack-abc123"


@pytest.mark.parametrize(
    "action,resource,context",
    [
        ("config:PutConfigurationRecorder", RECORDER, {"aws:RequestedRegion": HOME}),
        ("config:StartConfigurationRecorder", RECORDER, {"aws:RequestedRegion": HOME}),
        ("config:DescribeConfigurationRecorders", RECORDER, {"aws:RequestedRegion": HOME}),
        ("config:DescribeConfigurationRecorderStatus", RECORDER, {"aws:RequestedRegion": HOME}),
        ("config:PutDeliveryChannel", "*", {"aws:RequestedRegion": "us-east-1"}),
        ("config:DescribeDeliveryChannels", "*", {"aws:RequestedRegion": "us-east-1"}),
        ("config:PutConformancePack", PACK, {"aws:RequestedRegion": "eu-central-1"}),
        ("config:DescribeConformancePacks", "*", {"aws:RequestedRegion": "eu-central-1"}),
        ("config:DescribeConformancePackStatus", "*", {"aws:RequestedRegion": "eu-central-1"}),
        ("iam:CreateServiceLinkedRole", CONFIG_SLR, {"iam:AWSServiceName": "config.amazonaws.com"}),
        ("iam:CreateServiceLinkedRole", CONFORMS_SLR, {"iam:AWSServiceName": "config-conforms.amazonaws.com"}),
        ("iam:GetRole", CONFIG_SLR, {}),
        ("iam:GetRole", CONFORMS_SLR, {}),
        ("iam:PassRole", CONFIG_SLR, {"iam:PassedToService": "config.amazonaws.com"}),
    ],
)
def test_trail_admin_role_may_make_each_call_the_management_recording_takes(admin_policy, action, resource, context):
    assert allowed(admin_policy, action, resource, context)


@pytest.mark.parametrize(
    "action,resource,context",
    [
        ("config:StopConfigurationRecorder", RECORDER, {"aws:RequestedRegion": HOME}),
        ("config:DeleteConfigurationRecorder", RECORDER, {"aws:RequestedRegion": HOME}),
        ("config:DeleteDeliveryChannel", "*", {"aws:RequestedRegion": HOME}),
        ("config:DeleteConformancePack", PACK, {"aws:RequestedRegion": "eu-central-1"}),
        ("config:PutConfigurationRecorder", RECORDER.replace(HOME, "ap-south-1"), {"aws:RequestedRegion": "ap-south-1"}),
        ("config:PutDeliveryChannel", "*", {"aws:RequestedRegion": "ap-south-1"}),
        (
            "config:PutConformancePack",
            PACK.replace("bakehouse-baseline", "someone-elses"),
            {"aws:RequestedRegion": "eu-central-1"},
        ),
        (
            "iam:CreateServiceLinkedRole",
            f"arn:aws:iam::{MGMT}:role/aws-service-role/ec2.amazonaws.com/X",
            {"iam:AWSServiceName": "ec2.amazonaws.com"},
        ),
        ("iam:PassRole", CONFIG_SLR, {"iam:PassedToService": "ec2.amazonaws.com"}),
        ("iam:PassRole", f"arn:aws:iam::{MGMT}:role/BakehouseDeploy", {"iam:PassedToService": "config.amazonaws.com"}),
    ],
)
def test_trail_admin_role_may_not_stop_delete_or_reach_beyond_the_management_recording(admin_policy, action, resource, context):
    assert not allowed(admin_policy, action, resource, context)


# --- the central bucket admits the management account's delivery -----------------------------------
def test_central_config_bucket_admits_the_management_accounts_delivery(security):
    bucket = next(r for r in security.of_type("aws:s3/bucket:Bucket") if r.inputs.get("bucket") == CONFIG_BUCKET)
    policy = next(p for p in security.of_type("aws:s3/bucketPolicy:BucketPolicy") if bucket.urn in _waits_for(p))
    document = policy.inputs["policy"]
    arn = f"arn:aws:s3:::{CONFIG_BUCKET}"
    source = {"aws:SourceAccount": MGMT, "aws:SourceOrgID": "o-exampleorg01"}
    assert allowed(document, "s3:GetBucketAcl", arn, source, principal="config.amazonaws.com")
    assert allowed(document, "s3:ListBucket", arn, source, principal="config.amazonaws.com")
    assert allowed(
        document,
        "s3:PutObject",
        f"{arn}/config/AWSLogs/{MGMT}/Config/{HOME}/x.json.gz",
        {**source, "s3:x-amz-acl": "bucket-owner-full-control"},
        principal="config.amazonaws.com",
    )
