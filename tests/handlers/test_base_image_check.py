"""handlers.base_image_check: the Pipeline starts for a family only when AWS's public parameter names a
base other than the one its published image was built from; a repeat the same day reuses the client
token; a family that cannot start fails the run, named."""

from __future__ import annotations

import json
from datetime import date

import boto3
import pytest
from moto import mock_aws

from handlers import base_image_check as bic
from handlers.common import MalformedEvent
from handlers.rescan_feedback import BASE_IMAGE_PARAMETERS, RebuildNotPossible
from tests.e2e._world import set_public_parameter
from tests.fakes.operations import FakeAutomation, seed_factory_settings
from tests.fakes.seed import FAST_EC2_ENV

REGION = "eu-west-1"
SCRIPTS = "bakehouse-scripts-test"
ROLE = "arn:aws:iam::123456789012:role/BakehouseFactoryAutomation"
DAY = date(2026, 11, 30)


class Estate:
    def __init__(self):
        self.ssm = boto3.client("ssm", region_name=REGION)
        self.ec2 = boto3.client("ec2", region_name=REGION)
        self.s3 = boto3.client("s3", region_name=REGION)
        self.s3.create_bucket(Bucket=SCRIPTS, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.bundle = seed_factory_settings(self.ssm, self.s3, SCRIPTS)
        settings = json.loads(self.ssm.get_parameter(Name=bic.SETTINGS_PARAMETER)["Parameter"]["Value"])
        engines = settings.get("engines") or {}
        self.families = {f: b for f, b in settings["families"].items() if engines.get(f, "ssm") == "ssm"}
        self.automation = FakeAutomation(self.ssm, {"Bakehouse-Pipeline"})

    def image(self, name: str) -> str:
        return self.ec2.register_image(
            Name=name, RootDeviceName="/dev/xvda", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}]
        )["ImageId"]

    def publish_base(self, base: str) -> str:
        ami = self.image(f"public-{base}-{len(self.ec2.describe_images(Owners=['self'])['Images'])}")
        set_public_parameter(BASE_IMAGE_PARAMETERS[base], ami, REGION)
        return ami

    def built_from(self, family: str, base_ami: str) -> str:
        golden = self.image(f"bakehouse-{family}-{base_ami}")
        self.ec2.create_tags(Resources=[golden], Tags=[{"Key": "bakehouse:source-ami", "Value": base_ami}])
        self.ssm.put_parameter(Name=f"/bakehouse/images/{family}/latest", Type="String", Value=golden, Overwrite=True)
        return golden

    def run(self, day: date = DAY) -> dict:
        return bic.execute(bic.plan(self.ssm, self.ec2), self.ssm, self.s3, self.automation, ROLE, day)

    def starts(self) -> list[dict]:
        return self.automation.calls_to("start_automation_execution")


@pytest.fixture
def estate(monkeypatch):
    for key, value in FAST_EC2_ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield Estate()


def test_the_pipeline_starts_only_for_the_family_whose_base_changed(estate):
    assert estate.families, "the deployed settings name no family the Pipeline builds"
    bases = {base: estate.publish_base(base) for base in set(estate.families.values())}
    for family, base in estate.families.items():
        estate.built_from(family, bases[base])
    changed_family, changed_base = sorted(estate.families.items())[0]
    new = estate.publish_base(changed_base)
    result = estate.run()
    changed = {f for f, b in estate.families.items() if b == changed_base}
    assert set(result["Started"]) == changed and changed_family in changed
    [start, *_] = [s for s in estate.starts() if s["Parameters"]["Family"] == [changed_family]]
    assert start["DocumentName"] == "Bakehouse-Pipeline"
    assert start["Parameters"]["BaseImageParameter"] == [BASE_IMAGE_PARAMETERS[changed_base]]
    assert start["Parameters"]["ScriptsVersionId"] == [estate.bundle]
    assert result["Checks"][changed_family]["current"] == new


def test_an_unchanged_base_starts_nothing(estate):
    for family, base in estate.families.items():
        estate.built_from(family, estate.publish_base(base))
    result = estate.run()
    assert result["Started"] == {} and estate.starts() == []
    assert {c["reason"] for c in result["Checks"].values()} == {"base unchanged"}


def test_a_family_never_published_waits_for_its_release(estate):
    for base in set(estate.families.values()):
        estate.publish_base(base)
    assert estate.run()["Started"] == {} and estate.starts() == []


def test_a_check_repeated_the_same_day_starts_nothing_twice(estate):
    for family, base in estate.families.items():
        estate.built_from(family, estate.publish_base(base))
    for base in set(estate.families.values()):
        estate.publish_base(base)
    assert set(estate.run()["Started"]) == set(estate.families)
    estate.run()
    tokens = [s["ClientToken"] for s in estate.starts()]
    assert len(tokens) == 2 * len(estate.families) and len(set(tokens)) == len(estate.families)
    estate.run(day=date(2026, 12, 1))  # still not built a day later: asked again
    assert len({s["ClientToken"] for s in estate.starts()}) == 2 * len(estate.families)


def test_a_family_that_cannot_start_fails_the_run_by_name(estate):
    for family, base in estate.families.items():
        estate.built_from(family, estate.publish_base(base))
    for base in set(estate.families.values()):
        estate.publish_base(base)
    estate.s3.delete_object(Bucket=SCRIPTS, Key="provisioning/bundle.tar.gz")
    with pytest.raises(RebuildNotPossible, match="could not start the Pipeline for") as err:
        estate.run()
    assert all(f in str(err.value) for f in estate.families)


def test_a_malformed_event_is_refused_before_any_call():
    with pytest.raises(MalformedEvent, match="PipelineRoleArn"):
        bic.handler({"PipelineRoleArn": "me"}, None)


TICK = "2026-11-30T03:00:00Z"


def forced(estate, at: str = TICK) -> dict:
    return bic.execute(bic.plan_forced(estate.ssm, estate.ec2, at), estate.ssm, estate.s3, estate.automation, ROLE, DAY)


def test_a_forced_rebuild_starts_every_published_family_with_a_token_from_the_scheduled_time(estate):
    for family, base in estate.families.items():
        estate.built_from(family, estate.publish_base(base))  # bases unchanged: the check alone starts nothing
    result = forced(estate)
    assert set(result["Started"]) == set(estate.families)
    tokens = {s["Parameters"]["Family"][0]: s["Parameters"]["RebuildToken"] for s in estate.starts()}
    assert set(tokens) == set(estate.families)
    # one token per tick, recorded by BuildImage on the image it builds (bakehouse:rebuild-token)
    assert {tuple(t) for t in tokens.values()} == {(bic.rebuild_token(TICK),)}
    assert all(s["DocumentName"] == "Bakehouse-Pipeline" for s in estate.starts())


def test_a_forced_tick_delivered_twice_starts_each_family_once_and_a_new_tick_again(estate):
    for family, base in estate.families.items():
        estate.built_from(family, estate.publish_base(base))
    forced(estate)
    forced(estate)  # Scheduler retried the same tick: same client tokens, so SSM starts nothing new
    tokens = [s["ClientToken"] for s in estate.starts()]
    assert len(tokens) == 2 * len(estate.families) and len(set(tokens)) == len(estate.families)
    forced(estate, "2026-12-07T03:00:00Z")
    assert len({s["ClientToken"] for s in estate.starts()}) == 2 * len(estate.families)
    assert len({tuple(s["Parameters"]["RebuildToken"]) for s in estate.starts()}) == 2


def test_a_forced_rebuild_leaves_a_family_never_published_to_its_release(estate):
    for base in set(estate.families.values()):
        estate.publish_base(base)
    assert forced(estate)["Started"] == {} and estate.starts() == []


def test_the_base_image_check_passes_no_rebuild_token_so_the_build_may_reuse(estate):
    for family, base in estate.families.items():
        estate.built_from(family, estate.publish_base(base))
    for base in set(estate.families.values()):
        estate.publish_base(base)
    estate.run()
    assert estate.starts() and all("RebuildToken" not in s["Parameters"] for s in estate.starts())


@pytest.mark.parametrize("at", ["yesterday", "2026-11-30 03:00:00", 7])
def test_a_malformed_scheduled_time_is_refused_before_any_call(at):
    with pytest.raises(MalformedEvent, match="ForcedRebuildAt"):
        bic.handler({"PipelineRoleArn": ROLE, "ForcedRebuildAt": at}, None)
