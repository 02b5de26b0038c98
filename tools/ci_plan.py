"""What CI runs, derived from config (bakehouse:accounts, bakehouse:org.prodEnvs): the stacks to
preview, the deploy order, and for each stack the GitHub environment and the management-account role
its job assumes. The workflow reads this instead of listing envs, ids or roles itself.

Usage: python -m tools.ci_plan   (prints `plan=<json>`, the form $GITHUB_OUTPUT takes)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.org.org_stack import parse_org_settings
from estate.naming import (
    GITHUB_PREVIEW_ROLE,
    github_deploy_role,
    github_environment,
    role_arn,
)
from estate.validate import validate_stack
from tools.mockrun import PROJECT_DIR, stack_config

CORE_STACKS = (("org", "management"), ("security", "security"), ("build", "build"))


def plan(project_dir: Path = PROJECT_DIR, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    text, _ = stack_config("org", project_dir, overrides)
    values = {k: v for k, v in text.items() if k.startswith("bakehouse:")}
    cfg, org = validate_stack("org", values, project_dir, role_settings=parse_org_settings)
    prod_envs = org.prod_envs
    management = cfg.estate.accounts.management

    def deploy(stack: str, account_key: str) -> dict[str, str]:
        environment = github_environment(account_key, prod_envs)
        return {"stack": stack, "environment": environment, "role": role_arn(management, github_deploy_role(environment))}

    workloads = [deploy(env, env) for env in cfg.estate.accounts.workloads]
    return {
        "home_region": cfg.estate.home_region,
        "preview_role": role_arn(management, GITHUB_PREVIEW_ROLE),
        "stacks": [stack for stack, _ in CORE_STACKS] + [w["stack"] for w in workloads],
        "core": {stack: deploy(stack, key) for stack, key in CORE_STACKS},
        "workloads": workloads,
    }


if __name__ == "__main__":
    print("plan=" + json.dumps(plan(), separators=(",", ":")))
