"""EventBridge event-pattern matching for the rules' patterns: moto's matcher (moto.events.models.EventPattern),
the one moto's own EventBridge uses to route put_events, so the tests do not maintain a second one.

moto's matcher answers True for a named filter it does not know (a typo such as "prefx" would match every
event), so patterns are checked against the operators EventBridge documents before matching
(EventBridge user guide, "Content filtering in Amazon EventBridge event patterns")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from moto.events.models import EventPattern

OPERATORS = frozenset({"prefix", "suffix", "equals-ignore-case", "anything-but", "numeric", "exists", "cidr", "wildcard"})


def event_matches(pattern: str | Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    raw = pattern if isinstance(pattern, str) else json.dumps(pattern)
    parsed = EventPattern.load(raw)
    _check_operators(parsed.get_pattern())
    return parsed.matches_event(dict(event))


def _check_operators(node: Mapping[str, Any]) -> None:
    for key, value in node.items():
        if key == "$or":
            for branch in value:
                _check_operators(branch)
        elif isinstance(value, Mapping):
            _check_operators(value)
        else:
            for rule in value:
                if isinstance(rule, Mapping):
                    _check_filter(rule)


def _check_filter(rule: Mapping[str, Any]) -> None:
    for name, value in rule.items():
        if name not in OPERATORS:
            raise ValueError(f"event pattern filter {name!r} is not an EventBridge operator ({sorted(OPERATORS)})")
        if name in {"anything-but", "prefix", "suffix"} and isinstance(value, Mapping):
            _check_filter(value)
