"""A small evaluator of identity/resource policy documents, enough to ask "may X do A on R?".

Explicit Deny wins, then any Allow, else implicit deny (as IAM evaluates a single policy). Actions
and resources match case-insensitively/case-sensitively as IAM does, with `*` and `?` wildcards;
conditions support the operators this project's policies use. A condition key absent from the
request context fails every operator except Null and the ...IfExists forms, as in IAM.
Also a tiny EventBridge pattern matcher for the rules' event patterns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

ALLOW, DENY, IMPLICIT_DENY = "Allow", "Deny", "ImplicitDeny"


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _wild(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    # Only * and ? are special in IAM (fnmatch would also treat [ ] as a class).
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _substitute(pattern: str, context: Mapping[str, Any]) -> str:
    return re.sub(r"\$\{([^}]+)\}", lambda m: str(context.get(m.group(1), m.group(0))), pattern)


def _condition_ok(op: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    quantifier, _, base = op.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    present = key in context
    if base == "Null":
        want_absent = str(_as_list(expected)[0]).lower() == "true"
        return (not present) == want_absent
    if not present:
        return if_exists
    actual_values = _as_list(context[key])
    expected_values = [_substitute(str(e), context) for e in _as_list(expected)]  # IAM expands ${...} here too

    def one(actual: Any) -> bool:
        a = str(actual)
        if base in ("StringEquals", "ArnEquals"):
            return a in expected_values
        if base == "StringNotEquals":
            return a not in expected_values
        if base in ("StringLike", "ArnLike"):
            return any(_wild(e, a) for e in expected_values)
        if base == "StringNotLike":
            return not any(_wild(e, a) for e in expected_values)
        if base == "Bool":
            return a.lower() in [e.lower() for e in expected_values]
        if base.startswith("Numeric"):
            num, ref = float(a), float(expected_values[0])
            return {"NumericLessThan": num < ref, "NumericLessThanEquals": num <= ref,
                    "NumericGreaterThan": num > ref, "NumericGreaterThanEquals": num >= ref,
                    "NumericEquals": num == ref}[base]
        if base.startswith("Date"):
            ref = expected_values[0]
            return {"DateLessThan": a < ref, "DateGreaterThan": a > ref}[base]
        raise NotImplementedError(f"condition operator {op}")

    if quantifier == "ForAnyValue":
        return any(one(a) for a in actual_values)
    if quantifier == "ForAllValues":
        return all(one(a) for a in actual_values)
    return one(actual_values[0])


def _matches(stmt: Mapping[str, Any], action: str, resource: str, context: Mapping[str, Any]) -> bool:
    if "Action" in stmt:
        if not any(_wild(p, action, case_sensitive=False) for p in _as_list(stmt["Action"])):
            return False
    elif any(_wild(p, action, case_sensitive=False) for p in _as_list(stmt["NotAction"])):
        return False
    if "Resource" in stmt:
        if not any(_wild(_substitute(p, context), resource) for p in _as_list(stmt["Resource"])):
            return False
    elif "NotResource" in stmt:
        if any(_wild(_substitute(p, context), resource) for p in _as_list(stmt["NotResource"])):
            return False
    for op, pairs in (stmt.get("Condition") or {}).items():
        for key, expected in pairs.items():
            if not _condition_ok(op, key, expected, context):
                return False
    return True


def evaluate(policy: str | Mapping[str, Any], action: str, resource: str,
             context: Mapping[str, Any] | None = None) -> str:
    doc = json.loads(policy) if isinstance(policy, str) else policy
    context = context or {}
    decision = IMPLICIT_DENY
    for stmt in _as_list(doc["Statement"]):
        if _matches(stmt, action, resource, context):
            if stmt["Effect"] == "Deny":
                return DENY
            decision = ALLOW
    return decision


def allowed(policy: str | Mapping[str, Any], action: str, resource: str,
            context: Mapping[str, Any] | None = None) -> bool:
    return evaluate(policy, action, resource, context) == ALLOW


# --- EventBridge event patterns -------------------------------------------------------------------
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

