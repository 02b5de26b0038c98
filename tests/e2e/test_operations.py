"""The rescan end to end: Bakehouse-RescanImages run step by step by tests/e2e/runner.py against a moto
server with the real handlers (tests/e2e/_rescan_world.py), and what its first run leaves: each image
judged once, verdicts recorded, the vulnerable one fed back to the Pipeline and the catalog."""

from __future__ import annotations

import json

import pytest

from handlers.catalog import family_rule
from handlers.common import tags_to_dict
from handlers.publish import history
from handlers.rescan_feedback import NO_IMAGE
from tests.e2e._rescan_world import ROLE, rescanned, scan_instances, world
from tests.fakes.operations import document_parameters

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["rescanned", "world"]  # the module's fixtures


def test_rescan_document_scans_each_unique_ami_once_and_cleans_up(world, rescanned):
    execution, images, legacy = rescanned
    assert execution.status == "Success", execution.failure
    # ubuntu runs where Inspector covers it (prod): judged from those findings, no scan instance.
    assert execution.outputs["DiscoverImages.Count"] == 2
    scanned = scan_instances(world, ["pending", "running", "stopping", "stopped", "terminated"])
    assert sorted(i["ImageId"] for i in scanned) == sorted([images["al2023"], legacy])
    assert scan_instances(world, ["pending", "running", "stopping", "stopped"]) == []
    # One batch of two: launch, collect, clean up.
    assert execution.step_names.count("LaunchScanBatch") == 1 and execution.step_names[-1] == "TerminateScanInstances"


def test_rescan_document_records_verdicts_and_feeds_the_vulnerable_ami_back(world, rescanned):
    execution, images, legacy = rescanned
    ec2 = world.estate.client("ec2")
    tags = {
        name: tags_to_dict(ec2.describe_images(ImageIds=[i])["Images"][0]["Tags"])
        for name, i in {**images, "legacy": legacy}.items()
    }
    assert tags["al2023"]["bakehouse:cves-critical"] == "1" and tags["al2023"]["bakehouse:vulnerable"] == "true"
    assert tags["ubuntu"]["bakehouse:cves-medium"] == "1" and "bakehouse:vulnerable" not in tags["ubuntu"]
    assert tags["ubuntu"]["bakehouse:ran-in"] == "prod" and tags["legacy"]["bakehouse:ran-in"] == "prod"
    assert "bakehouse:ran-in" not in tags["al2023"]
    assert history(world.estate.client("ssm"), "al2023")[-1][2] == (f"quarantined-{images['al2023']}",)
    [start] = world.automation.calls_to("start_automation_execution")
    params = start["Parameters"]
    assert params["Family"] == ["al2023"] and params["AutomationAssumeRole"] == [ROLE]
    required = {n for n, spec in document_parameters("Bakehouse-Pipeline").items() if "default" not in spec}
    assert required <= set(params), required - set(params)
    notices = [m for m in world.estate.messages() if m.get("image_id") == images["al2023"]]
    assert notices and notices[0]["cves"] == ["CVE-2026-4242"]
    # The deployed rescan repins the quarantined family's catalog rule (no good al2023 image is left),
    # and leaves the other family's rule alone.
    rules = json.loads(world.catalog.describe_constraint(Id=world.constraint_id)["ConstraintParameters"])["Rules"]
    assert NO_IMAGE in json.dumps(rules[family_rule("al2023")]) and images["al2023"] not in json.dumps(rules)
    assert images["ubuntu"] in json.dumps(rules[family_rule("ubuntu")])
    keys = [o["Key"] for o in world.estate.client("s3").list_objects_v2(Bucket=world.estate.bucket)["Contents"]]
    assert sum(k.endswith(".json") and "/ami-" in k for k in keys) == 3
