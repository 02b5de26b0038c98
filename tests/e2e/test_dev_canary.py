"""The dev canary end to end (issue 17.3), on Bakehouse-ReleaseImage (the chain Bakehouse-Pipeline runs
after its build): the candidate is launched in dev from the app launch template while it is validated,
its health is in the approval request, prod still waits for a human, and the canary is terminated
when validation passes (the failing run: test_dev_canary_failed.py)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from handlers.common import tags_to_dict
from tests.e2e._dev_canary import ALL_STATES, CANDIDATE_PARAMETER, DEV, Case, agents_online, dev_canaries, dev_client, run_release

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
__all__ = ["agents_online"]  # the module's autouse fixture


@pytest.fixture(scope="module")
def passed() -> Iterator[Case]:
    yield from run_release(fail_validation=False)


def test_the_candidate_is_launched_in_dev_from_the_app_template_while_it_is_validated(passed):
    assert passed.execution.status == "Success", passed.execution.failure
    assert passed.execution.step("StartDevCanary").status == "Success"
    [instance] = dev_canaries(passed, ALL_STATES)
    assert instance["ImageId"] == passed.image_id
    tags = tags_to_dict(instance["Tags"])
    assert tags["bakehouse:canary-execution"] == passed.execution.execution_id
    template = dev_client(passed.world, "ec2").describe_launch_templates(LaunchTemplateNames=["bakehouse-dev-app"])[
        "LaunchTemplates"
    ][0]["LaunchTemplateId"]
    assert tags["aws:ec2launchtemplate:id"] == template
    order = passed.execution.step_names
    assert order.index("StartDevCanary") < order.index("ValidateImage") < order.index("CheckDevCanary")
    assert order.index("TerminateDevCanary") < order.index("ApproveImage")


def test_the_canarys_health_is_in_the_approval_request_and_prod_still_waits_for_a_human(passed):
    [request] = passed.approver.requests
    assert "Dev canary: healthy:" in request.message and "SSM agent Online" in request.message
    image = passed.world.client("ec2").describe_images(ImageIds=[passed.image_id])["Images"][0]
    assert tags_to_dict(image["Tags"])["bakehouse:dev-canary"] == "healthy"


def test_the_canary_is_terminated_and_its_candidate_parameter_removed_before_approval(passed):
    assert dev_canaries(passed, ("pending", "running", "stopping", "stopped")) == []
    ssm = dev_client(passed.world, "ssm")
    assert ssm.get_parameters(Names=[CANDIDATE_PARAMETER])["InvalidParameters"] == [CANDIDATE_PARAMETER]


def test_the_e2e_world_reaches_dev_as_its_own_account(passed):
    # guards the checks above: a canary launched into the build account would pass them vacuously
    assert (
        boto3.client("sts", region_name=passed.world.region, endpoint_url=passed.world.endpoint_url).get_caller_identity()[
            "Account"
        ]
        != DEV
    )
    assert dev_canaries(passed, ALL_STATES)
