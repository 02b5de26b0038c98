"""Config overrides for an estate of N workload envs, for size tests (tools.mockrun.run_stack overrides).

The stack files stay as they are (dev, uat, prod); the overrides replace the project-level account
map and the sections that name every env, so org, security and build see N workload accounts with
valid 12-digit ids and distinct emails. Workload stacks take `network_for(env)`: /20s from
10.64.0.0/10, none overlapping each other or build's 10.0.0.0/20.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import yaml

from tools.mockrun import PROJECT_DIR

SIZES = (3, 50, 200, 500)
_SUPERNET = ipaddress.ip_network("10.64.0.0/10")


def env_names(count: int) -> list[str]:
    """dev, uat, prod (the stack files that exist), then w0004, w0005, ..."""
    base = ["dev", "uat", "prod"]
    return base[:count] + [f"w{i:04d}" for i in range(len(base) + 1, count + 1)]


def account_id(index: int) -> str:
    return f"7{index:011d}"


def _stack(name: str) -> dict[str, Any]:
    return yaml.safe_load((PROJECT_DIR / f"Pulumi.{name}.yaml").read_text())["config"]


def accounts(count: int) -> dict[str, str]:
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]["bakehouse:accounts"]["value"]
    core = {k: project[k] for k in ("management", "security", "build")}
    return {**core, **{env: account_id(i) for i, env in enumerate(env_names(count), start=1)}}


def overrides(stack: str, count: int) -> dict[str, Any]:
    """`bakehouse:` overrides for the org, security or build stack (or a workload env) at `count` envs."""
    envs = env_names(count)
    result: dict[str, Any] = {"bakehouse:accounts": accounts(count)}
    if stack == "org":
        org = dict(_stack("org")["bakehouse:org"])
        org["accountEmails"] = {
            "security": "aws+security@example.com",
            "build": "aws+build@example.com",
            **{env: f"aws+{env}@example.com" for env in envs},
        }
        org["prodEnvs"] = [e for e in org.get("prodEnvs", ["prod"]) if e in envs] or [envs[-1]]
        result["bakehouse:org"] = org
    elif stack == "build":
        factory = dict(_stack("build")["bakehouse:factory"])
        factory["targetEnvs"] = envs
        factory["autoApproveEnvs"] = [e for e in factory.get("autoApproveEnvs", []) if e in envs]
        result["bakehouse:factory"] = factory
    return result


def network_for(env: str, count: int) -> Mapping[str, Any]:
    subnets = _SUPERNET.subnets(new_prefix=20)
    for name in env_names(count):
        cidr = str(next(subnets))
        if name == env:
            return {"cidr": cidr, "azs": 2}
    raise KeyError(env)
