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
    return path.name[len("Pulumi.") : -len(".yaml")]


def _parse(path: Path) -> Mapping[str, Any]:
    """The file's `config` mapping, parsed once per content (path, mtime, size) per process."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _CACHE:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(_stack_name(path), [f"{path.name} is not valid YAML: {err}"], file=path.name) from None
        if not isinstance(doc, Mapping) or not isinstance(doc.get("config") or {}, Mapping):
            raise ConfigError(_stack_name(path), [f"{path.name}: expected a mapping with a 'config' mapping"], file=path.name)
        _CACHE[key] = doc.get("config") or {}
    return _CACHE[key]


def project_config(project_dir: Path) -> Mapping[str, Any]:
    """Pulumi.yaml's `config` (project-level values, `{value: ...}` specs as written), parsed once."""
    path = project_dir / "Pulumi.yaml"
    return _parse(path) if path.exists() else {}


def stack_files(project_dir: Path) -> dict[str, Mapping[str, Any]]:
    """stack name -> its file's `config` mapping (raw values), for every Pulumi.<stack>.yaml."""
    return {_stack_name(path): _parse(path) for path in sorted(project_dir.glob("Pulumi.*.yaml"))}


def _listable_files(project_dir: Path) -> dict[str, Mapping[str, Any]]:
    """Like stack_files, but a file that does not parse counts as one with no role: the stack list must
    hold every stack, so that each one's own run reports the broken file (stack_files raises, naming it)."""
    listed: dict[str, Mapping[str, Any]] = {}
    for path in sorted(project_dir.glob("Pulumi.*.yaml")):
        try:
            listed[_stack_name(path)] = _parse(path)
        except ConfigError:
            listed[_stack_name(path)] = {}
    return listed


def prod_envs(project_dir: Path) -> tuple[str, ...]:
    """The org stack's `bakehouse:org.prodEnvs` (default ["prod"]): the envs that deploy last, behind approval."""
    for config in _listable_files(project_dir).values():
        if config.get("bakehouse:role") == "org":
            org = config.get("bakehouse:org")
            prod = org.get("prodEnvs", ["prod"]) if isinstance(org, Mapping) else ["prod"]
            return tuple(str(env) for env in prod) if isinstance(prod, list) else ()
    return ("prod",)


def stacks_in_deploy_order(project_dir: Path) -> tuple[str, ...]:
    """org, security, build, the non-prod workloads, then prod ones (by name within each); a file with no
    known role (or that does not parse) comes last."""
    files = _listable_files(project_dir)
    prod = prod_envs(project_dir)

    def rank(stack: str) -> tuple[int, bool, str]:
        role = files[stack].get("bakehouse:role")
        return (ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER), stack in prod, stack)

    return tuple(sorted(files, key=rank))


def workload_stacks(project_dir: Path) -> tuple[str, ...]:
    files = _listable_files(project_dir)
    return tuple(s for s in stacks_in_deploy_order(project_dir) if files[s].get("bakehouse:role") == "workload")


def cross_file_problems(project_dir: Path) -> list[str]:
    """What no single stack file can get wrong alone: two files claiming one env (or one of the
    singleton roles), and two entries of `bakehouse:accounts` naming one account id."""
    problems: list[str] = []
    claims: dict[str, list[str]] = {}
    for stack, config in stack_files(project_dir).items():
        role = config.get("bakehouse:role")
        env = config.get("bakehouse:env", stack) if role == "workload" else role
        if isinstance(env, str):
            claims.setdefault(env, []).append(f"Pulumi.{stack}.yaml")
    for env, files in sorted(claims.items()):
        if len(files) > 1:
            problems.append(f"{' and '.join(files)} both claim env {env!r}; allowed: one stack file per env")
    if (project_dir / "Pulumi.yaml").exists():
        accounts = project_config(project_dir).get("bakehouse:accounts") or {}
        accounts = accounts.get("value", accounts) if isinstance(accounts, Mapping) else {}
        owners: dict[str, list[str]] = {}
        for key, account_id in accounts.items() if isinstance(accounts, Mapping) else ():
            owners.setdefault(str(account_id), []).append(str(key))
        for account_id, keys in sorted(owners.items()):
            if len(keys) > 1:
                problems.append(
                    f"Pulumi.yaml bakehouse:accounts gives {', '.join(keys)} the same account "
                    f"{account_id}; allowed: one account per env (AWS accounts are the isolation boundary)"
                )
    return problems
