"""The build stack's config as the loader makes it, with the factory section replaced: shared by the build config tests."""

from __future__ import annotations

import copy

import pytest
import yaml

from components.build.factory_config import factory_config
from estate.config import ConfigError, parse_stack_config
from tools.mockrun import PROJECT_DIR, stack_config

BUILD_FILE = PROJECT_DIR / "Pulumi.build.yaml"


def shipped_factory() -> dict:
    return yaml.safe_load(BUILD_FILE.read_text())["config"]["bakehouse:factory"]


def build_cfg(factory: dict | None):
    """The build stack's StackConfig as the loader makes it, with the factory section replaced."""
    config, _ = stack_config("build")
    values = {k.removeprefix("bakehouse:"): yaml.safe_load(v) if v[:1] in "[{" else v for k, v in config.items()}
    if factory is None:
        values.pop("factory", None)
    else:
        values["factory"] = factory
    return parse_stack_config("build", values)


def problems_of(**changes) -> list[str]:
    factory = copy.deepcopy(shipped_factory())
    for key, value in changes.items():
        path = key.split("__")
        target = factory
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    with pytest.raises(ConfigError) as err:
        factory_config(build_cfg(factory))
    assert err.value.stack == "build"
    return err.value.problems
