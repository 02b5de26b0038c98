"""examples/app: the app-team program builds on a workload stack through the contract alone."""

from __future__ import annotations

import ast
import runpy

import yaml

from components.workload.workload_stack import EXPORT_CONTRACT
from tests.workload._example_app_support import EXAMPLE, WorkloadStackMocks
from tools.mockrun import run_program


def _output_keys(source: str) -> set[str]:
    keys = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get_output", "require_output", "get_output_details")
        ):
            assert isinstance(node.args[0], ast.Constant), "output names must be literal to be checked"
            keys.add(node.args[0].value)
    return keys


def test_example_reads_only_contract_keys():
    keys = _output_keys((EXAMPLE / "__main__.py").read_text())
    assert keys, "the example reads no outputs"
    assert keys <= set(EXPORT_CONTRACT), keys - set(EXPORT_CONTRACT)


def test_example_is_a_project_of_its_own_pinned_like_the_estate():
    project = yaml.safe_load((EXAMPLE / "Pulumi.yaml").read_text())
    assert project["name"] != "bakehouse" and project["runtime"]["name"] == "python"
    pins = (EXAMPLE / "requirements.txt").read_text().split()
    estate_pins = (EXAMPLE.parents[1] / "requirements.txt").read_text().split()
    assert all(p in estate_pins for p in pins if p.startswith(("pulumi==", "pulumi-aws==")))


def test_example_launches_from_the_estates_template_into_its_private_subnets(stack_run):
    exports = stack_run("dev").exports
    mocks = WorkloadStackMocks(exports)
    run = run_program(
        lambda: runpy.run_path(str(EXAMPLE / "__main__.py")),
        config={"bakehouse:workloadStack": "acme/bakehouse/dev"},
        mocks=mocks,
    )
    assert mocks.references == ["acme/bakehouse/dev"]
    [group] = run.of_type("aws:autoscaling/group:Group")
    assert group.inputs["launchTemplate"] == {"id": exports["launchTemplateId"], "version": "$Default"}
    assert group.inputs["vpcZoneIdentifiers"] == exports["privateSubnetIds"]
    assert "imageId" not in group.inputs and "launchConfiguration" not in group.inputs
    [metric] = run.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")
    assert metric.inputs["logGroupName"] == exports["logGroupName"]
    assert run.exports["settingsPrefix"] == "/bakehouse/dev"
