"""Config in one pass (issue 14, item 2): every problem of a stack's config in ONE ConfigError naming the
file, the key, the value and what is allowed, before anything (the provider included) is declared."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from components.roots import role_settings
from estate.aws_rules import is_recurring_schedule
from estate.config import ConfigError, parse_stack_config
from estate.validate import validate_stack
from tools.mockrun import MOCK_SECRET, run_stack, stack_config

PROJECT_DIR = Path(__file__).resolve().parents[2]
ESTATE = {
    "organizationId": "o-exampleorg01",
    "homeRegion": "eu-west-1",
    "allowedRegions": ["eu-west-1", "eu-central-1"],
    "deployRoleName": "BakehouseDeploy",
    "accounts": {"management": "111111111111", "security": "222222222222", "build": "333333333333", "dev": "444444444444"},
}
DEV = {**ESTATE, "role": "workload", "env": "dev", "network": {"cidr": "10.16.0.0/16", "azs": 2}}


def _problems(run_error: BaseException | None) -> list[str]:
    assert isinstance(run_error, ConfigError), run_error
    return run_error.problems


def test_overlap_typo_and_unknown_key_come_in_one_error_and_nothing_is_declared():
    run = run_stack(
        "build",
        overrides={
            # overlaps Pulumi.dev.yaml's 10.16.0.0/16
            "bakehouse:network": {"cidr": "10.16.0.0/20", "azs": 2},
            "bakehouse:factory": {
                **copy.deepcopy(_file_section("build", "bakehouse:factory")),
                "rescan": {"schedul": "rate(1 day)"},
                "colour": "blue",
            },
        },
        raise_errors=False,
    )
    problems = _problems(run.error)
    text = "\n".join(problems)
    assert "Pulumi.build.yaml: bakehouse:network.cidr is '10.16.0.0/20'; allowed: a range that does not overlap stack dev" in text
    assert "Pulumi.build.yaml: bakehouse:factory.rescan.schedul is 'rate(1 day)'; allowed: one of the keys" in text
    assert "(did you mean schedule?)" in text
    assert "Pulumi.build.yaml: bakehouse:factory.colour is 'blue'; allowed: one of the keys" in text
    assert run.resources == []  # not even the provider


def test_a_secret_value_with_a_problem_is_never_shown():
    run = run_stack("dev", overrides={"bakehouse:providerRoleArn": {"secure": "v1:ciphertext"}}, raise_errors=False)
    text = str(run.error)
    assert "bakehouse:providerRoleArn is a secret (not shown); allowed: an IAM role ARN" in text
    assert MOCK_SECRET not in text
    assert run.resources == []


def test_a_value_that_looks_like_json_but_is_not_is_a_clear_problem():
    run = run_stack("dev", overrides={"bakehouse:workload": "{oops"}, raise_errors=False)
    (problem,) = [p for p in _problems(run.error) if "bakehouse:workload " in p]
    assert problem.startswith("stack dev: Pulumi.dev.yaml: bakehouse:workload is '{oops'; allowed: a YAML mapping or list")
    assert "does not parse" in problem
    assert run.resources == []


def test_a_secret_that_is_not_json_is_not_shown_either():
    values, secrets = stack_config("dev")
    values["bakehouse:secret.db-password"] = "{hunter2"
    with pytest.raises(ConfigError) as err:
        validate_stack("dev", values, PROJECT_DIR, role_settings=role_settings, secret_keys=secrets)
    assert "hunter2" not in str(err.value)
    assert "bakehouse:secret.db-password is a secret (not shown)" in str(err.value)


@pytest.mark.parametrize("cidr", ["100.64.0.0/16", "198.18.0.0/16", "169.254.0.0/16"])
def test_only_rfc1918_ranges_are_private_enough_for_a_vpc(cidr):
    # ipaddress.is_private admits 198.18.0.0/15 (benchmarking) and 169.254.0.0/16 (link-local) too.
    values = {**copy.deepcopy(DEV), "network": {"cidr": cidr, "azs": 2}}
    with pytest.raises(ConfigError, match=rf"bakehouse:network.cidr is '{cidr}'; allowed: a private IPv4 network \(RFC 1918"):
        parse_stack_config("dev", values)


def test_egress_destination_outside_rfc1918_is_refused():
    workload = copy.deepcopy(_file_section("dev", "bakehouse:workload"))
    workload["network"]["egress"] = {"mode": "peering", "targetId": "pcx-0123456789abcdef0", "destinationCidr": "198.18.0.0/24"}
    run = run_stack("dev", overrides={"bakehouse:workload": workload}, raise_errors=False)
    assert any("bakehouse:workload.network.egress.destinationCidr is '198.18.0.0/24'" in p for p in _problems(run.error))


def test_egress_range_inside_the_vpcs_own_is_refused():
    workload = copy.deepcopy(_file_section("dev", "bakehouse:workload"))
    workload["network"]["egress"] = {"mode": "peering", "targetId": "pcx-0123456789abcdef0", "destinationCidr": "10.16.4.0/24"}
    run = run_stack("dev", overrides={"bakehouse:workload": workload}, raise_errors=False)
    assert any(
        "bakehouse:workload.network.egress.destinationCidr is '10.16.4.0/24'; allowed: a range outside this VPC's own 10.16.0.0/16"
        in p
        for p in _problems(run.error)
    )
    assert run.resources == []


def test_more_azs_than_eu_west_1_has_are_refused():
    values = {**copy.deepcopy(DEV), "network": {"cidr": "10.16.0.0/16", "azs": 4}}
    with pytest.raises(
        ConfigError, match=r"bakehouse:network.azs is 4; allowed: at most 3 in eu-west-1 \(its zones are eu-west-1a"
    ):
        parse_stack_config("dev", values)


def test_a_region_missing_from_the_az_table_is_named_not_guessed():
    values = {**copy.deepcopy(DEV), "allowedRegions": ["eu-west-1", "mx-central-1"], "region": "mx-central-1"}
    with pytest.raises(
        ConfigError, match=r"bakehouse:region is 'mx-central-1'; allowed: a region in estate/aws_rules.py AZ_LETTERS"
    ):
        parse_stack_config("dev", values)


def test_a_build_cidr_too_small_for_its_tiers_is_refused_before_anything_is_declared():
    run = run_stack("build", overrides={"bakehouse:network": {"cidr": "10.0.0.0/24", "azs": 2}}, raise_errors=False)
    assert any(
        "bakehouse:network.cidr is '10.0.0.0/24'; allowed: a /23 or larger range on the build stack" in p
        for p in _problems(run.error)
    )
    assert run.resources == []


@pytest.mark.parametrize(
    "schedule",
    ["cron(0 3 * * * *)", "cron(0 3 ? * ? *)", "rate(1 days)", "rate(0 days)", "rate(2 day)", "cron(0 3 * *)", "daily"],
)
def test_schedules_aws_would_refuse_are_refused(schedule):
    assert not is_recurring_schedule(schedule)
    run = run_stack(
        "build",
        overrides={"bakehouse:factory": {**_file_section("build", "bakehouse:factory"), "rescan": {"schedule": schedule}}},
        raise_errors=False,
    )
    assert any(
        p.startswith(f"stack build: Pulumi.build.yaml: bakehouse:factory.rescan.schedule is '{schedule}'")
        for p in _problems(run.error)
    )


def test_a_fleet_report_schedule_must_be_a_real_expression():
    workload = {**copy.deepcopy(_file_section("dev", "bakehouse:workload")), "fleet": {"reportSchedule": "rate(banana)"}}
    run = run_stack("dev", overrides={"bakehouse:workload": workload}, raise_errors=False)
    assert any("bakehouse:workload.fleet.reportSchedule is 'rate(banana)'" in p for p in _problems(run.error))


@pytest.mark.parametrize(
    "schedule", ["rate(1 day)", "rate(7 days)", "rate(30 minutes)", "cron(0 3 * * ? *)", "cron(0 6 ? * MON-FRI *)"]
)
def test_schedules_aws_accepts_pass(schedule):
    assert is_recurring_schedule(schedule)


def test_a_non_ascii_iam_role_name_is_refused():
    values = {**copy.deepcopy(DEV), "deployRoleName": "BäckereiDeploy"}
    with pytest.raises(ConfigError, match="bakehouse:deployRoleName is 'BäckereiDeploy'"):
        parse_stack_config("dev", values)


def test_a_non_ascii_launch_role_name_is_refused_in_the_factory_section():
    factory = {**_file_section("build", "bakehouse:factory"), "launchRoleNames": ["AppDéployer"]}
    run = run_stack("build", overrides={"bakehouse:factory": factory}, raise_errors=False)
    assert any("bakehouse:factory.launchRoleNames[] is 'AppDéployer'" in p for p in _problems(run.error))


def test_a_section_on_the_wrong_role_is_refused():
    run = run_stack("org", overrides={"bakehouse:factory": {"regions": []}}, raise_errors=False)
    assert any(
        "Pulumi.org.yaml: bakehouse:factory is" in p and "only on build stacks, not org" in p for p in _problems(run.error)
    )


def test_project_keys_are_named_by_pulumi_yaml():
    values = {**copy.deepcopy(DEV), "homeRegion": "mars-north-1"}
    with pytest.raises(ConfigError, match="stack dev: Pulumi.yaml: bakehouse:homeRegion is 'mars-north-1'"):
        parse_stack_config("dev", values)


def test_the_example_estate_validates_in_one_pass():
    for stack in ("org", "security", "build", "dev", "uat", "prod"):
        values, secrets = stack_config(stack)
        cfg, settings = validate_stack(stack, values, PROJECT_DIR, role_settings=role_settings, secret_keys=secrets)
        assert cfg.stack == stack and settings is not None


def _file_section(stack: str, key: str) -> dict:
    from estate.stack_files import stack_files

    return copy.deepcopy(dict(stack_files(PROJECT_DIR)[stack][key]))
