"""The factory's target accounts, read from Parameter Store instead of being passed around.

The build stack writes one parameter per target env, `/bakehouse/factory/targets/<env>`, whose value
is the env's account id (components/build/factory_targets.py). Lists of every account in a document's
parameters or a schedule's input grew with the estate: StartAutomationExecution takes at most 50
values per parameter (SSM API reference, AutomationParameterValueList) and the settings parameter
4,096 characters (Standard tier). GetParametersByPath is authorized against the path, not the
parameters it returns (Systems Manager user guide, "How Parameter Store authorizes parameter
retrieval"), so one grant covers any number of envs.
"""

from __future__ import annotations

from typing import Any

from handlers.common import ACCOUNT_ID, BakehouseError
from handlers.contract import ENV_NAME
from handlers.contract import FACTORY_TARGETS_PATH as TARGETS_PATH


class MalformedTarget(BakehouseError):
    """A target parameter is not `<path>/<env>` holding a 12-digit account id."""


def read_targets(ssm: Any, path: str = TARGETS_PATH) -> tuple[tuple[str, str], ...]:
    """(env, account id) of every target env, sorted by env; every malformed parameter is named."""
    found: dict[str, str] = {}
    problems = []
    # One level only: the envs are direct children of the path.
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=False):
        for parameter in page["Parameters"]:
            name, value = parameter["Name"], parameter.get("Value")
            env = name.removeprefix(f"{path}/")
            if not ENV_NAME.fullmatch(env):
                problems.append(f"{name}: the env name must match {ENV_NAME.pattern}")
            elif not (isinstance(value, str) and ACCOUNT_ID.fullmatch(value)):
                problems.append(f"{name} is {value!r}, expected a 12-digit account id")
            else:
                found[env] = value
    accounts = sorted(found.values())
    problems += [
        f"account {a} is the target of more than one env under {path}"
        for a in sorted({a for a in accounts if accounts.count(a) > 1})
    ]
    if problems:
        raise MalformedTarget(f"target parameters under {path} are malformed: " + "; ".join(problems))
    return tuple(sorted(found.items()))
