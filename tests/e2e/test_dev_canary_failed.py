"""The dev canary when validation fails (issue 17.3): the canary launched in dev is terminated and nobody
is asked to approve. Its own moto world (tests/e2e/_dev_canary.py), apart from the passing run's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e._dev_canary import ALL_STATES, DEV, Case, agents_online, dev_canaries, run_release

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["agents_online"]  # the module's autouse fixture


@pytest.fixture(scope="module")
def failed() -> Iterator[Case]:
    yield from run_release(fail_validation=True)


def test_a_failed_validation_terminates_the_canary_and_asks_nobody(failed):
    run = failed.execution
    assert run.status == "Failed"
    assert run.step("StartDevCanary").status == "Success"
    assert run.step_names[-1] == "TerminateDevCanaryAfterFailure"
    assert run.step("TerminateDevCanaryAfterFailure").status == "Success"
    assert "CheckDevCanary" not in run.step_names and failed.approver.requests == []
    [launched] = dev_canaries(failed, ALL_STATES)
    assert launched["State"]["Name"] in ("terminated", "shutting-down")
    perms = failed.world.client("ec2").describe_image_attribute(ImageId=failed.image_id, Attribute="launchPermission")[
        "LaunchPermissions"
    ]
    assert {"UserId": DEV} not in perms
