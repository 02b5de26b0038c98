"""Read `bakehouse:` config from the Pulumi runtime and validate it, with the stack files beside it, in one pass."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from .config import StackConfig
from .validate import NAMESPACE, validate_stack

PROJECT_DIR = Path(__file__).resolve().parent.parent


def load_validated_config(
    role_settings: Callable[[StackConfig], Any], project_dir: Path = PROJECT_DIR
) -> tuple[StackConfig, Any]:
    """(StackConfig, the role's settings), or one ConfigError with every problem; declares nothing."""
    values = {key: raw for key, raw in _runtime_values().items() if key.startswith(NAMESPACE)}
    secret_keys = set(runtime_config.get_config_secret_keys_env()) | {k for k in values if runtime_config.is_config_secret(k)}
    return validate_stack(pulumi.get_stack(), values, project_dir, role_settings=role_settings, secret_keys=secret_keys)


def load_stack_config(project_dir: Path = PROJECT_DIR) -> StackConfig:
    """The stack keys alone (no role section parsed), for tools that need only the StackConfig."""
    return load_validated_config(lambda cfg: None, project_dir)[0]


def _runtime_values() -> dict[str, Any]:
    # The CLI hands config to the program as PULUMI_CONFIG; tests and the mock runner set it in-process.
    merged = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return merged
