"""The isolation playbook against moto: every step's effect, the manifest, replays, a missing instance."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import boto3
import pytest
from moto import mock_aws

from handlers.common import MalformedEvent
from tests.handlers._sessions import core_session, fast_default_session
from handlers.isolate import (
    CAPTURE_DOCUMENT,
    REVOKE_POLICY,
    STEPS,
    TAG_FINDING,
    Clients,
    InstanceNotFound,
    IsolateRequest,
    handler,
    isolate,
)

REGION = "eu-west-1"
BUCKET = "bakehouse-evidence-111111111111-eu-west-1"
FINDING = "6ec9f8a2b3c4d5e6f708192a3b4c5d6e"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


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
        ami = ec2.register_image(Name="app-image", RootDeviceName="/dev/xvda", BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}])["ImageId"]
        clients.iam.create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                    "Action": "sts:AssumeRole"}]}))
        profile = clients.iam.create_instance_profile(InstanceProfileName="app")["InstanceProfile"]
        clients.iam.add_role_to_instance_profile(InstanceProfileName="app", RoleName="app")
        tg = clients.elbv2.create_target_group(Name="app", Protocol="HTTP", Port=80, VpcId=vpc,
                                               TargetType="instance")["TargetGroups"][0]["TargetGroupArn"]
        # Groups given on the interface, not the instance: moto reports an interface's groups as the
        # union with the instance-level groups, which would hide a real replacement.
        instance_id = ec2.run_instances(
            ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
            NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [app_sg]}],
            IamInstanceProfile={"Arn": profile["Arn"]})["Instances"][0]["InstanceId"]
        template = ec2.create_launch_template(LaunchTemplateName="app", LaunchTemplateData={
            "ImageId": ami, "InstanceType": "t3.micro"})["LaunchTemplate"]["LaunchTemplateId"]
        clients.autoscaling.create_auto_scaling_group(
            AutoScalingGroupName="app", MinSize=0, MaxSize=2, DesiredCapacity=0, VPCZoneIdentifier=subnet,
            LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"})
        clients.autoscaling.attach_instances(AutoScalingGroupName="app", InstanceIds=[instance_id])
        clients.elbv2.register_targets(TargetGroupArn=tg, Targets=[{"Id": instance_id, "Port": 80}])
        clients.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        topic = clients.sns.create_topic(Name="bakehouse-security")["TopicArn"]
        sqs = session.client("sqs")
        queue = sqs.create_queue(QueueName="security-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        clients.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn,
                              Attributes={"RawMessageDelivery": "true"})
        request = IsolateRequest(instance_id, FINDING, BUCKET, topic)
        yield {"clients": clients, "request": request, "vpc": vpc, "tg": tg, "app_sg": app_sg, "sqs": sqs,
               "queue": queue, "ami": ami, "subnet": subnet}


def _run(estate):
    return isolate(estate["request"], estate["clients"], now=lambda: NOW, sleep=_no_sleep)


def _instance(estate):
    ec2 = estate["clients"].ec2
    return ec2.describe_instances(InstanceIds=[estate["request"].instance_id])["Reservations"][0]["Instances"][0]


def _messages(estate):
    got = estate["sqs"].receive_message(QueueUrl=estate["queue"], MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


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
    ec2.attach_network_interface(NetworkInterfaceId=extra["NetworkInterfaceId"],
                                 InstanceId=estate["request"].instance_id, DeviceIndex=1)
    _run(estate)
    enis = _instance(estate)["NetworkInterfaces"]
    assert len(enis) == 2
    groups = {g["GroupId"] for eni in enis for g in ec2.describe_network_interfaces(
        NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"][0]["Groups"]}
    assert len(groups) == 1 and estate["app_sg"] not in groups
    isolation = ec2.describe_security_groups(GroupIds=list(groups))["SecurityGroups"][0]
    assert isolation["IpPermissions"] == [] and isolation["IpPermissionsEgress"] == []
    assert isolation["VpcId"] == estate["vpc"]


def test_isolation_group_is_created_once_per_vpc_and_reused(estate):
    ec2 = estate["clients"].ec2
    other = ec2.run_instances(ImageId=estate["ami"], MinCount=1, MaxCount=1, SubnetId=estate["subnet"],
                              SecurityGroupIds=[estate["app_sg"]])["Instances"][0]["InstanceId"]
    _run(estate)
    isolate(IsolateRequest(other, "second-finding", BUCKET, estate["request"].topic_arn),
            estate["clients"], now=lambda: NOW, sleep=_no_sleep)
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


def test_isolation_deregisters_the_instance_from_target_groups(estate):
    _run(estate)
    health = estate["clients"].elbv2.describe_target_health(TargetGroupArn=estate["tg"])["TargetHealthDescriptions"]
    assert estate["request"].instance_id not in [h["Target"]["Id"] for h in health]


def test_every_volume_is_snapshotted_and_tagged_with_the_finding(estate):
    _run(estate)
    ec2 = estate["clients"].ec2
    volumes = {m["Ebs"]["VolumeId"] for m in _instance(estate)["BlockDeviceMappings"]}
    snaps = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": f"tag:{TAG_FINDING}", "Values": [FINDING]}])
    assert volumes and {s["VolumeId"] for s in snaps["Snapshots"]} == volumes
    assert len(snaps["Snapshots"]) == len(volumes)


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


def test_the_instance_role_denies_sessions_issued_before_isolation(estate):
    _run(estate)
    doc = estate["clients"].iam.get_role_policy(RoleName="app", PolicyName=REVOKE_POLICY)["PolicyDocument"]
    statement = doc["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"DateLessThan": {"aws:TokenIssueTime": "2026-11-23T12:00:00Z"}}


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


def test_a_second_run_changes_nothing(estate):
    first = _run(estate)
    assert first.changed

    def snapshot_of_state():
        c = estate["clients"]
        return (
            _instance(estate)["State"]["Name"],
            sorted(s["SnapshotId"] for s in c.ec2.describe_snapshots(
                Filters=[{"Name": "tag-key", "Values": [TAG_FINDING]}])["Snapshots"]),
            sorted(g["GroupId"] for g in c.ec2.describe_security_groups()["SecurityGroups"]),
            len(c.ssm.list_commands()["Commands"]),
            c.iam.get_role_policy(RoleName="app", PolicyName=REVOKE_POLICY)["PolicyDocument"],
            [v["VersionId"] for v in c.s3.list_object_versions(Bucket=BUCKET).get("Versions", [])],
        )

    before = snapshot_of_state()
    _messages(estate)
    second = isolate(estate["request"], estate["clients"], now=lambda: datetime(2027, 1, 1, tzinfo=timezone.utc),
                     sleep=_no_sleep)
    assert not second.changed, [s.name for s in second.steps if s.changed]
    assert snapshot_of_state() == before
    assert _messages(estate) == []


def test_a_missing_instance_fails_naming_it_and_changes_nothing(estate):
    missing = IsolateRequest("i-0123456789abcdef0", FINDING, BUCKET, estate["request"].topic_arn)
    with pytest.raises(InstanceNotFound, match="i-0123456789abcdef0"):
        isolate(missing, estate["clients"], now=lambda: NOW, sleep=_no_sleep)
    c = estate["clients"]
    assert "Contents" not in c.s3.list_objects_v2(Bucket=BUCKET)
    assert c.ec2.describe_security_groups(Filters=[{"Name": "tag:bakehouse:purpose", "Values": ["isolation"]}])[
        "SecurityGroups"] == []
    assert c.ec2.describe_snapshots(Filters=[{"Name": "tag-key", "Values": [TAG_FINDING]}])["Snapshots"] == []
    assert _messages(estate) == []


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


def test_the_manifest_of_a_step_by_step_run_records_what_aws_shows(estate):
    request = estate["request"]
    for name in STEPS:
        isolate(IsolateRequest(request.instance_id, FINDING, BUCKET, request.topic_arn, step=name),
                estate["clients"], now=lambda: NOW, sleep=_no_sleep)
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
        IsolateRequest.parse({"InstanceId": "i-0123456789abcdef0", "FindingId": FINDING, "EvidenceBucket": BUCKET,
                              "TopicArn": "arn:aws:sns:eu-west-1:123456789012:bakehouse-security", "Step": "reboot"})
