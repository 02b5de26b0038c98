"""bakehouse:factory.canaryEnv: the target env each candidate runs in as a canary before approval
(handlers/dev_canary.py reads it from the settings); dev unless configured, never the protected env."""

from __future__ import annotations

import copy

import pytest

from components.build.factory_config import factory_config
from tests.build._build_config_support import build_cfg, problems_of, shipped_factory


def test_the_canary_runs_in_dev_unless_configured_and_the_settings_say_so():
    factory = {k: v for k, v in copy.deepcopy(shipped_factory()).items() if k != "canaryEnv"}
    parsed = factory_config(build_cfg(factory))
    assert parsed.canary_env == "dev" and parsed.as_settings()["canaryEnv"] == "dev"


def test_the_canary_env_comes_from_config():
    parsed = factory_config(build_cfg({**copy.deepcopy(shipped_factory()), "canaryEnv": "uat"}))
    assert parsed.as_settings()["canaryEnv"] == "uat"


@pytest.mark.parametrize("value", ["prod", "staging", 3, ""])
def test_a_canary_env_that_is_protected_or_not_a_target_is_refused_with_the_key(value):
    problems = problems_of(canaryEnv=value)
    assert any("canaryEnv" in p and "one of the target envs" in p for p in problems), problems
