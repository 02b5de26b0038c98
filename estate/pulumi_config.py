"""Read `bakehouse:` config from the Pulumi runtime and the stack files beside it, then validate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from .config import ConfigError, StackConfig, parse_stack_config
from .stack_files import cross_file_problems, stack_files

PROJECT_DIR = Path(__file__).resolve().parent.parent
NAMESPACE = "bakehouse:"


def load_stack_config(project_dir: Path = PROJECT_DIR) -> StackConfig:
    stack = pulumi.get_stack()
    values = {key[len(NAMESPACE) :]: _decode(raw) for key, raw in _runtime_values().items() if key.startswith(NAMESPACE)}
    estate_problems = cross_file_problems(project_dir)
    try:
        parsed = parse_stack_config(stack, values, sibling_networks(project_dir))
    except ConfigError as err:
        raise ConfigError(stack, [*err.problems, *estate_problems]) from None
    if estate_problems:
        raise ConfigError(stack, estate_problems)
    return parsed


def _runtime_values() -> dict[str, Any]:
    # The CLI hands config to the program as PULUMI_CONFIG; tests and the mock runner set it in-process.
    merged = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return merged


def _decode(raw: Any) -> Any:
    # Pulumi passes structured values as JSON text and scalars as plain text.
    if isinstance(raw, str) and raw[:1] in ("{", "["):
        return json.loads(raw)
    return raw


def sibling_networks(project_dir: Path) -> dict[str, Any]:
    """The `bakehouse:network` of every stack file, to catch CIDRs overlapping across the estate."""
    return {
        stack: config["bakehouse:network"]
        for stack, config in stack_files(project_dir).items()
        if config.get("bakehouse:network") is not None
    }
