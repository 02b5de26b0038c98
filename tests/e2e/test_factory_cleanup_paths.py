"""Forced failures of the build and validation documents leave nothing behind (issue 15.6, first bullet).

Each test makes one step fail, most of them after the step's action did its work (the instance
launched, the image registered: a lost response, a wait that timed out), then looks for what the run
created by the execution tag it was created with: no instance left but terminated ones, no image.
A termination that keeps failing is retried, then announced with the instance's id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.e2e._cleanup_scene import BUILD_TAG, VALIDATION_TAG, Scene, cleanup_scene
from tests.e2e.runner import Runner, StepFailed

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def scene() -> Iterator[Scene]:
    with cleanup_scene("cleanup-checks") as made:
        yield made


@contextlib.contextmanager
def forced_failure(runner: Runner, step: str, after_the_call: bool = True) -> Iterator[None]:
    """`step` fails on every attempt; with after_the_call, only once its action has done its work."""
    real = dict(runner.actions)

    def wrap(action):
        def run(ctx, inputs):
            if ctx.step != step:
                return action(ctx, inputs)
            if after_the_call:
                action(ctx, inputs)
            raise StepFailed(f"forced failure of {step}")

        return run

    runner.actions = {name: wrap(action) for name, action in real.items()}
    try:
        yield
    finally:
        runner.actions = real


@pytest.mark.parametrize("step", ["LaunchBuildInstance", "WaitForBuildInstanceRunning", "WaitForSsmAgentOnline"])
def test_a_launch_that_fails_after_creating_its_instance_terminates_it(scene, step):
    with forced_failure(scene.runner, step):
        execution = scene.build(f"launch-{step.lower()[:20]}")
    assert execution.status == "Failed" and execution.step(step).status == "Failed"
    states = scene.instance_states(execution, BUILD_TAG)
    assert states and set(states.values()) == {"terminated"}, states
    assert scene.images_of(execution) == []


@pytest.mark.parametrize("step", ["CreateImage", "WaitForImageAvailable"])
def test_a_create_image_that_fails_after_registering_the_image_deregisters_it(scene, step):
    with forced_failure(scene.runner, step):
        execution = scene.build(f"image-{step.lower()[:20]}")
    assert execution.status == "Failed" and execution.step(step).status == "Failed"
    assert scene.images_of(execution) == []
    assert scene.snapshots_of(execution) == []
    assert set(scene.instance_states(execution, BUILD_TAG).values()) == {"terminated"}


def test_the_image_is_tagged_with_its_provenance_in_the_request_that_creates_it(scene):
    execution = scene.build("tagged-at-creation")
    assert execution.status == "Success", execution.failure
    create = execution.step("CreateImage")
    specs = {s["ResourceType"]: {t["Key"]: t["Value"] for t in s["Tags"]} for s in create.inputs["TagSpecifications"]}
    assert specs["image"][BUILD_TAG] == execution.execution_id and specs["snapshot"][BUILD_TAG] == execution.execution_id
    assert specs["image"]["bakehouse:family"] == "tagged-at-creation"


def test_a_failing_terminate_of_the_build_instance_retries_then_announces_the_instance(scene):
    with forced_failure(scene.runner, "TerminateBuildInstance", after_the_call=False):
        execution = scene.build("terminate-fails")
    assert execution.status == "Failed"
    assert execution.step("TerminateBuildInstance").attempts == 3
    [(instance, state)] = scene.instance_states(execution, BUILD_TAG).items()
    assert state == "stopped"  # stranded: what the announcement is for
    announce = execution.step("AnnounceStrandedBuildInstance")
    assert announce.status == "Success"
    assert announce.inputs["TopicArn"] == scene.world.topic_arn and instance in announce.inputs["Message"]
    # the image itself is complete and stays: a rerun reuses it instead of building again
    [image] = scene.images_of(execution)
    assert image["State"] == "available"


def test_the_build_launch_requires_imdsv2_and_is_idempotent_per_execution(scene):
    execution = scene.build("launch-request")
    launch = execution.step("LaunchBuildInstance")
    assert launch.action == "aws:executeAwsApi" and launch.inputs["Api"] == "RunInstances"
    assert launch.inputs["MetadataOptions"]["HttpTokens"] == "required"
    assert launch.inputs["ClientToken"] == execution.execution_id
    [instance] = scene.instance_states(execution, BUILD_TAG)
    described = scene.world.client("ec2").describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    assert described["MetadataOptions"]["HttpTokens"] == "required"


@pytest.fixture(scope="module")
def image(scene) -> str:
    execution = scene.build("validation-subject")
    assert execution.status == "Success", execution.failure
    return execution.outputs["DescribeBuiltImage.ImageId"]


@pytest.mark.parametrize(
    "step",
    [
        "LaunchTestInstance",
        "WaitForTestInstanceRunning",
        "WaitForSsmAgentOnline",
        "RunValidationScripts",
        "SummarizeInspectorFindings",
    ],
)
def test_validation_instances_are_terminated_whatever_step_fails(scene, image, step):
    with forced_failure(scene.runner, step):
        execution = scene.validate(image)
    assert execution.status == "Failed" and execution.step(step).status == "Failed"
    states = scene.instance_states(execution, VALIDATION_TAG)
    assert states and set(states.values()) == {"terminated"}, states
    # the image under test is never the validation's to remove
    assert scene.world.client("ec2").describe_images(ImageIds=[image])["Images"][0]["State"] == "available"


def test_a_validation_instance_whose_terminate_keeps_failing_is_terminated_by_its_tag(scene, image):
    with forced_failure(scene.runner, "TerminateTestInstance", after_the_call=False):
        execution = scene.validate(image)
    assert execution.step("TerminateTestInstance").attempts == 3
    states = scene.instance_states(execution, VALIDATION_TAG)
    assert states and set(states.values()) == {"terminated"}, states
