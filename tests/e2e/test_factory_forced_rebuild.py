"""A forced rebuild end to end: Bakehouse-Pipeline run with a rebuild token (what the forced-rebuild
schedule's check passes, handlers/base_image_check.py) builds a new image on the same base and commit
and publishes it; a replay of the same token builds nothing; a later run without a token reuses the
newest image of that base and commit, never the older one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from handlers.base_image_check import rebuild_token
from handlers.built_image import TAG_REBUILD_TOKEN
from handlers.common import tags_to_dict
from tests.e2e import _seams
from tests.e2e._factory import RecordingApprover, make_runner, pipeline_parameters, region_keys
from tests.e2e._world import BundleShell, World, seed
from tests.e2e.runner import Execution, moto_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
FAMILY = "al2023-base"
REUSE_STEPS = ["ResolveBaseImage", "DescribeBaseImage", "CheckForExistingImage", "DescribeBuiltImage"]


@dataclass
class Forced:
    world: World
    first: Execution
    forced: Execution
    replay: Execution
    plain: Execution
    images_after_forced: list[str]
    images_after_replay: list[str]
    token: str


def own_images(world: World) -> list[str]:
    return sorted(
        i["ImageId"]
        for i in world.client("ec2").describe_images(
            Owners=["self"], Filters=[{"Name": "tag:bakehouse:family", "Values": [FAMILY]}]
        )["Images"]
    )


@pytest.fixture(scope="module")
def forced() -> Iterator[Forced]:
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        world = seed(url)
        keys = region_keys(world)
        seams = _seams.install(mp, world)
        product_id, _ = seams.seed_catalog_product(FAMILY)
        runner = make_runner(world, BundleShell(world), RecordingApprover())
        params = pipeline_parameters(world, keys, product_id, family=FAMILY)
        token = rebuild_token("2026-11-30T03:00:00Z")
        first = runner.run("Bakehouse-Pipeline", params)
        again = runner.run("Bakehouse-Pipeline", {**params, "RebuildToken": token})
        after_forced = own_images(world)
        replay = runner.run("Bakehouse-Pipeline", {**params, "RebuildToken": token})
        after_replay = own_images(world)
        plain = runner.run("Bakehouse-Pipeline", params)
        yield Forced(world, first, again, replay, plain, after_forced, after_replay, token)


def built(execution: Execution) -> str:
    return execution.outputs["DescribeBuiltImage.ImageId"]


def test_a_new_rebuild_token_builds_and_publishes_a_new_image_on_the_same_base_and_commit(forced):
    assert forced.first.status == "Success", forced.first.failure
    assert forced.forced.status == "Success", forced.forced.failure
    assert built(forced.forced) != built(forced.first)
    assert forced.forced.children[0].step_names != REUSE_STEPS  # it launched a build instance
    tags = tags_to_dict(forced.world.client("ec2").describe_images(ImageIds=[built(forced.forced)])["Images"][0]["Tags"])
    assert tags[TAG_REBUILD_TOKEN] == forced.token
    assert tags["bakehouse:source-ami"] == forced.world.base_ami and tags["bakehouse:commit"] == forced.world.commit
    ssm = forced.world.client("ssm")
    assert ssm.get_parameter(Name=f"/bakehouse/images/{FAMILY}/latest")["Parameter"]["Value"] == built(forced.forced)
    # approved from the settings like any other run (dev, autoApprove), not by the token
    assert [c.document_name for c in forced.forced.children][2] == "Bakehouse-ApproveImage"


def test_a_replay_of_the_same_token_builds_nothing(forced):
    assert forced.replay.status == "Success", forced.replay.failure
    assert built(forced.replay) == built(forced.forced)
    assert forced.replay.children[0].step_names == REUSE_STEPS
    assert forced.images_after_replay == forced.images_after_forced


def test_a_run_without_a_token_reuses_the_newest_image_of_the_base_and_commit(forced):
    assert forced.plain.status == "Success", forced.plain.failure
    assert forced.plain.children[0].step_names == REUSE_STEPS
    assert built(forced.plain) == built(forced.forced) != built(forced.first)
    assert own_images(forced.world) == forced.images_after_replay
