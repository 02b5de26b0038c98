"""The rescan run again in a world the first rescan left (tests/e2e/_rescan_world.py): a failing step
still terminates the scan instances, and a published replacement gets the quarantined image deprecated.
A world apart from test_operations.py's, so its reads never see these runs."""

from __future__ import annotations

import pytest

from handlers.publish import PublishRequest, publish
from tests.e2e._rescan_world import PROD, rescan_parameters, rescanned, scan_instances, world
from tests.fakes.seed import golden_ami

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["rescanned", "world"]  # the module's fixtures


def test_rescan_document_terminates_scan_instances_when_a_step_fails(world, rescanned):
    # An evidence bucket without a customer-managed key: the summary refuses to write, collect fails
    # (with nothing judged in place, so every image has a scan instance running when it does).
    coverage = world.member_inspectors[PROD].state.coverage
    world.member_inspectors[PROD].state.coverage = []
    try:
        execution = world.runner.run("Bakehouse-RescanImages", rescan_parameters(world, world.estate.plain_bucket))
    finally:
        world.member_inspectors[PROD].state.coverage = coverage
    assert execution.status == "Failed"
    assert execution.step("CollectFindings").status == "Failed"
    # The failure path terminates, then fails itself: the run is announced as Failed, never a Success.
    assert execution.step("TerminateAfterFailure").status == "Failed"
    assert "TerminateScanInstances" not in execution.step_names
    assert scan_instances(world, ["pending", "running", "stopping", "stopped"]) == []


def test_rescan_document_deprecates_the_quarantined_ami_once_its_replacement_is_published(world, rescanned):
    _, images, _ = rescanned
    e = world.estate
    replacement = golden_ami(
        e.client("ec2"), "bakehouse-al2023-2", {"bakehouse:family": "al2023", "bakehouse:inspector-verdict": "PASS"}
    )
    publish(PublishRequest(replacement, "al2023", "e2e"), e.client("ec2"), e.client("ssm"))
    execution = world.runner.run("Bakehouse-RescanImages", rescan_parameters(world))
    assert execution.status == "Success", execution.failure
    assert images["al2023"] in world.deprecation.deprecations
    assert replacement not in world.deprecation.deprecations
