"""The dev canary's place in the factory documents (issue 17.3): started before validation, checked
after it, terminated on every path while it lives; its health told to the approvers, never deciding."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

AUTOMATION = Path(__file__).resolve().parents[2] / "automation"
CHAINS = ("pipeline", "release_image")


def document(stem: str) -> dict:
    return yaml.safe_load((AUTOMATION / f"{stem}.yaml").read_text())


def steps(stem: str) -> dict[str, dict]:
    return {s["name"]: s for s in document(stem)["mainSteps"]}


def order(stem: str) -> list[str]:
    return [s["name"] for s in document(stem)["mainSteps"]]


@pytest.mark.parametrize("stem", CHAINS)
def test_the_canary_starts_before_validation_and_is_checked_then_terminated_before_approval(stem):
    names = order(stem)
    assert (
        names.index("StartDevCanary")
        < names.index("ValidateImage")
        < names.index("CheckDevCanary")
        < names.index("TerminateDevCanary")
        < names.index("ApproveImage")
    )
    assert steps(stem)["TerminateDevCanary"]["nextStep"] == "ApproveImage"


@pytest.mark.parametrize("stem", CHAINS)
def test_a_canary_that_cannot_start_blocks_nothing(stem):
    start = steps(stem)["StartDevCanary"]
    assert str(start["isCritical"]).lower() == "false" and start["onFailure"] == "step:ValidateImage"


@pytest.mark.parametrize("stem", CHAINS)
def test_every_failure_while_the_canary_lives_terminates_it_and_ends_the_run(stem):
    found = steps(stem)
    for name in ("ValidateImage", "CheckDevCanary", "TerminateDevCanary"):
        assert found[name]["onFailure"] == "step:TerminateDevCanaryAfterFailure", name
    after = found["TerminateDevCanaryAfterFailure"]
    assert after["isEnd"] is True and after["inputs"]["InputPayload"]["Action"] == "Terminate"
    assert "isCritical" not in after


@pytest.mark.parametrize("stem", CHAINS)
def test_the_canary_steps_name_the_image_and_the_execution(stem):
    for name in ("StartDevCanary", "CheckDevCanary", "TerminateDevCanary", "TerminateDevCanaryAfterFailure"):
        payload = steps(stem)[name]["inputs"]["InputPayload"]
        assert payload["ImageId"] == "{{ DescribeBuiltImage.ImageId }}"
        assert payload["ExecutionId"] == "{{ automation:EXECUTION_ID }}"
        assert "from handlers.dev_canary import handler" in steps(stem)[name]["inputs"]["Script"]


@pytest.mark.parametrize("stem", CHAINS)
def test_approval_hears_the_canarys_health(stem):
    approve = steps(stem)["ApproveImage"]["inputs"]["RuntimeParameters"]
    assert approve["CanaryHealth"] == "{{ CheckDevCanary.Health }}"


def test_the_approval_message_carries_the_canary_health_which_defaults_to_not_run():
    doc = document("approve_image")
    assert doc["parameters"]["CanaryHealth"]["default"] == "not run"
    assert "{{ CanaryHealth }}" in steps("approve_image")["RequestApproval"]["inputs"]["Message"]


def test_no_approval_decision_reads_the_canary_health():
    text = yaml.safe_dump(steps("approve_image")["ChooseApprovalPath"])
    assert "CanaryHealth" not in text
    uses = [n for n, s in steps("approve_image").items() if "CanaryHealth" in yaml.safe_dump(s)]
    assert uses == ["RequestApproval"]
