"""handlers.publish: latest + versioned history + approval tag, replay-safe."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from estate import naming
from handlers import publish as pub
from handlers.common import MalformedEvent
from tests.fakes import seed
from tests.fakes.seed import FAST_EC2_ENV, NoAwsCalls

REGION = "eu-west-1"


def golden_ami(ec2, name: str = "bakehouse-al2023-1", tags: dict[str, str] | None = None) -> str:
    """A factory image whose Inspector gate passed, as validation leaves it."""
    return seed.golden_ami(ec2, name, {pub.TAG_VERDICT: "PASS", **(tags or {})})


@pytest.fixture
def aws(monkeypatch):
    for key, value in FAST_EC2_ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION), boto3.client("ssm", region_name=REGION)


def _publish(ec2, ssm, image, family="al2023"):
    return pub.publish(pub.PublishRequest(image, family, "alice"), ec2=ec2, ssm=ssm)


def test_parameter_paths_match_estate_naming():
    assert pub.IMAGE_PARAMETER.format(family="al2023") == naming.image_parameter("al2023")
    assert pub.IMAGE_HISTORY_PARAMETER.format(family="al2023") == naming.image_history_parameter("al2023")


def test_publish_writes_latest_as_an_ec2_image_parameter(aws):
    ec2, ssm = aws
    image = golden_ami(ec2)
    _publish(ec2, ssm, image)
    parameter = ssm.get_parameter(Name="/bakehouse/images/al2023/latest")["Parameter"]
    assert (parameter["Value"], parameter["Type"], parameter["DataType"]) == (image, "String", "aws:ec2:image")


def test_publish_tags_the_ami_approved_by_the_approver(aws):
    ec2, ssm = aws
    image = golden_ami(ec2)
    _publish(ec2, ssm, image)
    tags = {t["Key"]: t["Value"] for t in ec2.describe_images(ImageIds=[image])["Images"][0]["Tags"]}
    assert tags[pub.TAG_APPROVED] == "true" and tags[pub.TAG_APPROVED_BY] == "alice"


def test_each_approval_adds_one_history_version(aws):
    ec2, ssm = aws
    first, second = golden_ami(ec2, "al2023-1"), golden_ami(ec2, "al2023-2")
    _publish(ec2, ssm, first)
    _publish(ec2, ssm, second)
    assert [(v, ami) for v, ami, _ in pub.history(ssm, "al2023")] == [(1, first), (2, second)]
    assert ssm.get_parameter(Name="/bakehouse/images/al2023/latest")["Parameter"]["Value"] == second


def test_replaying_a_publish_changes_nothing(aws):
    ec2, ssm = aws
    image = golden_ami(ec2)
    first = _publish(ec2, ssm, image)
    replay = _publish(ec2, ssm, image)
    assert first.changed == ("history", "latest", "tag")
    assert replay.changed == ()
    assert (replay.latest_version, replay.history_version) == (1, 1)
    assert len(pub.history(ssm, "al2023")) == 1


def test_a_half_done_publish_is_completed_on_retry(aws):
    ec2, ssm = aws
    image = golden_ami(ec2)
    # A previous attempt wrote the history and died before `latest`.
    ssm.put_parameter(Name="/bakehouse/images/al2023/history", Value=image, Type="String", DataType="aws:ec2:image")
    result = _publish(ec2, ssm, image)
    assert result.changed == ("latest", "tag")
    assert len(pub.history(ssm, "al2023")) == 1


def test_approving_an_older_image_again_is_recorded_but_latest_stays_on_the_newest(aws, monkeypatch):
    ec2, ssm = aws
    old, new = golden_ami(ec2, "al2023-1"), golden_ami(ec2, "al2023-2")
    created = {old: "2026-01-01T10:00:00.000Z", new: "2026-01-01T11:00:00.000Z"}
    monkeypatch.setattr(pub, "_created", lambda _ec2, image: created.get(image, ""))
    for image in (old, new, old):
        _publish(ec2, ssm, image)
    assert [ami for _, ami, _ in pub.history(ssm, "al2023")] == [old, new, old]
    assert ssm.get_parameter(Name="/bakehouse/images/al2023/latest")["Parameter"]["Value"] == new


def _tags(ec2, image):
    return {t["Key"]: t["Value"] for t in ec2.describe_images(ImageIds=[image])["Images"][0].get("Tags", [])}


@pytest.mark.parametrize("verdict", [None, "FAIL", "pending"])
def test_publish_requires_an_inspector_verdict_of_pass(aws, verdict):
    ec2, ssm = aws
    image = seed.golden_ami(ec2, tags={pub.TAG_VERDICT: verdict} if verdict else None)
    with pytest.raises(pub.ImageNotPublishable, match=f"{image}.*expected PASS"):
        _publish(ec2, ssm, image)
    assert ssm.describe_parameters()["Parameters"] == []
    assert pub.TAG_APPROVED not in _tags(ec2, image)


class _DiesOnLatest:
    """SSM that fails the write of `latest`: publish dies between the history and the pointer."""

    def __init__(self, ssm):
        self._ssm = ssm

    def __getattr__(self, name):
        return getattr(self._ssm, name)

    def put_parameter(self, **kwargs):
        if kwargs["Name"].endswith("/latest"):
            raise RuntimeError("throttled")
        return self._ssm.put_parameter(**kwargs)


def test_the_approval_tag_is_written_last_so_a_publish_that_died_leaves_the_image_unapproved(aws):
    ec2, ssm = aws
    image = golden_ami(ec2)
    with pytest.raises(RuntimeError):
        _publish(ec2, _DiesOnLatest(ssm), image)
    # handlers/distribute.py refuses an image without the approved tag: nothing half-published travels.
    assert pub.TAG_APPROVED not in _tags(ec2, image)
    assert _publish(ec2, ssm, image).changed == ("latest", "tag")


class _RacingSsm:
    """Between this publisher's read and write of `latest`, another publisher writes its image once."""

    def __init__(self, ssm, rival: str):
        self._ssm, self._rival, self._raced = ssm, rival, False

    def __getattr__(self, name):
        return getattr(self._ssm, name)

    def put_parameter(self, **kwargs):
        out = self._ssm.put_parameter(**kwargs)
        if kwargs["Name"].endswith("/latest") and not self._raced:
            self._raced = True  # the rival's write lands after ours, as a slower concurrent approval would
            self._ssm.put_parameter(**{**kwargs, "Value": self._rival})
        return out


def test_two_concurrent_approvals_of_one_family_leave_latest_on_the_newest(aws, monkeypatch):
    ec2, ssm = aws
    older, newer = golden_ami(ec2, "al2023-1"), golden_ami(ec2, "al2023-2")
    # moto stamps both within one second; EC2's CreationDate has milliseconds.
    created = {older: "2026-01-01T10:00:00.000Z", newer: "2026-01-01T11:00:00.000Z"}
    monkeypatch.setattr(pub, "_created", lambda _ec2, image: created.get(image, ""))
    _publish(ec2, _RacingSsm(ssm, rival=older), newer)
    assert ssm.get_parameter(Name="/bakehouse/images/al2023/latest")["Parameter"]["Value"] == newer
    _publish(ec2, ssm, older)  # the older approval finishing afterwards does not move it back
    assert ssm.get_parameter(Name="/bakehouse/images/al2023/latest")["Parameter"]["Value"] == newer


def test_publishing_an_unknown_image_fails_and_writes_nothing(aws):
    ec2, ssm = aws
    with pytest.raises(pub.ImageNotPublishable, match="ami-0123456789abcdef0"):
        _publish(ec2, ssm, "ami-0123456789abcdef0")
    assert ssm.describe_parameters()["Parameters"] == []


@pytest.mark.parametrize("tag,value", [("bakehouse:inspector-verdict", "FAIL"), ("bakehouse:vulnerable", "true")])
def test_an_image_that_failed_validation_or_is_quarantined_is_not_published(aws, tag, value):
    ec2, ssm = aws
    image = golden_ami(ec2, tags={tag: value})
    with pytest.raises(pub.ImageNotPublishable, match=image):
        _publish(ec2, ssm, image)
    assert ssm.describe_parameters()["Parameters"] == []
    assert pub.TAG_APPROVED not in {t["Key"] for t in ec2.describe_images(ImageIds=[image])["Images"][0]["Tags"]}


def test_tag_names_match_their_writers():
    from handlers import inspector_summary, rescan_feedback

    assert pub.TAG_VERDICT == inspector_summary.TAG_VERDICT
    assert pub.TAG_VULNERABLE == rescan_feedback.TAG_VULNERABLE


def test_publishing_a_deregistered_image_fails(aws):
    ec2, ssm = aws
    image = golden_ami(ec2)
    ec2.deregister_image(ImageId=image)
    with pytest.raises(pub.ImageNotPublishable, match=image):
        _publish(ec2, ssm, image)


@pytest.mark.parametrize(
    "event,problem",
    [
        (None, "expected an object"),
        ({"Family": "al2023"}, "ImageId"),
        ({"ImageId": "ami-xyz", "Family": "al2023"}, "ImageId"),
        ({"ImageId": "ami-0123456789abcdef0", "Family": "Bad Family!"}, "Family"),
    ],
)
def test_malformed_event_is_rejected_before_any_aws_call(monkeypatch, event, problem):
    monkeypatch.setattr(pub, "client", NoAwsCalls("client"))
    with pytest.raises(MalformedEvent, match=problem):
        pub.handler(event, None)


def test_handler_returns_the_step_output(aws, monkeypatch):
    ec2, ssm = aws
    image = golden_ami(ec2)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    out = pub.handler({"ImageId": image, "Family": "al2023"}, None)
    assert out["LatestParameter"] == "/bakehouse/images/al2023/latest" and out["Changed"] == ["history", "latest", "tag"]
