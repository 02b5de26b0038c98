"""A cancelled build or validation (StopAutomationExecution Type=Cancel, or the console's Cancel) removes
its instance the way a failed one does: the runner delivers the cancel while a step runs, goes to the
step's onCancel and runs that cleanup. Without onCancel a cancel aborts: nothing more runs (Systems Manager
user guide, "Properties shared by all actions", onCancel; tests/documents/test_cancellation_cleanup.py
holds the documents to it statically, these runs show it works).

Each scene is cancelled where the run has something to remove, and looks for it by the execution tag it
was created with: no instance left but terminated ones, no image.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e._cleanup_scene import BUILD_TAG, VALIDATION_TAG, Scene, cleanup_scene
from tests.e2e.runner import CANCEL_WINDOW_SECONDS, Execution, Runner, StepFailed

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    with cleanup_scene("cancel-checks") as made:
        yield made


@pytest.fixture(scope="module")
def image(scene) -> str:
    execution = scene.build("cancel-subject")
    assert execution.status == "Success", execution.failure
    return execution.outputs["DescribeBuiltImage.ImageId"]


def assert_cancelled_at(execution: Execution, step: str, cleanup: str) -> None:
    """The cancel reached `step`, whose onCancel went to `cleanup`, which went through."""
    assert execution.status == "Cancelled", (execution.status, execution.failure)
    assert execution.step(step).status == "Cancelled"
    names = execution.step_names
    after = names[names.index(step) + 1 :]
    assert after[:1] == [cleanup], f"after the cancelled {step} ran {after}, not its onCancel {cleanup}"
    assert execution.failure is None, execution.failure


@pytest.mark.parametrize(
    "step",
    [
        "LaunchBuildInstance",
        "WaitForBuildInstanceRunning",
        "WaitForSsmAgentOnline",
        "RunProvisioningScripts",
        "StopBuildInstance",
    ],
)
def test_a_build_cancelled_while_its_instance_runs_terminates_it(scene, step):
    execution = scene.build(f"cancel-{step.lower()[:20]}", cancel_at=step)
    states = scene.instance_states(execution, BUILD_TAG)
    assert states and set(states.values()) == {"terminated"}, states
    assert not execution.ran("CreateImage") and scene.images_of(execution) == []
    assert_cancelled_at(execution, step, "CleanUpFailedBuild")


@pytest.mark.parametrize("step", ["CreateImage", "WaitForImageAvailable"])
def test_a_build_cancelled_while_its_image_is_made_deregisters_the_image_and_terminates_the_instance(scene, step):
    execution = scene.build(f"cancel-{step.lower()[:20]}", cancel_at=step)
    assert scene.images_of(execution) == []
    assert scene.snapshots_of(execution) == []
    assert set(scene.instance_states(execution, BUILD_TAG).values()) == {"terminated"}
    assert_cancelled_at(execution, step, "CleanUpFailedBuild")


@pytest.mark.parametrize(
    ("step", "cleanup"),
    [
        ("LaunchTestInstance", "TerminateTestInstancesByTag"),
        ("WaitForTestInstanceRunning", "TerminateTestInstance"),
        ("WaitForSsmAgentOnline", "TerminateTestInstance"),
        ("RunValidationScripts", "TerminateTestInstance"),
        ("SummarizeInspectorFindings", "TerminateTestInstance"),
    ],
)
def test_a_validation_cancelled_while_its_test_instance_runs_terminates_it(scene, image, step, cleanup):
    execution = scene.validate(image, cancel_at=step)
    states = scene.instance_states(execution, VALIDATION_TAG)
    assert states and set(states.values()) == {"terminated"}, states
    # the image under test is never the validation's to remove
    assert scene.world.client("ec2").describe_images(ImageIds=[image])["Images"][0]["State"] == "available"
    assert_cancelled_at(execution, step, cleanup)


def test_a_validation_cancelled_while_its_terminate_keeps_failing_terminates_the_instance_by_its_tag(scene, image):
    real = scene.runner.actions["aws:changeInstanceState"]

    def refuse_and_cancel(ctx, inputs):
        if ctx.step != "TerminateTestInstance":
            return real(ctx, inputs)
        ctx.execution.cancel()  # the operator gives up on the retries
        raise StepFailed("forced failure of TerminateTestInstance")

    scene.runner.actions["aws:changeInstanceState"] = refuse_and_cancel
    try:
        execution = scene.validate(image)
    finally:
        scene.runner.actions["aws:changeInstanceState"] = real
    states = scene.instance_states(execution, VALIDATION_TAG)
    assert states and set(states.values()) == {"terminated"}, states
    assert_cancelled_at(execution, "TerminateTestInstance", "TerminateTestInstancesByTag")
    assert execution.step("TerminateTestInstance").attempts == 1  # a cancelled step is not tried again


def test_a_build_cancelled_before_its_launch_runs_nothing_more(scene):
    # ReadMemoryCapturePins has no onCancel: the default, Abort, runs no further step.
    execution = scene.build("cancel-before-launch", cancel_at="ReadMemoryCapturePins")
    assert execution.status == "Cancelled"
    assert execution.step_names[-1] == "ReadMemoryCapturePins"
    assert execution.step("ReadMemoryCapturePins").status == "Cancelled"
    assert not execution.ran("LaunchBuildInstance") and scene.instance_states(execution, BUILD_TAG) == {}


def test_a_validation_cancelled_before_its_launch_runs_nothing_more(scene, image):
    execution = scene.validate(image, cancel_at="AssertImageAvailable")
    assert execution.status == "Cancelled"
    assert execution.step_names == ["AssertImageAvailable"]
    assert scene.instance_states(execution, VALIDATION_TAG) == {}


# --- the runner's cancellation on documents of its own (no AWS call) -----------------------------------
def _runner(steps: list[dict[str, Any]]) -> tuple[Runner, list[str]]:
    ran: list[str] = []
    runner = Runner("http://127.0.0.1:1", documents={"Doc": {"schemaVersion": "0.3", "mainSteps": steps}})
    runner.actions["test:record"] = lambda ctx, inputs: ran.append(ctx.step) or {"Value": ctx.step}
    return runner, ran


def test_onCancel_cannot_move_to_a_step_whose_action_aws_refuses_as_a_cancel_target():
    runner, ran = _runner(
        [
            {"name": "Work", "action": "test:record", "onCancel": "step:Nap"},
            {"name": "Nap", "action": "aws:sleep", "inputs": {"Duration": "PT0S"}},
        ]
    )
    execution = runner.run("Doc", {}, cancel_at="Work")
    assert execution.status == "Failed" and "Nap, an aws:sleep step" in execution.failure
    assert ran == ["Work"]


def test_cancel_at_a_step_the_document_lacks_is_an_error_not_a_run_that_never_cancels():
    runner, ran = _runner([{"name": "Work", "action": "test:record"}])
    execution = runner.run("Doc", {}, cancel_at="Wrok")
    assert execution.status == "Failed" and "cancel_at names Wrok" in execution.failure and ran == []


def test_the_cancellation_workflow_follows_next_steps_and_stops_when_its_two_minutes_are_up():
    runner, ran = _runner(
        [
            {"name": "Work", "action": "test:record", "onCancel": "step:CleanA"},
            {"name": "Skipped", "action": "test:record"},
            {"name": "CleanA", "action": "test:record", "nextStep": "CleanB"},
            {"name": "CleanB", "action": "test:record"},
            {"name": "CleanC", "action": "test:record"},
        ]
    )
    now = [0.0]
    runner.clock = lambda: now[0]
    real = runner.actions["test:record"]

    def slow_cleanup(ctx, inputs):
        if ctx.step == "CleanB":
            now[0] += CANCEL_WINDOW_SECONDS  # the window closes while CleanB runs
        return real(ctx, inputs)

    runner.actions["test:record"] = slow_cleanup
    execution = runner.run("Doc", {}, cancel_at="Work")
    assert execution.status == "Cancelled"
    assert ran == ["Work", "CleanA", "CleanB"]
    assert execution.step("Work").outputs == {} and execution.step("CleanA").outputs == {"Value": "CleanA"}
    assert "ran past 120 s; CleanC never ran" in execution.failure
