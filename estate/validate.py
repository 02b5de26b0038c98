"""One pass over a stack's whole `bakehouse:` config, before anything is declared.

The models (estate/models.py: keys, JSON types, per-value AWS rules), the stack checks
(estate/config.py: role, region, env, network, overlaps), the role's own section (the parser the
caller hands in, components/roots.py) and the estate-wide checks (estate/stack_files.py: one file per
env, one account per id) all run; every problem is raised in ONE ConfigError naming the file, the
key, the value and what is allowed. Secret values are never shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .config import (
    PROJECT_DIR,
    ConfigError,
    EncryptedText,
    Problems,
    SecretText,
    StackConfig,
    did_you_mean,
    parse_stack_config,
)
from .models import ROLES, SECRET_PREFIX, SECTION_ROLES, StackKeys, keys_of, model_at
from .stack_files import cross_file_problems, stack_files

NAMESPACE = "bakehouse:"
_PROBLEM_KEY = re.compile(r"stack \S+: \S+: (\S+) is ")


def validate_stack(
    stack: str,
    values: Mapping[str, Any],
    project_dir: Path = PROJECT_DIR,
    *,
    role_settings: Callable[[StackConfig], Any] | None = None,
    secret_keys: Collection[str] = (),
    deploying: bool | None = None,
) -> tuple[StackConfig, Any]:
    """`values`: the stack's `bakehouse:` keys (namespace optional), as Pulumi hands them (objects as JSON
    text) or already decoded. Returns (StackConfig, the role's settings) or raises one ConfigError."""
    estate: list[str] = []
    try:
        files = stack_files(project_dir)
        estate = cross_file_problems(project_dir)
    except ConfigError as err:  # a YAML error in a stack file, named by its file
        files, estate = {}, list(err.problems)
    # A project-level key the stack file sets came from the stack file (the CLI lets it win), so its
    # problems name that file.
    own_keys = set(files.get(stack) or {})
    problems = Problems(stack, own_keys)
    # What the engine says was set with --secret (it lists them for the program); the file is not asked,
    # since a value may come from elsewhere (an override, the environment).
    secrets = {k.removeprefix(NAMESPACE) for k in secret_keys}
    decoded = _decode_all(values, secrets, problems)

    model_problems = Problems(stack, own_keys)
    _check_model(decoded, model_problems)
    _check_placement(decoded, model_problems)

    checked = Problems(stack, own_keys)
    cfg = settings = None
    try:
        cfg = parse_stack_config(
            stack, decoded, _networks(files), deploying=deploying, project_dir=project_dir, stack_file_keys=own_keys
        )
    except ConfigError as err:
        checked.items.extend(err.problems)
    if cfg is not None and role_settings is not None:
        try:
            settings = role_settings(cfg)
        except ConfigError as err:
            checked.items.extend(err.problems)

    found = [*problems.items, *checked.items, *_not_yet_named(model_problems.items, checked.items), *estate]
    found = list(dict.fromkeys(found))
    if found or cfg is None:
        raise ConfigError(stack, found)
    return cfg, settings


def _decode_all(values: Mapping[str, Any], secrets: set[str], problems: Problems) -> dict[str, Any]:
    decoded = {}
    for raw_key, raw in values.items():
        key = raw_key.removeprefix(NAMESPACE)
        secret = key in secrets or key.startswith(SECRET_PREFIX)
        kind = EncryptedText if key in secrets else SecretText
        value = kind(raw) if secret and isinstance(raw, str) else raw
        # Pulumi passes structured values as JSON text and scalars as plain text.
        if isinstance(raw, str) and raw[:1] in ("{", "["):
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as err:
                where = "" if secret else f" (at character {err.pos}: {err.msg})"
                problems.add(
                    f"{NAMESPACE}{key}",
                    value,
                    "a YAML mapping or list (Pulumi hands it over as JSON, and this does not parse"
                    f"{where}); quote it if it is meant as text",
                )
                continue
        decoded[key] = value
    return decoded


def _check_model(values: Mapping[str, Any], problems: Problems) -> None:
    plain = {k: v for k, v in values.items() if not k.startswith(SECRET_PREFIX)}
    try:
        StackKeys.model_validate(plain)
    except ValidationError as err:
        for error in err.errors():
            loc = error["loc"]
            key = NAMESPACE + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
            value = None if error["type"] == "missing" else _at(values, loc)
            problems.add(key, value, _allowed(error, loc))


def _at(values: Mapping[str, Any], loc: tuple[Any, ...]) -> Any:
    value: Any = values
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "missing": "a value (required)",
}


def _allowed(error: Any, loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        keys = _keys_at(loc[:-1])
        return "one of the keys " + ", ".join(sorted(keys)) + did_you_mean(loc[-1], keys)
    if kind == "literal_error":
        return str(error["ctx"]["expected"]).replace("'", "")
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind in ("greater_than_equal", "less_than_equal"):
        return str(error["msg"]).lower()
    return _TYPE_WORDS.get(kind, str(error["msg"]))


def _keys_at(path: tuple[Any, ...]) -> list[str]:
    """The keys the models allow at `path` (for "one of the keys ..." and "did you mean")."""
    model = model_at(path)
    if model is None:
        return []
    keys = list(keys_of(model))
    return keys + [f"{SECRET_PREFIX}<name>"] if model is StackKeys else keys


def _check_placement(values: Mapping[str, Any], problems: Problems) -> None:
    """A section on a stack whose role does not read it would be silently ignored."""
    role = values.get("role")
    if role not in ROLES:
        return
    for key, roles in SECTION_ROLES.items():
        if key in values and role not in roles and key != "network":  # network: estate/config.py says it
            problems.add(f"{NAMESPACE}{key}", values[key], f"only on {' and '.join(roles)} stacks, not {role}")
    for key in values:
        if key.startswith(SECRET_PREFIX) and role != "workload":
            problems.add(f"{NAMESPACE}{key}", values[key], f"only on workload stacks (app secrets), not {role}")


def _not_yet_named(model_items: list[str], checked_items: list[str]) -> list[str]:
    """The model's problems about keys the detailed checks did not already name (theirs say more)."""
    named = [_path(m.group(1)) for item in checked_items if (m := _PROBLEM_KEY.match(item))]
    kept = []
    for item in model_items:
        match = _PROBLEM_KEY.match(item)
        path = _path(match.group(1)) if match else ()
        if not any(path[: len(other)] == other or other[: len(path)] == path for other in named):
            kept.append(item)
    return kept


def _path(key: str) -> tuple[str, ...]:
    return tuple(re.sub(r"\[[^\]]*\]", "", key).split("."))


def sibling_networks(project_dir: Path) -> dict[str, Any]:
    """The `bakehouse:network` of every stack file, to catch CIDRs overlapping across the estate."""
    return _networks(stack_files(project_dir))


def _networks(files: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {stack: cfg["bakehouse:network"] for stack, cfg in files.items() if cfg.get("bakehouse:network") is not None}
