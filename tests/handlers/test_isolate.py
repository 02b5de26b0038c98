"""The isolation playbook against moto: every step's effect, the manifest, replays, a missing instance,
and containment that runs whatever step fails before it."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

import handlers.isolate
from handlers.common import MalformedEvent
from handlers.isolate import (
    CAPTURE_DOCUMENT,
    CONTAINMENT,
    FORENSIC_SOURCE_PARAMETER,
    REVOKE_POLICY,
    STEPS,
    TAG_FINDING,
    Clients,
    InstanceNotFound,
    IsolateRequest,
    handler,
    isolate,
)
from tests.handlers._sessions import core_session, fast_default_session

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's
SECURITY = "222222222222"
BUCKET = "bakehouse-evidence-111111111111-eu-west-1"
EVIDENCE_KEY = f"arn:aws:kms:{REGION}:{SECURITY}:alias/bakehouse-evidence"
FINDING = "6ec9f8a2b3c4d5e6f708192a3b4c5d6e"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _no_sleep(_: float) -> None:
    raise AssertionError("moto completes commands at once; the playbook must not need to wait")


@pytest.fixture
def estate(monkeypatch):
    # moto's 1,300 stock AMIs (and their snapshots) cost more than a second per test; none is needed.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        fast_default_session(REGION)
        session = boto3.Session(region_name=REGION, botocore_session=core_session())
        clients = Clients(*(session.client(n) for n in ("ec2", "autoscaling", "elbv2", "ssm", "iam", "s3", "sns")))
        ec2 = clients.ec2
        vpc = ec2.create_vpc(CidrBlock="10.16.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.16.1.0/24", AvailabilityZone="eu-west-1a")["Subnet"]["SubnetId"]
        app_sg = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
        ami = ec2.register_image(
            Name="app-image",
            RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
        clients.iam.create_role(
            RoleName="app",
            Path="/bakehouse/app/",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
                }
            ),
        )
        profile = clients.iam.create_instance_profile(InstanceProfileName="app", Path="/bakehouse/app/")["InstanceProfile"]
        clients.iam.add_role_to_instance_profile(InstanceProfileName="app", RoleName="app")
        tg = clients.elbv2.create_target_group(Name="app", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance")[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        # Groups given on the interface, not the instance: moto reports an interface's groups as the
        # union with the instance-level groups, which would hide a real replacement.
        instance_id = ec2.run_instances(
            ImageId=ami,
            MinCount=1,
            MaxCount=1,
            InstanceType="t3.micro",
            NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [app_sg]}],
            IamInstanceProfile={"Arn": profile["Arn"]},
        )["Instances"][0]["InstanceId"]
        template = ec2.create_launch_template(
            LaunchTemplateName="app", LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.micro"}
        )["LaunchTemplate"]["LaunchTemplateId"]
        clients.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName="app",
            MinSize=0,
            MaxSize=2,
            DesiredCapacity=0,
            VPCZoneIdentifier=subnet,
            LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
        )
        clients.autoscaling.attach_instances(AutoScalingGroupName="app", InstanceIds=[instance_id])
        clients.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": instance_id, "Port": 80}])
        clients.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        topic = clients.sns.create_topic(Name="bakehouse-security")["TopicArn"]
        sqs = session.client("sqs")
        queue = sqs.create_queue(QueueName="security-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        clients.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        request = IsolateRequest(
            instance_id,
            FINDING,
            BUCKET,
            topic,
            region=REGION,
            account_id=ACCOUNT,
            security_account_id=SECURITY,
            evidence_key_arn=EVIDENCE_KEY,
        )
        yield {
            "clients": clients,
            "request": request,
            "vpc": vpc,
            "tg": tg,
            "app_sg": app_sg,
            "sqs": sqs,
            "queue": queue,
            "ami": ami,
            "subnet": subnet,
        }


def _run(estate):
    return isolate(estate["request"], estate["clients"], now=lambda: NOW, sleep=_no_sleep)


def _instance(estate):
    ec2 = estate["clients"].ec2
    return ec2.describe_instances(InstanceIds=[estate["request"].instance_id])["Reservations"][0]["Instances"][0]


def _messages(estate):
    got = estate["sqs"].receive_message(QueueUrl=estate["queue"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_isolation_records_the_instance_state_before_changing_it(estate):
    _run(estate)
    s3 = estate["clients"].s3
    state = json.loads(s3.get_object(Bucket=BUCKET, Key=estate["request"].prefix + "instance-state.json")["Body"].read())
    assert state["InstanceId"] == estate["request"].instance_id
    assert state["State"]["Name"] == "running"
    assert [g["GroupId"] for g in state["NetworkInterfaces"][0]["Groups"]] == [estate["app_sg"]]


def test_isolation_enables_termination_protection_and_stops_the_instance(estate):
    _run(estate)
    ec2 = estate["clients"].ec2
    attr = ec2.describe_instance_attribute(InstanceId=estate["request"].instance_id, Attribute="disableApiTermination")
    assert attr["DisableApiTermination"]["Value"] is True
    assert _instance(estate)["State"]["Name"] in ("stopping", "stopped")


def test_every_interface_ends_in_one_isolation_group_without_rules(estate):
    ec2 = estate["clients"].ec2
    extra = ec2.create_network_interface(SubnetId=estate["subnet"], Groups=[estate["app_sg"]])["NetworkInterface"]
    ec2.attach_network_interface(
        NetworkInterfaceId=extra["NetworkInterfaceId"], InstanceId=estate["request"].instance_id, DeviceIndex=1
    )
    _run(estate)
    enis = _instance(estate)["NetworkInterfaces"]
    assert len(enis) == 2
    groups = {
        g["GroupId"]
        for eni in enis
        for g in ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"][0][
            "Groups"
        ]
    }
    assert len(groups) == 1 and estate["app_sg"] not in groups
    isolation = ec2.describe_security_groups(GroupIds=list(groups))["SecurityGroups"][0]
    assert isolation["IpPermissions"] == [] and isolation["IpPermissionsEgress"] == []
    assert isolation["VpcId"] == estate["vpc"]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_isolation_group_is_created_once_per_vpc_and_reused(estate):
    ec2 = estate["clients"].ec2
    other = ec2.run_instances(
        ImageId=estate["ami"], MinCount=1, MaxCount=1, SubnetId=estate["subnet"], SecurityGroupIds=[estate["app_sg"]]
    )["Instances"][0]["InstanceId"]
    _run(estate)
    isolate(
        IsolateRequest(other, "second-finding", BUCKET, estate["request"].topic_arn),
        estate["clients"],
        now=lambda: NOW,
        sleep=_no_sleep,
    )
    found = ec2.describe_security_groups(Filters=[{"Name": "tag:bakehouse:purpose", "Values": ["isolation"]}])
    assert len(found["SecurityGroups"]) == 1


def test_isolation_detaches_from_auto_scaling_without_shrinking_the_group(estate):
    result = _run(estate)
    asg = estate["clients"].autoscaling
    assert asg.describe_auto_scaling_instances(InstanceIds=[estate["request"].instance_id])["AutoScalingInstances"] == []
    group = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["app"])["AutoScalingGroups"][0]
    assert group["DesiredCapacity"] == 1
    assert estate["request"].instance_id not in [i["InstanceId"] for i in group["Instances"]]
    assert {s.name: s.detail for s in result.steps}["detach-auto-scaling"] == {"group": "app"}


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_isolation_deregisters_the_instance_from_target_groups(estate):
    _run(estate)
    health = estate["clients"].elbv2.describe_target_health(TargetGroupArn=estate["tg"])["TargetHealthDescriptions"]
    assert estate["request"].instance_id not in [h["Target"]["Id"] for h in health]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_every_volume_is_snapshotted_and_tagged_with_the_finding(estate):
    _run(estate)
    ec2 = estate["clients"].ec2
    volumes = {m["Ebs"]["VolumeId"] for m in _instance(estate)["BlockDeviceMappings"]}
    snaps = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": f"tag:{TAG_FINDING}", "Values": [FINDING]}])
    originals = [s for s in snaps["Snapshots"] if "bakehouse:copy-of" not in {t["Key"] for t in s["Tags"]}]
    assert volumes and {s["VolumeId"] for s in originals} == volumes
    assert len(originals) == len(volumes)


def test_memory_capture_is_sent_to_the_instance_with_the_evidence_destination(estate):
    _run(estate)
    commands = estate["clients"].ssm.list_commands(InstanceId=estate["request"].instance_id)["Commands"]
    assert len(commands) == 1
    command = commands[0]
    assert command["DocumentName"] == CAPTURE_DOCUMENT
    script = "\n".join(command["Parameters"]["commands"])
    assert "avml" in script
    assert f"s3://{BUCKET}/{estate['request'].prefix}memory.lime.compressed" in script
    assert command["OutputS3BucketName"] == BUCKET


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_revocation_denies_the_sessions_of_this_instance_only(estate):
    _run(estate)
    doc = estate["clients"].iam.get_role_policy(RoleName="app", PolicyName=REVOKE_POLICY)["PolicyDocument"]
    [statement] = doc["Statement"]
    assert statement["Effect"] == "Deny" and statement["Action"] == "*"
    arn = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{estate['request'].instance_id}"
    assert statement["Condition"] == {"ArnEquals": {"ec2:SourceInstanceARN": [arn]}}


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_revocation_of_a_second_instance_of_the_role_keeps_the_first(estate):
    ec2 = estate["clients"].ec2
    profile = _instance(estate)["IamInstanceProfile"]["Arn"]
    other = ec2.run_instances(
        ImageId=estate["ami"], MinCount=1, MaxCount=1, SubnetId=estate["subnet"], IamInstanceProfile={"Arn": profile}
    )["Instances"][0]["InstanceId"]
    _run(estate)
    isolate(
        IsolateRequest(other, "second-finding", BUCKET, estate["request"].topic_arn),
        estate["clients"],
        now=lambda: NOW,
        sleep=_no_sleep,
    )
    doc = estate["clients"].iam.get_role_policy(RoleName="app", PolicyName=REVOKE_POLICY)["PolicyDocument"]
    assert doc["Statement"][0]["Condition"]["ArnEquals"]["ec2:SourceInstanceARN"] == sorted(
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{i}" for i in (estate["request"].instance_id, other)
    )


def test_a_foreign_instance_profile_is_recorded_and_containment_goes_on(estate):
    c = estate["clients"]
    c.iam.create_role(RoleName="vendor", Path="/vendor/", AssumeRolePolicyDocument="{}")
    profile = c.iam.create_instance_profile(InstanceProfileName="vendor", Path="/vendor/")["InstanceProfile"]
    c.iam.add_role_to_instance_profile(InstanceProfileName="vendor", RoleName="vendor")
    vendor = c.ec2.run_instances(
        ImageId=estate["ami"], MinCount=1, MaxCount=1, SubnetId=estate["subnet"], IamInstanceProfile={"Arn": profile["Arn"]}
    )["Instances"][0]["InstanceId"]
    result = isolate(IsolateRequest(vendor, FINDING, BUCKET, estate["request"].topic_arn), c, now=lambda: NOW, sleep=_no_sleep)
    revoke = {s.name: s for s in result.steps}["revoke-role-sessions"]
    assert not revoke.failed and revoke.detail["foreign_profile"] == profile["Arn"]
    assert "vendor" not in [p for p in c.iam.list_role_policies(RoleName="vendor")["PolicyNames"]]
    state = c.ec2.describe_instances(InstanceIds=[vendor])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("stopping", "stopped")


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_manifest_lists_every_evidence_object_with_its_sha256_and_reaches_the_topic(estate):
    s3 = estate["clients"].s3
    prefix = estate["request"].prefix
    # What AVML uploads from the instance (moto's Run Command executes nothing).
    s3.put_object(Bucket=BUCKET, Key=prefix + "memory.lime.compressed", Body=b"lime-image")
    _run(estate)
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=prefix + "manifest.json")["Body"].read())
    by_key = {o["key"]: o["sha256"] for o in manifest["objects"]}
    assert set(by_key) == {prefix + "instance-state.json", prefix + "memory.lime.compressed"}
    for key, digest in by_key.items():
        assert hashlib.sha256(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).hexdigest() == digest
    [message] = _messages(estate)
    assert message == manifest


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_second_run_changes_nothing(estate):
    first = _run(estate)
    assert first.changed

    def snapshot_of_state():
        c = estate["clients"]
        return (
            _instance(estate)["State"]["Name"],
            sorted(
                s["SnapshotId"]
                for s in c.ec2.describe_snapshots(Filters=[{"Name": "tag-key", "Values": [TAG_FINDING]}])["Snapshots"]
            ),
            sorted(g["GroupId"] for g in c.ec2.describe_security_groups()["SecurityGroups"]),
            len(c.ssm.list_commands()["Commands"]),
            c.iam.get_role_policy(RoleName="app", PolicyName=REVOKE_POLICY)["PolicyDocument"],
            [v["VersionId"] for v in c.s3.list_object_versions(Bucket=BUCKET).get("Versions", [])],
        )

    before = snapshot_of_state()
    _messages(estate)
    second = isolate(estate["request"], estate["clients"], now=lambda: datetime(2027, 1, 1, tzinfo=UTC), sleep=_no_sleep)
    assert not second.changed, [s.name for s in second.steps if s.changed]
    assert snapshot_of_state() == before
    assert _messages(estate) == []


def test_a_missing_instance_fails_naming_it_pages_at_once_and_changes_nothing(estate):
    missing = IsolateRequest("i-0123456789abcdef0", FINDING, BUCKET, estate["request"].topic_arn)
    with pytest.raises(InstanceNotFound, match="i-0123456789abcdef0"):
        isolate(missing, estate["clients"], now=lambda: NOW, sleep=_no_sleep)
    c = estate["clients"]
    assert "Contents" not in c.s3.list_objects_v2(Bucket=BUCKET)
    assert (
        c.ec2.describe_security_groups(Filters=[{"Name": "tag:bakehouse:purpose", "Values": ["isolation"]}])["SecurityGroups"]
        == []
    )
    assert c.ec2.describe_snapshots(Filters=[{"Name": "tag-key", "Values": [TAG_FINDING]}])["Snapshots"] == []
    [page] = _messages(estate)
    assert list(page["failed_steps"]) == ["read-instance"] and "i-0123456789abcdef0" in page["failed_steps"]["read-instance"]


def test_a_malformed_event_is_rejected_listing_every_problem_before_any_call():
    with pytest.raises(MalformedEvent) as err:
        handler({"InstanceId": "web-1", "EvidenceBucket": "B", "TopicArn": "arn:aws:sns:eu-west-1:1:x"}, None)
    text = str(err.value)
    for key in ("InstanceId", "FindingId", "EvidenceBucket", "TopicArn"):
        assert key in text


def test_one_step_at_a_time_runs_only_that_step(estate):
    request = estate["request"]
    only = IsolateRequest(request.instance_id, FINDING, BUCKET, request.topic_arn, step="snapshot-volumes")
    result = isolate(only, estate["clients"], now=lambda: NOW, sleep=_no_sleep)
    assert [s.name for s in result.steps] == ["snapshot-volumes"] and result.changed
    assert _instance(estate)["State"]["Name"] == "running"
    assert "Contents" not in estate["clients"].s3.list_objects_v2(Bucket=BUCKET)


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_the_manifest_of_a_step_by_step_run_records_what_aws_shows(estate):
    request = estate["request"]
    for name in STEPS:
        isolate(
            IsolateRequest(request.instance_id, FINDING, BUCKET, request.topic_arn, step=name),
            estate["clients"],
            now=lambda: NOW,
            sleep=_no_sleep,
        )
    manifest = json.loads(estate["clients"].s3.get_object(Bucket=BUCKET, Key=request.prefix + "manifest.json")["Body"].read())
    observed = manifest["observed"]
    assert observed["state"] in ("stopping", "stopped") and observed["termination_protection"] is True
    assert observed["auto_scaling_group"] is None
    assert observed["isolation_group"]
    assert all(groups == [observed["isolation_group"]] for groups in observed["interfaces"].values())
    volumes = {m["Ebs"]["VolumeId"] for m in _instance(estate)["BlockDeviceMappings"]}
    assert set(observed["snapshots"]) == volumes
    assert observed["memory_capture"]["status"] == "Success"


def test_an_unknown_step_is_a_malformed_event():
    with pytest.raises(MalformedEvent, match="Step"):
        IsolateRequest.parse(
            {
                "InstanceId": "i-0123456789abcdef0",
                "FindingId": FINDING,
                "EvidenceBucket": BUCKET,
                "TopicArn": "arn:aws:sns:eu-west-1:123456789012:bakehouse-security",
                "Step": "reboot",
            }
        )


# --- containment first: a failure anywhere still contains, stops, announces and publishes -----------
# The function each step calls, by the name isolate() looks it up under (module globals, at call time).
STEP_FUNCTIONS = {
    "record-state": "record_state",
    "termination-protection": "protect_from_termination",
    "detach-auto-scaling": "detach_from_auto_scaling",
    "deregister-targets": "deregister_from_target_groups",
    "capture-memory": "capture_memory",
    "swap-security-groups": "swap_security_groups",
    "revoke-role-sessions": "revoke_role_sessions",
    "snapshot-volumes": "snapshot_volumes",
    "stop-instance": "stop_instance",
    "share-snapshots": "share_snapshots",
    "publish-manifest": "publish_manifest",
}


class Forced(Exception):
    pass


def test_every_step_has_a_function_to_force_it_to_fail():
    assert set(STEP_FUNCTIONS) == set(STEPS)


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
@pytest.mark.parametrize("failing", STEPS)
def test_a_failing_step_still_leaves_the_instance_contained_stopped_announced_and_published(estate, monkeypatch, failing):
    def fail(*_, **__):
        raise Forced(f"{failing} forced to fail")

    monkeypatch.setattr(handlers.isolate, STEP_FUNCTIONS[failing], fail)
    with pytest.raises(Forced):
        _run(estate)
    c, request = estate["clients"], estate["request"]
    instance = _instance(estate)
    if failing != "stop-instance":
        assert instance["State"]["Name"] in ("stopping", "stopped")
    if failing != "swap-security-groups":
        [eni] = instance["NetworkInterfaces"]
        groups = c.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"][0][
            "Groups"
        ]
        assert [g["GroupId"] for g in groups] != [estate["app_sg"]]
    messages = _messages(estate)
    [page] = [m for m in messages if "failed_steps" in m]
    assert list(page["failed_steps"]) == [failing] and "forced to fail" in page["failed_steps"][failing]
    if failing != "publish-manifest":
        manifest = json.loads(c.s3.get_object(Bucket=BUCKET, Key=request.prefix + "manifest.json")["Body"].read())
        assert manifest in messages


def test_containment_is_the_swap_and_the_stop():
    assert CONTAINMENT == ("swap-security-groups", "stop-instance")
    assert STEPS.index("capture-memory") < STEPS.index("swap-security-groups") < STEPS.index("stop-instance")


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_failed_memory_capture_fails_its_step_by_name(estate, monkeypatch):
    ssm = estate["clients"].ssm
    real = ssm.get_command_invocation
    monkeypatch.setattr(ssm, "get_command_invocation", lambda **kw: {**real(**kw), "Status": "Failed"})
    with pytest.raises(handlers.isolate.MemoryCaptureFailed, match="ended Failed"):
        _run(estate)
    [page] = [m for m in _messages(estate) if "failed_steps" in m]
    assert list(page["failed_steps"]) == ["capture-memory"]
    assert _instance(estate)["State"]["Name"] in ("stopping", "stopped")


def test_memory_capture_and_its_output_go_under_the_instance_arn_the_instance_role_may_write(estate):
    from components.workload.app_access import memory_capture_prefix

    _run(estate)
    request = estate["request"]
    arn = f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{request.instance_id}"
    assert request.prefix == memory_capture_prefix(FINDING, arn)
    [command] = estate["clients"].ssm.list_commands(InstanceId=request.instance_id)["Commands"]
    assert command["OutputS3KeyPrefix"].startswith(request.prefix)


def test_a_request_without_region_and_account_takes_them_from_the_instance(estate):
    request = estate["request"]
    bare = IsolateRequest(request.instance_id, FINDING, BUCKET, request.topic_arn)
    result = isolate(bare, estate["clients"], now=lambda: NOW, sleep=_no_sleep)
    assert {s.name: s.detail for s in result.steps}["record-state"]["key"] == request.prefix + "instance-state.json"


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_the_manifest_lands_even_when_the_instance_vanished_mid_run(estate):
    request, c = estate["request"], estate["clients"]
    for name in STEPS[: STEPS.index("stop-instance")]:
        isolate(IsolateRequest(**{**request.__dict__, "step": name}), c, now=lambda: NOW, sleep=_no_sleep)
    c.ec2.modify_instance_attribute(InstanceId=request.instance_id, DisableApiTermination={"Value": False})
    c.ec2.terminate_instances(InstanceIds=[request.instance_id])
    with pytest.raises(InstanceNotFound):
        isolate(IsolateRequest(**{**request.__dict__, "step": "stop-instance"}), c, now=lambda: NOW, sleep=_no_sleep)
    isolate(IsolateRequest(**{**request.__dict__, "step": "publish-manifest"}), c, now=lambda: NOW, sleep=_no_sleep)
    manifest = json.loads(c.s3.get_object(Bucket=BUCKET, Key=request.prefix + "manifest.json")["Body"].read())
    assert manifest["observed"]["state"] in ("gone", "terminated")
    assert manifest["state_record"] == request.prefix + "instance-state.json"
    assert set(manifest["snapshots"]) and manifest["instance_arn"].endswith(request.instance_id)


# --- evidence leaves the account ---------------------------------------------------------------------
def test_snapshots_are_copied_under_the_evidence_key_and_shared_with_the_security_account(estate):
    result = _run(estate)
    ec2 = estate["clients"].ec2
    copies = {s.name: s.detail for s in result.steps}["share-snapshots"]["copies"]
    volumes = {m["Ebs"]["VolumeId"] for m in _instance(estate)["BlockDeviceMappings"]}
    assert volumes and len(copies) == len(volumes)
    for original, copy in copies.items():
        [snap] = ec2.describe_snapshots(SnapshotIds=[copy])["Snapshots"]
        assert snap["Encrypted"] and snap["KmsKeyId"] == EVIDENCE_KEY
        tags = {t["Key"]: t["Value"] for t in snap["Tags"]}
        assert tags["bakehouse:copy-of"] == original and tags[TAG_FINDING] == FINDING
        shared = ec2.describe_snapshot_attribute(SnapshotId=copy, Attribute="createVolumePermission")
        assert shared["CreateVolumePermissions"] == [{"UserId": SECURITY}]
    manifest = json.loads(
        estate["clients"].s3.get_object(Bucket=BUCKET, Key=estate["request"].prefix + "manifest.json")["Body"].read()
    )
    assert manifest["evidence_copies"] == copies


def test_a_snapshot_still_pending_fails_the_share_naming_it(estate, monkeypatch):
    from handlers import isolate_evidence

    ec2 = estate["clients"].ec2
    real = ec2.describe_snapshots

    def pending(**kw):
        got = real(**kw)
        return {**got, "Snapshots": [{**s, "State": "pending"} for s in got["Snapshots"]]}

    monkeypatch.setattr(ec2, "describe_snapshots", pending)
    monkeypatch.setattr(ec2, "get_paginator", lambda name: type("P", (), {"paginate": lambda self, **kw: [pending(**kw)]})())
    request = IsolateRequest(**{**estate["request"].__dict__, "step": "snapshot-volumes"})
    isolate(request, estate["clients"], now=lambda: NOW, sleep=_no_sleep)
    with pytest.raises(isolate_evidence.EvidenceCopyPending, match="snap-"):
        isolate_evidence.share_snapshots(estate["clients"], estate["request"], sleep=lambda _: None, wait_seconds=0)


# --- concurrent runs and forensic access ---------------------------------------------------------------
@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_concurrent_run_that_loses_the_race_reuses_the_winner_s_group(estate, monkeypatch):
    ec2 = estate["clients"].ec2
    real_describe = ec2.describe_security_groups
    calls = {"n": 0}

    def racing(**kw):
        calls["n"] += 1
        if calls["n"] == 1:  # the other run creates the group between our look and our create
            got = real_describe(**kw)
            ec2.create_security_group(
                GroupName=f"bakehouse-isolation-{estate['vpc']}",
                Description="other run",
                VpcId=estate["vpc"],
                TagSpecifications=[
                    {"ResourceType": "security-group", "Tags": [{"Key": "bakehouse:purpose", "Value": "isolation"}]}
                ],
            )
            return got
        return real_describe(**kw)

    monkeypatch.setattr(ec2, "describe_security_groups", racing)
    result = _run(estate)
    assert not any(s.failed for s in result.steps)
    found = real_describe(Filters=[{"Name": "tag:bakehouse:purpose", "Values": ["isolation"]}])["SecurityGroups"]
    assert len(found) == 1
    assert {s.name: s.detail for s in result.steps}["swap-security-groups"]["isolation_group"] == found[0]["GroupId"]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
@pytest.mark.parametrize("source", ["10.99.0.0/24", "sg"])
def test_the_isolation_group_admits_the_configured_forensic_source_and_nothing_else(estate, source):
    c = estate["clients"]
    if source == "sg":
        source = c.ec2.create_security_group(GroupName="forensics", Description="f", VpcId=estate["vpc"])["GroupId"]
    c.ssm.put_parameter(Name=FORENSIC_SOURCE_PARAMETER, Value=source, Type="String")
    result = _run(estate)
    group_id = {s.name: s.detail for s in result.steps}["swap-security-groups"]["isolation_group"]
    group = c.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    assert group["IpPermissionsEgress"] == []
    [rule] = group["IpPermissions"]
    assert rule["IpProtocol"] == "-1"
    assert [r["CidrIp"] for r in rule.get("IpRanges", [])] + [g["GroupId"] for g in rule.get("UserIdGroupPairs", [])] == [source]
    second = isolate(estate["request"], c, now=lambda: NOW, sleep=_no_sleep)
    assert not {s.name: s for s in second.steps}["swap-security-groups"].changed


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_forensic_source_that_is_neither_cidr_nor_group_fails_the_swap_and_the_stop_still_runs(estate):
    estate["clients"].ssm.put_parameter(Name=FORENSIC_SOURCE_PARAMETER, Value="0.0.0.0/0 everyone", Type="String")
    with pytest.raises(Exception, match="forensic-source"):
        _run(estate)
    assert _instance(estate)["State"]["Name"] in ("stopping", "stopped")


# --- the document's last step ----------------------------------------------------------------------------
def test_report_outcome_names_the_failed_steps_of_the_execution(estate, monkeypatch):
    ssm = estate["clients"].ssm
    execution = {
        "AutomationExecution": {
            "StepExecutions": [
                {"StepName": "RecordInstanceState", "StepStatus": "Success"},
                {"StepName": "CaptureMemory", "StepStatus": "Failed", "FailureMessage": "no avml in the image"},
                {"StepName": "StopInstance", "StepStatus": "TimedOut"},
            ]
        }
    }
    monkeypatch.setattr(ssm, "get_automation_execution", lambda **kw: execution, raising=False)
    request = IsolateRequest(
        **{**estate["request"].__dict__, "step": "report-outcome", "execution_id": "0d6f1c2e-1a2b-4c3d-8e9f-0a1b2c3d4e5f"}
    )
    result = isolate(request, estate["clients"], now=lambda: NOW, sleep=_no_sleep)
    assert result.steps[0].detail["failed"] == ["CaptureMemory", "StopInstance"]
    [page] = _messages(estate)
    assert page["failed_steps"] == {"CaptureMemory": "no avml in the image", "StopInstance": "TimedOut"}
