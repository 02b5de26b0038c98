"""Stack configuration is validated once, every problem at once, naming stack, key, value and what is allowed."""

from __future__ import annotations

import copy

import pytest

from estate.config import ConfigError, Problems, parse_stack_config, require_keys, section
from estate.naming import bucket_name, central_bucket, security_topic_arn
from tools.mockrun import stack_config

ESTATE = {
    "organizationId": "o-exampleorg01",
    "homeRegion": "eu-west-1",
    "allowedRegions": ["eu-west-1", "eu-central-1"],
    "deployRoleName": "BakehouseDeploy",
    "accounts": {
        "management": "111111111111",
        "security": "222222222222",
        "build": "333333333333",
        "dev": "444444444444",
        "uat": "555555555555",
        "prod": "666666666666",
    },
}
DEV = {**ESTATE, "role": "workload", "env": "dev", "network": {"cidr": "10.16.0.0/16", "azs": 2}}


def parse(stack="dev", siblings=None, **changes):
    values = copy.deepcopy(DEV)
    values.update(changes)
    return parse_stack_config(stack, values, siblings)


def problems_of(**kwargs) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(**kwargs)
    return caught.value.problems


def test_a_valid_workload_stack_resolves_its_account_region_and_tags():
    cfg = parse()
    assert cfg.account_id == "444444444444"
    assert cfg.region == "eu-west-1"  # defaults to the home region
    assert cfg.deploy_role_arn == "arn:aws:iam::444444444444:role/BakehouseDeploy"
    assert cfg.default_tags == {"bakehouse:stack": "dev", "bakehouse:env": "dev", "bakehouse:managed-by": "pulumi"}
    assert cfg.network.az_names("eu-west-1") == ("eu-west-1a", "eu-west-1b")


def test_shared_stacks_take_their_core_account():
    values = {k: v for k, v in DEV.items() if k not in ("env", "network")}
    assert parse_stack_config("security", {**values, "role": "security"}).account_id == "222222222222"
    assert parse_stack_config("org", {**values, "role": "org"}).account_id == "111111111111"
    build = parse_stack_config("build", {**values, "role": "build", "network": {"cidr": "10.0.0.0/20", "azs": 2}})
    assert build.account_id == "333333333333" and build.env == "build"


def test_unknown_role_is_rejected_with_stack_key_value_and_allowed():
    assert problems_of(role="warehouse") == [
        "stack dev: Pulumi.dev.yaml: bakehouse:role is 'warehouse'; allowed: org, security, build, workload"
    ]


@pytest.mark.parametrize(
    "cidr", ["10.16.0.0/33", "10.16.0.1/16", "not-a-cidr", "8.8.0.0/16", "10.0.0.0/8", "10.16.0.0/28", "fd00::/48"]
)
def test_bad_cidr_is_rejected(cidr):
    [problem] = problems_of(network={"cidr": cidr, "azs": 2})
    assert problem.startswith(f"stack dev: Pulumi.dev.yaml: bakehouse:network.cidr is '{cidr}'; allowed: a private IPv4 network")


@pytest.mark.parametrize("azs", [0, 7, "3", True, 2.5])
def test_az_count_out_of_range_is_rejected(azs):
    [problem] = problems_of(network={"cidr": "10.16.0.0/16", "azs": azs})
    assert "bakehouse:network.azs is" in problem and "allowed: an integer from 1 to 6" in problem


def test_cidrs_overlapping_another_workload_stack_file_are_rejected():
    siblings = {"dev": {"cidr": "10.16.0.0/16"}, "uat": {"cidr": "10.16.128.0/17"}, "prod": {"cidr": "10.48.0.0/16"}}
    assert problems_of(siblings=siblings) == [
        "stack dev: Pulumi.dev.yaml: bakehouse:network.cidr is '10.16.0.0/16'; allowed: a range that does not overlap stack uat's 10.16.128.0/17"
    ]


@pytest.mark.parametrize("bad", ["12345", "4444444444444", "44444444444a", 444444444444])
def test_account_id_that_is_not_twelve_digits_is_rejected(bad):
    accounts = {**ESTATE["accounts"], "dev": bad}
    shown = f"'{bad}'" if isinstance(bad, str) else str(bad)
    assert problems_of(accounts=accounts) == [
        f"stack dev: Pulumi.yaml: bakehouse:accounts.dev is {shown}; allowed: a 12-digit account id (quoted)"
    ]


def test_region_outside_the_allowed_list_is_rejected():
    assert problems_of(region="ap-south-1") == [
        "stack dev: Pulumi.dev.yaml: bakehouse:region is 'ap-south-1'; allowed: eu-west-1, eu-central-1"
    ]


def test_every_problem_is_reported_together_in_one_message():
    with pytest.raises(ConfigError) as caught:
        parse(role="workload", region="us-west-2", network={"cidr": "300.0.0.0/16", "azs": 9})
    message = str(caught.value)
    assert message.startswith("Pulumi.dev.yaml has 3 problems:")
    for key in ("bakehouse:region", "bakehouse:network.cidr", "bakehouse:network.azs"):
        assert key in message


def test_workload_env_must_name_an_account():
    assert problems_of(env="staging") == ["stack dev: Pulumi.dev.yaml: bakehouse:env is 'staging'; allowed: dev, prod, uat"]


def test_duplicate_account_ids_are_rejected():
    accounts = {**ESTATE["accounts"], "uat": "444444444444"}
    assert (
        "stack dev: Pulumi.yaml: bakehouse:accounts is '444444444444'; allowed: each account id once"
        in problems_of(accounts=accounts)[0]
    )


def test_network_section_on_a_stack_without_a_network_is_rejected():
    values = {**DEV, "role": "security"}
    with pytest.raises(ConfigError, match="bakehouse:network is .*only on workload and build stacks, not security"):
        parse_stack_config("security", values)


def test_role_sections_are_validated_with_the_same_collector():
    cfg = parse(workload={"amiFamilies": ["al2023"], "typo": 1})

    def parse_workload(raw, problems: Problems):
        require_keys(raw, "workload", problems)
        return tuple(raw.get("amiFamilies", ()))

    with pytest.raises(
        ConfigError, match=r"stack dev: Pulumi.dev.yaml: bakehouse:workload.typo is 1; allowed: one of the keys amiFamilies, app"
    ):
        section(cfg, "workload", parse_workload)


def test_stack_files_in_the_repo_are_valid_and_workload_files_differ_only_in_values():
    shapes = {}
    for stack in ("dev", "uat", "prod"):
        config, _ = stack_config(stack)
        shapes[stack] = sorted(config)
    assert shapes["dev"] == shapes["uat"] == shapes["prod"]


def test_deterministic_names_fit_s3_and_point_at_the_security_account():
    cfg = parse()
    assert central_bucket(cfg.estate, "trail") == "bakehouse-trail-222222222222-eu-west-1"
    assert security_topic_arn(cfg.estate) == "arn:aws:sns:eu-west-1:222222222222:bakehouse-security"
    with pytest.raises(ValueError, match="S3 allows 63"):
        bucket_name("x" * 40, "222222222222", "eu-central-1")


# --- the example estate deploys nowhere ------------------------------------------------------------

from pathlib import Path  # noqa: E402

import estate.config as config_module  # noqa: E402
from tools.mockrun import PROJECT_DIR, cached_run, run_stack  # noqa: E402


def _project(tmp_path: Path, accounts: dict, org_id: str, stack_config: dict) -> Path:
    import yaml

    project = {
        "name": "bakehouse",
        "config": {"bakehouse:organizationId": {"value": org_id}, "bakehouse:accounts": {"value": accounts}},
    }
    (tmp_path / "Pulumi.yaml").write_text(yaml.safe_dump(project))
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": stack_config}))
    return tmp_path


def test_deploying_the_example_estate_is_refused_naming_file_key_and_value():
    with pytest.raises(ConfigError) as caught:
        parse_stack_config("dev", copy.deepcopy(DEV), deploying=True, project_dir=PROJECT_DIR)
    message = str(caught.value)
    assert "Pulumi.yaml: bakehouse:organizationId is 'o-exampleorg01'" in message
    assert "Pulumi.yaml: bakehouse:accounts.management is '111111111111'" in message
    assert "Pulumi.yaml: bakehouse:accounts.prod is '666666666666'" in message
    assert "Pulumi.dev.yaml: bakehouse:secret.db-password is a placeholder ciphertext" in message
    assert "NotARealSecret" not in message  # ciphertexts are not echoed


def test_previewing_the_example_estate_is_not_refused():
    assert parse_stack_config("dev", copy.deepcopy(DEV), deploying=False, project_dir=PROJECT_DIR).account_id


def test_a_real_estate_deploys_and_only_its_example_leftovers_are_named(tmp_path):
    real = {
        "management": "210987654321",
        "security": "310987654321",
        "build": "410987654321",
        "dev": "510987654321",
        "uat": "610987654321",
        "prod": "710987654321",
    }
    clean = _project(
        tmp_path,
        real,
        "o-k3j4h5g6f7",
        {"bakehouse:secret.db-password": {"secure": "v1:Zm9vYmFy:c2VjcmV0"}, "bakehouse:workload": {"alerts": ["ops@bakery.io"]}},
    )
    values = {**copy.deepcopy(DEV), "organizationId": "o-k3j4h5g6f7", "accounts": real}
    assert parse_stack_config("dev", values, deploying=True, project_dir=clean).account_id == "510987654321"

    leftover = _project(
        tmp_path, {**real, "uat": "123456789012"}, "o-k3j4h5g6f7", {"bakehouse:alerts": {"emails": ["team@example.com"]}}
    )
    with pytest.raises(ConfigError) as caught:
        parse_stack_config("dev", values, deploying=True, project_dir=leftover)
    assert caught.value.problems == [
        "stack dev: Pulumi.yaml: bakehouse:accounts.uat is '123456789012'; allowed: your estate's real value "
        "(this is an example; the example estate deploys nowhere)",
        "stack dev: Pulumi.dev.yaml: bakehouse:alerts.emails[0] is 'team@example.com'; allowed: your estate's real "
        "value (this is an example; the example estate deploys nowhere)",
    ]


def test_only_a_real_engines_update_counts_as_deploying_not_previews_or_mock_runs(monkeypatch):
    from pulumi.runtime import settings

    assert config_module.deploying_for_real() is False  # no Pulumi program running
    monkeypatch.setattr(settings, "get_monitor", lambda: object())
    monkeypatch.setattr(settings, "is_dry_run", lambda: False)
    assert config_module.deploying_for_real() is True
    monkeypatch.setattr(settings, "is_dry_run", lambda: True)
    assert config_module.deploying_for_real() is False


def test_an_update_of_the_example_estate_stops_before_declaring_anything(monkeypatch):
    assert cached_run("security").error is None  # the mock run (what make preview runs) still works
    monkeypatch.setattr(config_module, "deploying_for_real", lambda: True)
    run = run_stack("security", raise_errors=False)
    assert isinstance(run.error, ConfigError)
    assert "bakehouse:accounts.security is '222222222222'" in str(run.error)
    assert [r for r in run.resources if not r.is_provider] == []


def test_ci_refuses_the_example_stack_files_before_pulumi_up(capsys):
    from tools.refuse_examples import main

    assert main(["dev"]) == 1
    err = capsys.readouterr().err
    assert "Pulumi.dev.yaml: bakehouse:secret.db-password is a placeholder ciphertext" in err
    assert "Pulumi.yaml: bakehouse:organizationId is 'o-exampleorg01'" in err
