"""Every `Pulumi.<stack>.yaml` of the project, parsed once per process.

The estate is the set of stack files: the list of stacks, which of them are workloads and in what
order they deploy all derive from here, so a new env is one new file and nothing else to edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .config import ConfigError

# The order `pulumi up` must follow: each role reads what the one before it created.
ROLE_ORDER = ("org", "security", "build", "workload")

_CACHE: dict[tuple[str, int, int], Mapping[str, Any]] = {}


def _stack_name(path: Path) -> str:
    return path.name[len("Pulumi."):-len(".yaml")]


def _parse(path: Path) -> Mapping[str, Any]:
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _CACHE:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(_stack_name(path), [f"{path.name} is not valid YAML: {err}"]) from None
        if not isinstance(doc, Mapping) or not isinstance(doc.get("config") or {}, Mapping):
            raise ConfigError(_stack_name(path), [f"{path.name}: expected a mapping with a 'config' mapping"])
        _CACHE[key] = doc.get("config") or {}
    return _CACHE[key]


def stack_files(project_dir: Path) -> dict[str, Mapping[str, Any]]:
    """stack name -> its file's `config` mapping (raw values), for every Pulumi.<stack>.yaml."""
    return {_stack_name(path): _parse(path) for path in sorted(project_dir.glob("Pulumi.*.yaml"))}


def prod_envs(project_dir: Path) -> tuple[str, ...]:
    """The org stack's `bakehouse:org.prodEnvs` (default ["prod"]): the envs that deploy last, behind approval."""
    for config in stack_files(project_dir).values():
        if config.get("bakehouse:role") == "org":
            org = config.get("bakehouse:org")
            prod = org.get("prodEnvs", ["prod"]) if isinstance(org, Mapping) else ["prod"]
            return tuple(str(env) for env in prod) if isinstance(prod, list) else ()
    return ("prod",)


def stacks_in_deploy_order(project_dir: Path) -> tuple[str, ...]:
    """org, security, build, the non-prod workloads, then prod ones (by name within each); a file with no
    known role comes last."""
    files = stack_files(project_dir)
    prod = prod_envs(project_dir)

    def rank(stack: str) -> tuple[int, bool, str]:
        role = files[stack].get("bakehouse:role")
        return (ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER), stack in prod, stack)

    return tuple(sorted(files, key=rank))


def workload_stacks(project_dir: Path) -> tuple[str, ...]:
    files = stack_files(project_dir)
    return tuple(s for s in stacks_in_deploy_order(project_dir) if files[s].get("bakehouse:role") == "workload")
