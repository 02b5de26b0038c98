"""Forced rebuilds in the documents: the Pipeline passes a RebuildToken to BuildImage, which records it on
the image (bakehouse:rebuild-token) and reuses only the image built for it; the base-image check takes
the forced schedule's time."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from handlers.base_image_check import SCHEDULED_TIME, rebuild_token
from handlers.built_image import TAG_REBUILD_TOKEN

AUTOMATION = Path(__file__).resolve().parents[2] / "automation"


def doc(stem: str) -> dict:
    return yaml.safe_load((AUTOMATION / f"{stem}.yaml").read_text())


def step(document: dict, name: str) -> dict:
    (found,) = [s for s in document["mainSteps"] if s["name"] == name]
    return found


def test_the_pipeline_takes_a_rebuild_token_defaulting_to_reuse_and_hands_it_to_the_build():
    pipeline = doc("pipeline")
    spec = pipeline["parameters"]["RebuildToken"]
    assert spec["default"] == ""
    assert re.fullmatch(spec["allowedPattern"], "") and re.fullmatch(spec["allowedPattern"], rebuild_token("t"))
    assert not re.fullmatch(spec["allowedPattern"], "'; rm -rf /")
    assert step(pipeline, "BuildImage")["inputs"]["RuntimeParameters"]["RebuildToken"] == "{{ RebuildToken }}"
    assert doc("build_image")["parameters"]["RebuildToken"]["allowedPattern"] == spec["allowedPattern"]


def test_the_built_image_records_its_rebuild_token_at_creation():
    [image] = [t for t in step(doc("build_image"), "CreateImage")["inputs"]["TagSpecifications"] if t["ResourceType"] == "image"]
    assert {"Key": TAG_REBUILD_TOKEN, "Value": "{{ RebuildToken }}"} in image["Tags"]


def test_the_reuse_lookup_and_the_output_both_match_the_token_and_pick_the_newest_image():
    build = doc("build_image")
    for name in ("CheckForExistingImage", "DescribeBuiltImage"):
        found = step(build, name)
        assert found["action"] == "aws:executeScript"
        assert "handlers.built_image import handler" in found["inputs"]["Script"]
        assert found["inputs"]["InputPayload"]["RebuildToken"] == "{{ RebuildToken }}"
        assert found["outputs"] == [{"Name": "ImageId", "Selector": "$.Payload.ImageId", "Type": "String"}]
    check = step(build, "CheckForExistingImage")
    assert check["isCritical"] is False and check["onFailure"] == "step:ReadMemoryCapturePins"
    assert build["outputs"] == ["DescribeBuiltImage.ImageId"]


def test_the_base_image_check_takes_the_forced_schedules_time_defaulting_to_the_base_check():
    check = doc("check_base_images")
    spec = check["parameters"]["ForcedRebuildAt"]
    assert spec["default"] == ""
    assert re.fullmatch(spec["allowedPattern"], "2022-03-22T18:59:43Z") and SCHEDULED_TIME.fullmatch("2022-03-22T18:59:43Z")
    assert not re.fullmatch(spec["allowedPattern"], "<aws.scheduler.scheduled-time>")
    payload = step(check, "StartPipelinesForChangedBases")["inputs"]["InputPayload"]
    assert payload["ForcedRebuildAt"] == "{{ ForcedRebuildAt }}"
