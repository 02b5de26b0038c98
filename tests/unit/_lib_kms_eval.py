"""A small, explicit evaluator of one KMS key policy: "may this caller do this action on this key?".

Private to the LIB-KMS tests (test_lib_kms_*.py, test_key_use_matrix.py) until the shared evaluator
(tests/iam/) lands. It models what a key policy decides and no more:
- explicit Deny wins, then any matching Allow, else implicit deny;
- Principal: "*", a role ARN (matches only the role whose unique id the policy captured: a role
  deleted and recreated under the same ARN no longer matches), an account (`arn:aws:iam::<id>:root`
  or the bare id: matches every principal of that account, but only *delegates*: the caller's IAM
  policy must also allow), a service principal;
- Action with `*`/`?` wildcards, case-insensitive;
- conditions: String/Arn Equals/Like and their Not forms, Bool, Null, ...IfExists, ForAnyValue and
  ForAllValues. A key absent from the request fails a positive operator and satisfies a negated one
  (IAM User Guide, "IAM JSON policy elements: Condition operators").
Key policies take Resource "*" (the key itself), so resources are not matched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ALLOW, DELEGATED, DENY, IMPLICIT_DENY = "Allow", "Delegated", "Deny", "ImplicitDeny"


@dataclass(frozen=True)
class Caller:
    """Who makes the request. `arn` is a role ARN (aws:PrincipalArn) or a service principal name."""

    arn: str
    service: bool = False
    recreated: bool = False  # a role deleted and created again under the same ARN (a new unique id)

    @property
    def account(self) -> str | None:
        return None if self.service else self.arn.split(":")[4]

    def context(self) -> dict[str, Any]:
        if self.service:
            return {}
        return {"aws:PrincipalArn": self.arn, "aws:PrincipalAccount": self.account,
                "kms:CallerAccount": self.account, "aws:PrincipalType": "AssumedRole"}


@dataclass(frozen=True)
class Verdict:
    decision: str  # ALLOW (the key policy alone allows), DELEGATED (needs the caller's IAM too), DENY, IMPLICIT_DENY
    sids: tuple[str, ...] = field(default=())  # the statements that decided it

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOW

    @property
    def allowed_with_iam(self) -> bool:
        return self.decision in (ALLOW, DELEGATED)


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _wild(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


def _principal(stmt: Mapping[str, Any], caller: Caller) -> str | None:
    """ALLOW when the statement names the caller itself, DELEGATED when it names the caller's account."""
    principal = stmt.get("Principal")
    if principal == "*" or (isinstance(principal, Mapping) and _as_list(principal.get("AWS")) == ["*"]):
        return ALLOW
    if not isinstance(principal, Mapping):
        return None
    if caller.service:
        return ALLOW if caller.arn in _as_list(principal.get("Service", [])) else None
    found = None
    for named in _as_list(principal.get("AWS", [])):
        if named == caller.arn and not caller.recreated:
            return ALLOW
        if named in (f"arn:aws:iam::{caller.account}:root", caller.account):
            found = DELEGATED
    return found


def _condition(op: str, key: str, expected: Any, context: Mapping[str, Any]) -> bool:
    quantifier, _, base = op.rpartition(":")
    if_exists = base.endswith("IfExists")
    base = base.removesuffix("IfExists")
    present = key in context
    if base == "Null":
        return (not present) == (str(_as_list(expected)[0]).lower() == "true")
    negated = "Not" in base
    if not present:
        return if_exists or negated
    # Policy variables in condition values expand from the request (IAM User Guide, "Policy variables").
    wanted = [re.sub(r"\$\{([^}]+)\}", lambda m: str(context.get(m.group(1), m.group(0))), str(e))
              for e in _as_list(expected)]

    def one(actual: Any) -> bool:
        a = str(actual)
        if base in ("StringEquals", "ArnEquals"):
            return a in wanted
        if base in ("StringNotEquals", "ArnNotEquals"):
            return a not in wanted
        if base in ("StringLike", "ArnLike"):
            return any(_wild(w, a) for w in wanted)
        if base in ("StringNotLike", "ArnNotLike"):
            return not any(_wild(w, a) for w in wanted)
        if base == "Bool":
            return a.lower() in [w.lower() for w in wanted]
        raise NotImplementedError(f"condition operator {op} (key {key})")

    actual = _as_list(context[key])
    if quantifier == "ForAllValues":
        return all(one(a) for a in actual)
    if quantifier == "ForAnyValue":
        return any(one(a) for a in actual)
    return one(actual[0])


def _applies(stmt: Mapping[str, Any], action: str, context: Mapping[str, Any]) -> bool:
    if "Action" in stmt:
        if not any(_wild(p, action, case_sensitive=False) for p in _as_list(stmt["Action"])):
            return False
    elif any(_wild(p, action, case_sensitive=False) for p in _as_list(stmt["NotAction"])):
        return False
    return all(_condition(op, key, expected, context)
               for op, pairs in (stmt.get("Condition") or {}).items() for key, expected in pairs.items())


def evaluate(policy: str | Mapping[str, Any], caller: Caller, action: str,
             context: Mapping[str, Any] | None = None) -> Verdict:
    doc = json.loads(policy) if isinstance(policy, str) else policy
    request = {**caller.context(), **(context or {})}
    allows: dict[str, list[str]] = {ALLOW: [], DELEGATED: []}
    for index, stmt in enumerate(_as_list(doc["Statement"])):
        how = _principal(stmt, caller)
        if how is None or not _applies(stmt, action, request):
            continue
        sid = stmt.get("Sid") or f"#{index}"
        if stmt["Effect"] == "Deny":
            return Verdict(DENY, (sid,))
        allows[how].append(sid)
    if allows[ALLOW]:
        return Verdict(ALLOW, tuple(allows[ALLOW]))
    if allows[DELEGATED]:
        return Verdict(DELEGATED, tuple(allows[DELEGATED]))
    return Verdict(IMPLICIT_DENY)


def identity_allows(policies: list[str | Mapping[str, Any]], action: str, resource: str,
                    context: Mapping[str, Any] | None = None) -> bool:
    """The caller's own IAM policies (no Principal), for requests a key policy only delegates."""
    decision = False
    for policy in policies:
        doc = json.loads(policy) if isinstance(policy, str) else policy
        for stmt in _as_list(doc["Statement"]):
            if not _applies(stmt, action, context or {}):
                continue
            if "Resource" in stmt and not any(_wild(r, resource) for r in _as_list(stmt["Resource"])):
                continue
            if "NotResource" in stmt and any(_wild(r, resource) for r in _as_list(stmt["NotResource"])):
                continue
            if stmt["Effect"] == "Deny":
                return False
            decision = True
    return decision
