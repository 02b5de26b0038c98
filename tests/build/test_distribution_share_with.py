"""The build stack hands distribution the workload OUs as ARNs the handler (and EC2) accept."""

from __future__ import annotations

import json

import yaml

from handlers import distribute as dist
from tools.mockrun import PROJECT_DIR

MANAGEMENT, ORG = "111111111111", "o-exampleorg01"


def _pipeline_parameters(stack_run) -> dict:
    (param,) = [
        p for p in stack_run("build").of_type("aws:ssm/parameter:Parameter") if p.inputs["name"] == "/bakehouse/factory/settings"
    ]
    value = param.inputs["value"]
    return json.loads(value["value"] if isinstance(value, dict) else value)["pipelineParameters"]


def test_settings_share_images_with_the_workload_ous_by_arn(stack_run):
    ous = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())["config"]["bakehouse:factory"]["workloadOus"]
    assert _pipeline_parameters(stack_run)["ShareWith"] == [f"arn:aws:organizations::{MANAGEMENT}:ou/{ORG}/{ou}" for ou in ous]


def test_the_distribute_handler_accepts_what_the_stack_passes(stack_run):
    params = _pipeline_parameters(stack_run)
    request = dist.DistributeRequest.parse(
        {
            "ImageId": "ami-0123456789abcdef0",
            "SourceRegion": "eu-west-1",
            "Family": "al2023",
            "Regions": {r: f"arn:aws:kms:{r}:333333333333:key/k" for r in params["Regions"]},
            "ShareWith": params["ShareWith"],
        }
    )  # no Accounts: the targets are read by path (handlers/targets.py)
    assert request.share_with == tuple(params["ShareWith"])
    assert "Accounts" not in params  # the settings do not grow with the number of envs


def test_the_pipeline_passes_share_with_through_to_distribution():
    pipeline = yaml.safe_load((PROJECT_DIR / "automation" / "pipeline.yaml").read_text())
    distribute = yaml.safe_load((PROJECT_DIR / "automation" / "distribute_image.yaml").read_text())
    assert "ShareWith" in pipeline["parameters"] and "ShareWith" in distribute["parameters"]
    (step,) = [s for s in pipeline["mainSteps"] if s["name"] == "DistributeImage"]
    assert step["inputs"]["RuntimeParameters"]["ShareWith"] == "{{ ShareWith }}"
    (script,) = [s for s in distribute["mainSteps"] if s["name"] == "DistributeToRegionsAndAccounts"]
    assert script["inputs"]["InputPayload"]["ShareWith"] == "{{ ShareWith }}"
