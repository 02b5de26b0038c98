"""The quarantine guardrail: a workload account cannot launch an image its own view tags
bakehouse:quarantined (handlers/rescan_feedback.py puts that tag on each account's view)."""

from __future__ import annotations

import pytest

from tests.iam.org_view import BUILD, DEV, PROD, Request, org  # noqa: F401 (fixture)
from tests.iam.org_view import denied as _denied
from tests.iam.org_view import role_arn as _role

QUARANTINED_IMAGE = "arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0"


def _launch_image(account: str, action: str, quarantined: str | None) -> Request:
    context = {"ec2:Owner": BUILD, "ec2:MetadataHttpTokens": "required"}
    if quarantined is not None:
        context["ec2:ResourceTag/bakehouse:quarantined"] = quarantined
    # RequestSpotInstances creates a spot-instances-request, the other two an instance.
    created = "spot-instances-request" if action == "ec2:RequestSpotInstances" else "instance"
    return Request(action, (f"arn:aws:ec2:eu-west-1:{account}:{created}/*", QUARANTINED_IMAGE), _role(account), context)


@pytest.mark.parametrize("action", ["ec2:RunInstances", "ec2:CreateFleet", "ec2:RequestSpotInstances"])
@pytest.mark.parametrize("env,account", [("dev", DEV), ("prod", PROD)])
def test_workload_accounts_cannot_launch_a_quarantined_image(org, env, account, action):
    assert "DenyQuarantinedImages" in _denied(org, env, _launch_image(account, action, "true"))


@pytest.mark.parametrize("quarantined", [None, "false"])
def test_images_not_tagged_quarantined_still_launch(org, quarantined):
    assert _denied(org, "prod", _launch_image(PROD, "ec2:RunInstances", quarantined)) == []
