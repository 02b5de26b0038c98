"""handlers.factory_cleanup: a failed run's instances and images, found by the execution tag they
were created with, removed; nothing of another run touched; a second cleanup does nothing."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from handlers import factory_cleanup as fc
from handlers.common import MalformedEvent
from tests.fakes.seed import FAST_EC2_ENV

REGION = "eu-west-1"
RUN = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
OTHER = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def ec2(monkeypatch):
    for key, value in FAST_EC2_ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def base_image(ec2) -> str:
    return ec2.register_image(
        Name="base", RootDeviceName="/dev/xvda", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}]
    )["ImageId"]


def launch(ec2, tag_key: str, execution: str) -> str:
    return ec2.run_instances(
        ImageId=base_image(ec2),
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": tag_key, "Value": execution}]}],
    )["Instances"][0]["InstanceId"]


def image_of(ec2, instance: str, execution: str) -> str:
    return ec2.create_image(
        InstanceId=instance,
        Name=f"bakehouse-{execution}",
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": fc.TAG_BUILD_EXECUTION, "Value": execution}]}],
    )["ImageId"]


def state(ec2, instance: str) -> str:
    return ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_a_failed_build_loses_its_instance_its_image_and_the_images_snapshots(ec2):
    instance = launch(ec2, fc.TAG_BUILD_EXECUTION, RUN)
    image = image_of(ec2, instance, RUN)
    snapshots = [m["Ebs"]["SnapshotId"] for m in ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"]]
    result = fc.execute(fc.plan(ec2, fc.TAG_BUILD_EXECUTION, RUN), ec2)
    assert result["TerminatedInstances"] == [instance] and result["DeregisteredImages"] == [image]
    assert state(ec2, instance) == "terminated"
    assert ec2.describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [image]}])["Images"] == []
    assert snapshots and not ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": snapshots}])["Snapshots"]


def test_another_runs_instance_and_image_are_left_alone(ec2):
    mine, theirs = launch(ec2, fc.TAG_BUILD_EXECUTION, RUN), launch(ec2, fc.TAG_BUILD_EXECUTION, OTHER)
    their_image = image_of(ec2, theirs, OTHER)
    fc.execute(fc.plan(ec2, fc.TAG_BUILD_EXECUTION, RUN), ec2)
    assert state(ec2, mine) == "terminated" and state(ec2, theirs) == "running"
    assert ec2.describe_images(ImageIds=[their_image])["Images"][0]["State"] == "available"


def test_validation_cleanup_terminates_its_instance_and_never_deregisters_the_image_under_test(ec2):
    built = launch(ec2, fc.TAG_BUILD_EXECUTION, OTHER)
    image = image_of(ec2, built, OTHER)
    tester = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": fc.TAG_VALIDATION_EXECUTION, "Value": RUN}, {"Key": fc.TAG_BUILD_EXECUTION, "Value": OTHER}],
            }
        ],
    )["Instances"][0]
    cleanup = fc.plan(ec2, fc.TAG_VALIDATION_EXECUTION, RUN)
    assert cleanup.instances == (tester["InstanceId"],) and cleanup.images == ()
    fc.execute(cleanup, ec2)
    assert state(ec2, tester["InstanceId"]) == "terminated"
    assert ec2.describe_images(ImageIds=[image])["Images"][0]["State"] == "available"


def test_a_second_cleanup_finds_nothing_left(ec2):
    image_of(ec2, launch(ec2, fc.TAG_BUILD_EXECUTION, RUN), RUN)
    fc.execute(fc.plan(ec2, fc.TAG_BUILD_EXECUTION, RUN), ec2)
    again = fc.plan(ec2, fc.TAG_BUILD_EXECUTION, RUN)
    assert (again.instances, again.images, again.snapshots) == ((), (), ())


@pytest.mark.parametrize(
    "event, problem",
    [
        ({"Tag": "Name", "ExecutionId": RUN}, "Tag is 'Name'"),
        ({"Tag": fc.TAG_BUILD_EXECUTION, "ExecutionId": "*"}, "ExecutionId is '*'"),
        ({"Tag": fc.TAG_BUILD_EXECUTION}, "ExecutionId is None"),
    ],
)
def test_a_malformed_event_is_refused_before_any_call(event, problem):
    with pytest.raises(MalformedEvent, match=problem):
        fc.handler(event, None)
