"""The fleet report: instances past the maximum lifetime or off the latest approved image are listed
and announced; a fleet that is all fresh and current is not announced."""

from __future__ import annotations

import datetime as dt

import boto3
import pytest
from moto import mock_aws

from handlers import fleet_report as fr
from handlers.common import MalformedEvent
from tests.fakes.seed import FAST_EC2_ENV, golden_ami

REGION = "eu-west-1"
WEEK = 604800
NOW = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)


def inst(iid: str, image: str, days: float, family: str | None = "al2023") -> fr.Instance:
    return fr.Instance(iid, image, NOW - dt.timedelta(days=days), family)


def test_instance_older_than_the_lifetime_is_listed_with_its_age():
    result = fr.plan([inst("i-old", "ami-new", 8), inst("i-fresh", "ami-new", 6)], {"al2023": "ami-new"}, WEEK, NOW, "dev")
    assert [f.instance_id for f in result.findings] == ["i-old"]
    assert "running 8 days, longer than the 7-day lifetime" in result.findings[0].reasons[0]
    assert result.checked == 2


def test_instance_on_a_superseded_image_is_listed_naming_the_approved_one():
    result = fr.plan([inst("i-1", "ami-old", 1)], {"al2023": "ami-new"}, WEEK, NOW, "prod")
    [finding] = result.findings
    assert finding.reasons == ("image ami-old is not the latest approved al2023 image (ami-new)",)


def test_instance_without_a_family_passes_only_on_an_approved_image():
    result = fr.plan(
        [inst("i-ok", "ami-new", 1, None), inst("i-odd", "ami-foreign", 1, None)], {"al2023": "ami-new"}, WEEK, NOW, "dev"
    )
    assert [(f.instance_id, f.reasons) for f in result.findings] == [
        ("i-odd", ("image ami-foreign is not an approved image (no image family)",))
    ]


def test_settings_refuse_a_lifetime_auto_scaling_would_refuse():
    env = {"FLEET_ENV": "dev", "TOPIC_ARN": "arn:aws:sns:eu-west-1:111111111111:t", "MAX_LIFETIME_SECONDS": "3600"}
    with pytest.raises(MalformedEvent, match="outside 86400-31536000"):
        fr.Settings.parse(env)
    with pytest.raises(MalformedEvent, match="TOPIC_ARN"):
        fr.Settings.parse({**env, "TOPIC_ARN": ""})


@pytest.fixture
def account(monkeypatch):
    # Two golden images of the factory's own, not moto's stock ones (whether moto loads those depends
    # on settings an earlier test may have made).
    for key, value in FAST_EC2_ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        ec2, ssm, sns, sqs = (boto3.client(s, region_name=REGION) for s in ("ec2", "ssm", "sns", "sqs"))
        old, new = golden_ami(ec2, "bakehouse-al2023-1"), golden_ami(ec2, "bakehouse-al2023-2")
        ssm.put_parameter(Name="/bakehouse/dev/ami/al2023", Type="String", Value=new)
        topic = sns.create_topic(Name="security")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        yield ec2, ssm, sns, sqs, queue, topic, old, new


def launch(ec2, image: str, tags: dict[str, str]) -> str:
    return ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )["Instances"][0]["InstanceId"]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_report_reads_the_envs_approved_image_and_announces_app_and_catalog_instances(account):
    ec2, ssm, sns, sqs, queue, topic, old, new = account
    app_old = launch(ec2, old, {"bakehouse:launched-from": "app-template"})
    catalog_new = launch(ec2, new, {"bakehouse:family": "al2023"})
    stopped = launch(ec2, old, {"bakehouse:family": "al2023"})
    ec2.stop_instances(InstanceIds=[stopped])
    gone = launch(ec2, old, {"bakehouse:family": "al2023"})
    ec2.terminate_instances(InstanceIds=[gone])
    settings = fr.Settings("dev", WEEK, topic, app_family="al2023")
    result = fr.report(settings, ec2=ec2, ssm=ssm, sns=sns, now=dt.datetime.now(dt.UTC))
    assert sorted(f.instance_id for f in result.findings) == sorted([app_old, stopped])
    assert catalog_new not in {f.instance_id for f in result.findings} and result.checked == 3
    [message] = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert app_old in message["Body"] and stopped in message["Body"] and gone not in message["Body"]


def test_report_past_the_lifetime_lists_even_current_images(account):
    ec2, ssm, sns, sqs, queue, topic, old, new = account
    current = launch(ec2, new, {"bakehouse:family": "al2023"})
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
    result = fr.report(fr.Settings("dev", WEEK, topic), ec2=ec2, ssm=ssm, sns=sns, now=later)
    assert [f.instance_id for f in result.findings] == [current]


def test_a_fresh_current_fleet_is_not_announced(account):
    ec2, ssm, sns, sqs, queue, topic, old, new = account
    launch(ec2, new, {"bakehouse:family": "al2023"})
    result = fr.report(fr.Settings("dev", WEEK, topic), ec2=ec2, ssm=ssm, sns=sns, now=dt.datetime.now(dt.UTC))
    assert result.findings == [] and "Messages" not in sqs.receive_message(QueueUrl=queue)


def test_a_publish_that_fails_names_the_topic(account):
    ec2, ssm, sns, sqs, queue, topic, old, new = account
    launch(ec2, old, {"bakehouse:family": "al2023"})
    missing = topic.replace("security", "absent")
    with pytest.raises(fr.FleetReportFailed, match="absent"):
        fr.report(fr.Settings("dev", WEEK, missing), ec2=ec2, ssm=ssm, sns=sns, now=dt.datetime.now(dt.UTC))


def test_handler_reads_its_settings_from_the_environment_not_the_event(monkeypatch):
    monkeypatch.delenv("FLEET_ENV", raising=False)
    with pytest.raises(MalformedEvent, match="FLEET_ENV"):
        fr.handler({"FLEET_ENV": "prod", "MAX_LIFETIME_SECONDS": "86400", "TOPIC_ARN": "x"}, None)
