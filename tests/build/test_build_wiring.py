"""What the build stack hands the factory's handlers and catalog from config: the org's prod envs to the
rescan, every env's account to the lifecycle (which must read their pins), TagOptions and regional
portfolios to the catalog."""

from __future__ import annotations

import fnmatch
import json

import pytest

from tests.build._build_config_support import shipped_factory
from tools.mockrun import cached_run


@pytest.fixture(scope="module")
def build(stack_run):
    return stack_run("build")


def _schedule_input(run, name: str) -> dict:
    (schedule,) = [s for s in run.of_type("aws:scheduler/schedule:Schedule") if s.name == name]
    return json.loads(schedule.inputs["target"]["input"])


def test_the_rescan_marks_the_orgs_configured_prod_envs(build):
    assert _schedule_input(build, "build-schedules-rescan")["Parameters"]["ProdEnvs"] == ["prod"]


def test_the_lifecycle_reads_every_envs_pins_through_its_scanner_role(build):
    event = _schedule_input(build, "build-schedules-lifecycle-schedule")
    assert "WorkloadAccounts" not in event, "the handler reads /bakehouse/factory/targets"
    (policy,) = [p for p in build.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == "build-schedules-lifecycle-policy"]
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    assume = statements["ReadWorkloadPins"]
    assert assume["Action"] == ["sts:AssumeRole"] and assume["Resource"] == ["arn:aws:iam::*:role/BakehouseImageScanner"]
    assert "aws:ResourceOrgPaths" in assume["Condition"]["ForAnyValue:StringLike"]


def test_the_catalog_offers_env_tag_options(build):
    values = {(t.inputs["key"], t.inputs["value"]) for t in build.of_type("aws:servicecatalog/tagOption:TagOption")}
    assert {("env", "dev"), ("env", "uat"), ("env", "prod")} <= values


def test_regional_portfolios_are_declared_through_a_provider_of_their_region_when_configured():
    factory = {**shipped_factory(), "catalogRegionalPortfolios": True}
    run = cached_run("build", overrides={"bakehouse:factory": factory})
    portfolios = run.of_type("aws:servicecatalog/portfolio:Portfolio")
    assert len(portfolios) == 3  # home + eu-central-1 + us-east-1
    regional = {p.provider_name for p in portfolios} - {"build-account"}
    assert regional == {"build-catalog-eu-central-1", "build-catalog-us-east-1"}


def test_the_target_envs_are_one_parameter_each_read_by_path_by_automation_and_lifecycle(build):
    targets = {
        p.inputs["name"]: p.inputs["value"]
        for p in build.of_type("aws:ssm/parameter:Parameter")
        if p.inputs["name"].startswith("/bakehouse/factory/targets/")
    }
    plain = {n: v.get("value") if isinstance(v, dict) else v for n, v in targets.items()}
    assert plain == {
        "/bakehouse/factory/targets/dev": "444444444444",
        "/bakehouse/factory/targets/uat": "555555555555",
        "/bakehouse/factory/targets/prod": "666666666666",
    }
    path = "arn:aws:ssm:eu-west-1:333333333333:parameter/bakehouse/factory/targets"
    for policy_name in ("build-factory-automation-policy", "build-schedules-lifecycle-policy"):
        (policy,) = [p for p in build.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == policy_name]
        grants = [
            s
            for s in json.loads(policy.inputs["policy"])["Statement"]
            if "ssm:GetParametersByPath" in s["Action"] and s["Effect"] == "Allow"
        ]
        assert any(fnmatch.fnmatchcase(path, r) for s in grants for r in s["Resource"]), policy_name
