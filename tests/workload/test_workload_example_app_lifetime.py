"""examples/app is a disposable fleet: its group replaces instances after maxInstanceLifetimeDays (7 by default)."""

from __future__ import annotations

import runpy

import pytest

from tests.workload._example_app_support import EXAMPLE, WorkloadStackMocks
from tools.mockrun import run_program


def _group(stack_run, **config):
    mocks = WorkloadStackMocks(stack_run("dev").exports)
    run = run_program(
        lambda: runpy.run_path(str(EXAMPLE / "__main__.py")),
        config={"bakehouse:workloadStack": "acme/bakehouse/dev", **config},
        mocks=mocks,
        raise_errors=False,
    )
    return run


def test_example_group_replaces_instances_after_seven_days_by_default(stack_run):
    run = _group(stack_run)
    [group] = run.of_type("aws:autoscaling/group:Group")
    assert group.inputs["maxInstanceLifetime"] == 604800


def test_example_lifetime_follows_its_config_in_days(stack_run):
    [group] = _group(stack_run, **{"bakehouse:maxInstanceLifetimeDays": "2"}).of_type("aws:autoscaling/group:Group")
    assert group.inputs["maxInstanceLifetime"] == 172800


@pytest.mark.parametrize("days", ["0", "366"])
def test_example_refuses_a_lifetime_auto_scaling_would_refuse(stack_run, days):
    run = _group(stack_run, **{"bakehouse:maxInstanceLifetimeDays": days})
    assert run.error is not None and "maxInstanceLifetimeDays" in str(run.error)
    assert run.of_type("aws:autoscaling/group:Group") == []
