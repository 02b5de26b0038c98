"""A small EventBridge event-pattern matcher for the rules' patterns (exact values, prefix, numeric)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def event_matches(pattern: str | Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    pattern = json.loads(pattern) if isinstance(pattern, str) else pattern
    for key, rule in pattern.items():
        if isinstance(rule, Mapping):
            value = event.get(key)
            if not isinstance(value, Mapping) or not event_matches(rule, value):
                return False
            continue
        if key not in event or not any(_value_matches(r, event[key]) for r in rule):
            return False
    return True


def _value_matches(rule: Any, value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    if not isinstance(rule, Mapping):
        return rule in values
    if "prefix" in rule:
        return any(isinstance(v, str) and v.startswith(rule["prefix"]) for v in values)
    if "numeric" in rule:
        ops = rule["numeric"]
        checks = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b,
                  "<": lambda a, b: a < b, "=": lambda a, b: a == b}
        return any(isinstance(v, int | float) and all(checks[ops[i]](v, ops[i + 1]) for i in range(0, len(ops), 2))
                   for v in values)
    raise NotImplementedError(f"event pattern rule {rule}")

