"""Whole-stack rules: default tags on every resource, and dev/uat/prod declaring the same types.

Default tags come from the account's explicit provider, so a resource carries them when its
provider's `defaultTags` (CrossGuard hands each resource its provider's inputs) plus its own `tags`
hold every required key. A resource on the ambient default provider has none and is caught.

CrossGuard judges one stack at a time, so "the three workload stacks declare the same types" is
checked against a committed manifest, `workload_types.json`, which a test regenerates from the
mock runs of dev, uat and prod (and fails when it is stale or the three differ).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .support import (
    UNKNOWN,
    Config,
    Res,
    get,
    is_workload_stack,
    maybe_json,
    resource_policy,
    stack_policy,
)

MANIFEST = Path(__file__).resolve().parent / "workload_types.json"
REQUIRED_TAGS = ["bakehouse:stack", "bakehouse:env", "bakehouse:managed-by"]
# The stack root is the engine's, not the program's.
IGNORED_TYPES = {"pulumi:pulumi:Stack"}


def _tags(value: Any) -> Mapping[str, Any] | None:
    value = maybe_json(value)
    return value if isinstance(value, Mapping) else None


def check_default_tags(res: Res, config: Config) -> Iterator[str]:
    if not res.type.startswith("aws:"):
        return  # components and providers carry no tags of their own
    raw_default = get(maybe_json(get(res.provider_props or {}, "defaultTags")), "tags")
    if raw_default is UNKNOWN or res.get("tags") is UNKNOWN:
        return  # judged again on `pulumi up`, when known
    provider_tags = _tags(raw_default) or {}
    own = _tags(res.get("tags")) or {}
    merged = {**provider_tags, **own}
    required = config.get("requiredTags") or REQUIRED_TAGS
    missing = [k for k in required if k not in merged]
    if missing:
        source = "its provider sets no default tags" if not provider_tags else "its provider's default tags lack them"
        yield f"{res.name} is missing tags {', '.join(missing)} ({source})"
    stack_tag = merged.get("bakehouse:stack")
    if isinstance(stack_tag, str) and stack_tag != res.stack:
        yield f"{res.name} is tagged bakehouse:stack={stack_tag} but belongs to stack {res.stack}"


def check_pinned_provider(res: Res, config: Config) -> Iterator[str]:
    if not res.type.startswith("aws:"):
        return
    props = res.provider_props or {}
    accounts = maybe_json(get(props, "allowedAccountIds"))
    roles = maybe_json(get(props, "assumeRoles"))
    if accounts is UNKNOWN or roles is UNKNOWN:
        return
    accounts = [a for a in accounts if isinstance(a, str)] if isinstance(accounts, list) else []
    if len(accounts) != 1:
        yield (
            f"{res.name} is created through a provider not pinned to one account "
            f"(allowedAccountIds: {', '.join(accounts) or 'none'})"
        )
        return
    arns = [get(r, "roleArn") for r in roles] if isinstance(roles, list) else []
    arns = [a for a in arns if a is not UNKNOWN]
    if not arns:
        yield f"{res.name} is created through a provider that assumes no role in account {accounts[0]}"
    for arn in arns:
        if not (isinstance(arn, str) and arn.startswith(f"arn:aws:iam::{accounts[0]}:role/")):
            yield f"{res.name}'s provider assumes {arn}, a role outside its pinned account {accounts[0]}"


def declared_types(types: Any) -> list[str]:
    return sorted({t for t in types if t not in IGNORED_TYPES})


def load_manifest(path: Path | None = None) -> dict[str, Any]:
    return json.loads((path or MANIFEST).read_text())


def check_workload_parity(resources: list[Res], config: Config) -> Iterator[tuple[str | None, str]]:
    if not resources or not is_workload_stack(resources):
        return
    stack = resources[0].stack
    try:
        expected = set(load_manifest()["types"])
    except (OSError, ValueError, KeyError) as err:
        yield None, f"workload stack {stack}: manifest {MANIFEST.name} unreadable ({err})"
        return
    actual = set(declared_types(r.type for r in resources))
    for type_token in sorted(actual - expected):
        first = next(r for r in resources if r.type == type_token)
        yield (
            first.urn,
            (f"{first.name} is a {type_token}, a type the other workload stacks do not declare (not in {MANIFEST.name})"),
        )
    for type_token in sorted(expected - actual):
        yield None, f"workload stack {stack} declares no {type_token}, which the other workload stacks do"


POLICIES = [
    resource_policy(
        "default-tags",
        "Every AWS resource carries the estate's default tags, through its explicit provider or its own tags.",
        "Create the resource under the stack's account provider (parent=self in a component); never the default provider.",
        (),  # every type: filtered inside the check
        check_default_tags,
        config={"requiredTags": {"type": "array", "items": {"type": "string"}, "default": REQUIRED_TAGS}},
    ),
    resource_policy(
        "account-pinned-provider",
        "Every AWS resource is created through a provider pinned to one account that assumes a role there.",
        "Pass the stack's account provider (components.lib.providers.account_provider) down through parent=self.",
        (),
        check_pinned_provider,
    ),
    stack_policy(
        "workload-stacks-identical",
        "dev, uat and prod declare the same resource types (they differ only in configuration).",
        "Make the difference a config value, not a code path; then run "
        "`python -m tools.policy_runner --write-workload-types` and commit policy/workload_types.json.",
        check_workload_parity,
    ),
]
