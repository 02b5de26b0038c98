"""The registry: which root component (typed bakehouse:<role>:Stack) a stack's role builds, and the validation of
its role section. Each root lives in its account's folder: components/<role>/<role>_stack.py."""

from __future__ import annotations

from typing import Any

import pulumi

from estate.config import ConfigError, StackConfig

from .build.build_stack import BuildStack
from .lib.providers import override_problems
from .org.org_stack import OrgStack
from .security.security_stack import SecurityStack
from .workload.workload_stack import WorkloadStack

ROOTS = {"org": OrgStack, "security": SecurityStack, "build": BuildStack, "workload": WorkloadStack}


def role_settings(cfg: StackConfig) -> Any:
    """Parse the role's own section and the provider override (ConfigError listing every problem);
    pure, declares nothing. estate.validate.validate_stack runs it in the same pass as the rest."""
    problems = []
    settings = None
    try:
        settings = ROOTS[cfg.role].settings(cfg)
    except ConfigError as err:
        problems.extend(err.problems)
    problems.extend(override_problems(cfg))
    if problems:
        raise ConfigError(cfg.stack, problems)
    return settings


def build_root(cfg: StackConfig, settings: Any, opts: pulumi.ResourceOptions):
    return ROOTS[cfg.role](cfg.stack, cfg, opts, settings=settings)
