"""`bakehouse:factory` is validated before anything is declared; each problem names stack, key, value, allowed."""

from __future__ import annotations

import pytest

from components.build.build_network import plan_subnets
from components.build.factory_config import DEFAULT_EGRESS, consumer_families, factory_config, parse_factory
from estate.config import ConfigError, NetworkConfig, section
from tests.build._build_config_support import build_cfg, problems_of, shipped_factory
from tools.mockrun import PROJECT_DIR, cached_run


def test_shipped_factory_config_parses_into_typed_settings():
    factory = factory_config(build_cfg(shipped_factory()))
    assert {f.name: f.base for f in factory.families} == {"al2023": "al2023", "ubuntu2404": "ubuntu2404"}
    assert factory.regions == ("eu-central-1", "us-east-1")
    assert factory.target_accounts == ("444444444444", "555555555555", "666666666666")
    assert factory.auto_approve_envs == ("dev",)
    assert "targetAccounts" not in factory.as_settings()  # one parameter per env instead (factory_targets)


def test_missing_section_reports_the_required_keys_and_defaults_the_rest():
    with pytest.raises(ConfigError) as err:
        factory_config(build_cfg(None))
    text = str(err.value)
    assert "bakehouse:factory.families is missing" in text
    assert "bakehouse:factory.workloadOus is missing" in text
    assert "bakehouse:factory.approvers is missing" in text
    assert "bakehouse:factory.approverPrincipals is missing" in text
    assert "bakehouse:factory.subscriptions is missing" in text
    minimal = factory_config(
        build_cfg(
            {
                "families": {"al2023": {"base": "al2023"}},
                "workloadOus": ["ou-ab12-wkld0001"],
                "approvers": ["arn:aws:iam::333333333333:role/BakehouseImageApprover"],
                "approverPrincipals": ["arn:aws:iam::333333333333:role/BakehouseReadOnly"],
                "subscriptions": {"approvers": [{"protocol": "email", "endpoint": "approvers@example.com"}]},
            }
        )
    )
    assert minimal.egress_domains == DEFAULT_EGRESS
    assert minimal.severity_threshold == "HIGH" and minimal.auto_approve_envs == ()


def test_auto_approve_for_prod_is_refused():
    problems = problems_of(autoApproveEnvs=["dev", "prod"])
    assert problems == [
        "stack build: Pulumi.build.yaml: bakehouse:factory.autoApproveEnvs[] is 'prod'; allowed: dev, uat "
        "(never prod: its images always need a human approval)"
    ]


@pytest.mark.parametrize(
    "changes, key, value, allowed",
    [
        ({"families__al2023": {"base": "centos7"}}, "families.al2023.base", "'centos7'", "al2023, ubuntu2404"),
        ({"families": {"Bad_Name": {"base": "al2023"}}}, "families", "'Bad_Name'", "family names"),
        ({"families__al2023": {"base": "al2023", "arch": "arm64"}}, "families.al2023.arch", "'arm64'", "one of the keys base"),
        ({"regions": ["ap-south-1"]}, "regions[]", "'ap-south-1'", "eu-central-1, us-east-1"),
        ({"regions": ["eu-west-1"]}, "regions[]", "'eu-west-1'", "eu-central-1, us-east-1"),
        ({"targetEnvs": ["dev", "staging"]}, "targetEnvs[]", "'staging'", "dev, prod, uat"),
        ({"workloadOus": ["r-abcd"]}, "workloadOus[]", "'r-abcd'", "organizational unit ids"),
        ({"workloadOus": []}, "workloadOus", "[]", "a non-empty list"),
        ({"autoApproveEnvs": ["qa"]}, "autoApproveEnvs[]", "'qa'", "dev, uat"),
        ({"severityThreshold": "LOW"}, "severityThreshold", "'LOW'", "CRITICAL, HIGH, MEDIUM"),
        ({"maxCatalogVersions": 0}, "maxCatalogVersions", "0", "an integer from 1 to 20"),
        ({"maxCatalogVersions": True}, "maxCatalogVersions", "true", "an integer from 1 to 20"),
        ({"launchRoleNames": ["bad role"]}, "launchRoleNames[]", "'bad role'", "IAM role names"),
        ({"egressDomains": ["*.ubuntu.com"]}, "egressDomains[]", "'*.ubuntu.com'", "no wildcards"),
        ({"egressDomains": ["10.0.0.1"]}, "egressDomains[]", "'10.0.0.1'", "no IP addresses"),
        (
            {"egressDomains": ["cdn.amazonlinux.com", "cdn.amazonlinux.com"]},
            "egressDomains",
            "'cdn.amazonlinux.com'",
            "each entry once",
        ),
        ({"rescan__schedule": "every day"}, "rescan.schedule", "'every day'", "rate(N minutes|hours|days)"),
        ({"rescan__schedule": "at(2026-01-01T00:00:00)"}, "rescan.schedule", "'at(2026-01-01T00:00:00)'", "recurring"),
        ({"rescan__batchSize": 500}, "rescan.batchSize", "500", "an integer from 1 to 50"),
        ({"rescan__parallel": 3}, "rescan.parallel", "3", "one of the keys batchSize, schedule"),
        ({"lifecycle__keep": 0}, "lifecycle.keep", "0", "an integer from 1 to 50"),
        ({"lifecycle__graceDays": 0}, "lifecycle.graceDays", "0", "an integer from 1 to 365"),
        ({"lifecycle__prodRetentionYears": 20}, "lifecycle.prodRetentionYears", "20", "an integer from 1 to 10"),
        ({"lifecycle__dryRun": "yes"}, "lifecycle.dryRun", "'yes'", "true or false"),
        ({"lifecycle__keepForever": True}, "lifecycle.keepForever", "true", "one of the keys"),
        ({"autoApprove": True}, "autoApprove", "true", "one of the keys approverPrincipals, approvers, autoApproveEnvs"),
        (
            {"approvers": ["arn:aws:iam::999999999999:role/Outsider"]},
            "approvers[]",
            "'arn:aws:iam::999999999999:role/Outsider'",
            "IAM role or user ARNs in the build account",
        ),
    ],
)
def test_each_bad_value_is_reported_with_its_key_value_and_what_is_allowed(changes, key, value, allowed):
    problems = problems_of(**changes)
    expected = f"stack build: Pulumi.build.yaml: bakehouse:factory.{key} is {value}; allowed: "
    assert any(p.startswith(expected) and allowed in p for p in problems), problems


def test_every_problem_of_the_section_is_reported_at_once():
    problems = problems_of(severityThreshold="LOW", autoApproveEnvs=["prod"], regions=["sa-east-1"], rescan={"batchSize": 0})
    assert len(problems) == 4
    assert {p.split(" is ")[0].split("bakehouse:factory.", 1)[1] for p in problems} == {
        "severityThreshold",
        "autoApproveEnvs[]",
        "regions[]",
        "rescan.batchSize",
    }


def test_bad_factory_config_fails_the_build_stack_before_any_resource_is_declared():
    factory = shipped_factory() | {"severityThreshold": "LOW"}
    run = cached_run("build", overrides={"bakehouse:factory": factory}, raise_errors=False)
    assert isinstance(run.error, ConfigError), run.error
    assert "bakehouse:factory.severityThreshold is 'LOW'" in str(run.error)
    assert [r for r in run.resources if r.custom and not r.is_provider] == []


def test_build_network_too_small_for_three_tiers_is_refused_with_the_minimum():
    with pytest.raises(ConfigError) as err:
        plan_subnets("build", NetworkConfig("10.0.0.0/24", 2), "eu-west-1")
    assert "bakehouse:network.cidr is '10.0.0.0/24'; allowed: a /23 or larger range" in str(err.value)


def test_every_family_a_target_env_reads_must_be_built():
    cfg = build_cfg(shipped_factory())
    with pytest.raises(ConfigError) as err:
        section(
            cfg,
            "factory",
            lambda raw, problems: parse_factory(raw, cfg, problems, consumers={"dev": ("al2023", "rhel9"), "qa": ("windows",)}),
        )
    assert err.value.problems == [
        'stack build: Pulumi.build.yaml: bakehouse:factory.families is ["al2023", "ubuntu2404"]; '
        "allowed: every family the target envs read; stack dev reads rhel9"
    ]


def test_shipped_workload_stacks_read_only_families_the_factory_builds():
    consumers = consumer_families(PROJECT_DIR)
    assert consumers, "no workload stack declares amiFamilies"
    built = {f.name for f in factory_config(build_cfg(shipped_factory())).families}
    for env, families in consumers.items():
        assert set(families) <= built, (env, families)


@pytest.mark.parametrize("key", ["distributionMode", "distribution"])
def test_setting_the_removed_copy_distribution_is_refused_with_the_reason(key):
    problems = problems_of(**{key: "copy"})
    (problem,) = [p for p in problems if key in p]
    assert "copy distribution was removed" in problem and "shared" in problem


def test_the_approvers_topic_may_not_go_without_subscribers():
    problems = problems_of(subscriptions__approvers=[])
    assert any("bakehouse:factory.subscriptions.approvers is []" in p and "non-empty" in p for p in problems), problems


def test_subscriptions_are_read_from_config_per_topic():
    factory = factory_config(build_cfg(shipped_factory()))
    assert [s.protocol for s in factory.subscriptions["approvers"]] == ["email"]
    assert factory.subscriptions["notifications"]


@pytest.mark.parametrize(
    "entry",
    [
        {"protocol": "sms", "endpoint": "+15555550100"},
        {"protocol": "email", "endpoint": "not-an-address"},
        {"protocol": "https", "endpoint": "http://plain.example.com"},
    ],
)
def test_a_subscriber_of_an_unknown_protocol_or_malformed_endpoint_is_refused(entry):
    problems = problems_of(subscriptions__notifications=[entry])
    assert any(
        p.startswith("stack build: Pulumi.build.yaml: bakehouse:factory.subscriptions.notifications[] is") for p in problems
    )


def test_approver_principals_are_required_and_must_be_estate_principals():
    assert any("approverPrincipals is missing; allowed: a non-empty list" in p for p in problems_of(approverPrincipals=None))
    problems = problems_of(approverPrincipals=["arn:aws:iam::999999999999:role/Outsider"])
    assert any("approverPrincipals[] is 'arn:aws:iam::999999999999:role/Outsider'" in p for p in problems)


def test_the_approvers_must_include_the_role_the_approver_principals_assume():
    problems = problems_of(approvers=["arn:aws:iam::333333333333:role/SomeoneElse"])
    assert any("role/BakehouseImageApprover" in p and "factory.approvers is" in p for p in problems), problems
