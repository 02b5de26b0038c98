"""Disposable fleets in a workload stack: `bakehouse:workload.fleet.maxInstanceLifetimeDays` (default 7)
bounded to what Auto Scaling accepts, and the scheduled fleet report wired to the security topic."""

from __future__ import annotations

import json

import pytest

from components.workload.fleet_lifetime import FleetSettings, fleet_settings
from estate.config import ConfigError, Problems
from tests.workload._workload_support import DEV_SECTION
from tools.mockrun import cached_run


def _policy(run, role_name: str) -> dict:
    [policy] = [p for p in run.of_type("aws:iam/rolePolicy:RolePolicy") if p.inputs.get("role") == role_name]
    return json.loads(policy.inputs["policy"])


def test_lifetime_defaults_to_seven_days_in_seconds():
    settings = fleet_settings({"amiFamilies": ["al2023"]}, Problems("dev"))
    assert settings == FleetSettings() and settings.max_instance_lifetime_seconds == 604800


@pytest.mark.parametrize("days", [0, 366, 2.5, True, "7"])
def test_a_lifetime_auto_scaling_would_refuse_is_a_config_problem(days):
    problems = Problems("dev")
    fleet_settings({"fleet": {"maxInstanceLifetimeDays": days}}, problems)
    assert [p for p in problems.items if "bakehouse:workload.fleet.maxInstanceLifetimeDays" in p]


def test_a_bad_fleet_section_stops_the_stack_with_the_other_problems():
    run = cached_run(
        "dev",
        overrides={
            "bakehouse:workload": {
                **DEV_SECTION,
                "amiFamilies": [],
                "fleet": {"maxInstanceLifetimeDays": 400, "reportSchedule": "daily"},
            }
        },
        raise_errors=False,
    )
    assert isinstance(run.error, ConfigError)
    text = str(run.error)
    assert "fleet.maxInstanceLifetimeDays" in text and "fleet.reportSchedule" in text and "amiFamilies" in text
    assert run.resources == []


def test_fleet_report_runs_daily_with_the_stacks_lifetime_and_announces_on_the_security_topic(stack_run):
    run = stack_run("dev")
    [fn] = [f for f in run.of_type("aws:lambda/function:Function") if f.inputs["name"] == "bakehouse-fleet-report"]
    env = fn.inputs["environment"]["variables"]
    assert env["FLEET_ENV"] == "dev" and env["MAX_LIFETIME_SECONDS"] == "604800"
    assert env["TOPIC_ARN"].startswith("arn:aws:sns:eu-west-1:")
    assert fn.inputs["handler"] == "handlers.fleet_report.handler"
    [schedule] = [s for s in run.of_type("aws:scheduler/schedule:Schedule") if s.inputs["name"] == "bakehouse-fleet-report"]
    assert schedule.inputs["scheduleExpression"].startswith("cron(")
    assert schedule.inputs["target"]["retryPolicy"]["maximumRetryAttempts"] == 3


def test_configured_lifetime_reaches_the_report():
    run = cached_run("uat", overrides={"bakehouse:workload": {**DEV_SECTION, "fleet": {"maxInstanceLifetimeDays": 3}}})
    [fn] = [f for f in run.of_type("aws:lambda/function:Function") if f.inputs["name"] == "bakehouse-fleet-report"]
    assert fn.inputs["environment"]["variables"]["MAX_LIFETIME_SECONDS"] == str(3 * 86400)


def test_fleet_report_may_read_only_its_envs_image_parameters_and_publish_only_to_the_security_topic(stack_run):
    run = stack_run("prod")
    statements = {s["Sid"]: s for s in _policy(run, "BakehouseFleetReport")["Statement"]}
    [images] = statements["ReadApprovedImages"]["Resource"]
    assert images.startswith("arn:aws:ssm:eu-west-1:") and images.endswith(":parameter/bakehouse/prod/ami/*")
    assert statements["ListInstances"]["Action"] == ["ec2:DescribeInstances"]
    assert statements["ListInstances"]["Condition"] == {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}
    [topic] = statements["AnnounceOnSecurityTopic"]["Resource"]
    fn_env = [f for f in run.of_type("aws:lambda/function:Function") if f.inputs["name"] == "bakehouse-fleet-report"][0].inputs[
        "environment"
    ]["variables"]
    assert topic == fn_env["TOPIC_ARN"]
    actions = {a for s in statements.values() for a in s["Action"]}
    assert not any(a.startswith(("ec2:Terminate", "ec2:Stop", "autoscaling:")) for a in actions), "it only reports"
    scheduler = _policy(run, "BakehouseFleetReportSchedule")["Statement"]
    # it invokes the report; the rest is its dead-letter queue (tests/workload/test_workload_fleet_report_dlq.py)
    assert [s["Action"] for s in scheduler] == [
        ["lambda:InvokeFunction"],
        ["sqs:SendMessage"],
        ["kms:GenerateDataKey*", "kms:Decrypt"],
    ]
