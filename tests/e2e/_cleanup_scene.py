"""One moto world in which build and validation runs are made to fail or are cancelled, and the helpers
that look for what a run left behind by the execution tag it was created with (instances, images).
Shared by test_factory_cleanup_paths.py (forced failures) and test_cancelled_runs.py (cancellations)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e import _seams
from tests.e2e._factory import ROLE_ARN, RecordingApprover, make_runner, validation_parameters
from tests.e2e._world import BundleShell, World, seed
from tests.e2e.runner import Execution, Runner, moto_server

BUILD_TAG, VALIDATION_TAG = "bakehouse:build-execution", "bakehouse:validation-execution"


@dataclass
class Scene:
    world: World
    runner: Runner
    family: str = "cleanup-checks"

    def build(self, family: str, **run: Any) -> Execution:
        return self.runner.run(
            "Bakehouse-BuildImage",
            {**self.world.build_parameters(ROLE_ARN, family), "NotificationTopicArn": self.world.topic_arn},
            **run,
        )

    def validate(self, image_id: str, **run: Any) -> Execution:
        return self.runner.run("Bakehouse-ValidateImage", validation_parameters(self.world, image_id, self.family), **run)

    def instance_states(self, execution: Execution, tag: str) -> dict[str, str]:
        found = self.world.client("ec2").describe_instances(Filters=[{"Name": f"tag:{tag}", "Values": [execution.execution_id]}])[
            "Reservations"
        ]
        return {i["InstanceId"]: i["State"]["Name"] for r in found for i in r["Instances"]}

    def snapshots_of(self, execution: Execution) -> list[dict]:
        return self.world.client("ec2").describe_snapshots(
            OwnerIds=["self"], Filters=[{"Name": f"tag:{BUILD_TAG}", "Values": [execution.execution_id]}]
        )["Snapshots"]

    def images_of(self, execution: Execution) -> list[dict]:
        # Named after the execution whether or not its tags were written: an untagged image is found too.
        return self.world.client("ec2").describe_images(
            Owners=["self"], Filters=[{"Name": "name", "Values": [f"*{execution.execution_id}*"]}]
        )["Images"]


@contextmanager
def cleanup_scene(family: str) -> Iterator[Scene]:
    """The module's world (one per module: moto keeps one state per process)."""
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        world = seed(url)
        _seams.install(mp, world)
        yield Scene(world, make_runner(world, BundleShell(world), RecordingApprover()), family)
