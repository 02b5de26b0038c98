"""Cancelling a run (StopAutomationExecution, or the console's Cancel) cleans up like a failure does: a
step whose failure is routed to a cleanup step routes its cancellation there too, so a cancelled build,
validation or canary leaves no instance running. Without `onCancel` a step's default is Abort, which
runs no further step (Systems Manager user guide, "Properties shared by all actions": onCancel)."""

from __future__ import annotations

import pytest

from tests.documents import checks
from tests.e2e.runner import NOT_A_CANCEL_TARGET  # onCancel cannot move to these actions (same page)

DOCS = checks.documents()
CLEANUP_PREFIXES = ("Terminate", "CleanUp")


def _steps(doc):
    return {s["name"]: s for s in doc.get("mainSteps", [])}


def _target(value):
    return value[len("step:") :] if isinstance(value, str) and value.startswith("step:") else None


def cancellation_problems(stem, doc):
    steps = _steps(doc)
    problems = []
    for name, step in steps.items():
        on_failure = _target(step.get("onFailure"))
        if on_failure and on_failure.startswith(CLEANUP_PREFIXES) and name != on_failure:
            on_cancel = _target(step.get("onCancel"))
            if on_cancel is None or not on_cancel.startswith(CLEANUP_PREFIXES):
                problems.append(f"{stem}.{name}: fails to {on_failure} but a cancellation aborts without cleaning up")
        on_cancel = _target(step.get("onCancel"))
        if on_cancel and steps.get(on_cancel, {}).get("action") in NOT_A_CANCEL_TARGET:
            problems.append(f"{stem}.{name}: onCancel names {on_cancel}, an action onCancel cannot move to")
    return problems


@pytest.mark.parametrize("stem", sorted(DOCS))
def test_a_cancelled_run_cleans_up_what_a_failed_one_would(stem):
    assert cancellation_problems(stem, DOCS[stem]) == []


@pytest.mark.parametrize("stem", ["pipeline", "release_image"])
def test_a_run_cancelled_while_the_dev_canary_starts_removes_the_canary(stem):
    # StartDevCanary's failure carries on to validation (a canary is feedback, not a gate), but once it has
    # begun an instance may exist in the canary account: cancelling there must remove it.
    assert _steps(DOCS[stem])["StartDevCanary"].get("onCancel") == "step:TerminateDevCanaryAfterFailure"


def test_the_check_reports_a_step_whose_cancellation_would_leave_the_instance():
    doc = {
        "mainSteps": [
            {"name": "Wait", "action": "aws:sleep", "onFailure": "step:TerminateIt"},
            {"name": "TerminateIt", "action": "aws:executeScript"},
        ]
    }
    assert cancellation_problems("x", doc) == ["x.Wait: fails to TerminateIt but a cancellation aborts without cleaning up"]
