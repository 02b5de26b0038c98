"""What every policy of the pack shares: safe reads of preview values, policy documents, stack names.

CrossGuard hands a policy its resource's properties wrapped in a proxy that raises `UnknownValueError`
on any value not yet known in preview (an id, an ARN of a resource still to be created). A policy
that lets that escape is reported as "can't run during preview" and judges nothing, so each policy
here first copies the properties into plain Python with `UNKNOWN` in place of such values and then
decides: an unknown value is never a violation (the same policy runs again on `pulumi up`, when the
value is known), and it never crashes the pack.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARCHIVE_VALUE,
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_ASSET_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)
from pulumi_policy.secret import Secret

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY
_SENTINELS = frozenset(
    {
        UNKNOWN_ARCHIVE_VALUE,
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_ASSET_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)


class _Unknown:
    """A value that preview cannot know yet."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Any = _Unknown()


def plain(value: Any) -> Any:
    """Proxied (or raw) preview values as plain dicts/lists, unknowns as UNKNOWN, secrets unwrapped."""
    if isinstance(value, Secret):
        return plain(value.value)
    if isinstance(value, str):
        return UNKNOWN if value in _SENTINELS else value
    if isinstance(value, Mapping):
        out = {}
        for key in list(value):
            out[key] = plain(_read(lambda k=key: value[k]))
        return out
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [plain(_read(lambda i=i: value[i])) for i in range(len(value))]
    return value


def _read(thunk: Callable[[], Any]) -> Any:
    try:
        return thunk()
    except UnknownValueError:
        return UNKNOWN


def get(data: Any, *path: str | int, default: Any = None) -> Any:
    """data[path...] on plain values; `default` when a step is missing, UNKNOWN when one is unknown."""
    current = data
    for step in path:
        if current is UNKNOWN:
            return UNKNOWN
        if isinstance(step, int):
            if not isinstance(current, list) or not -len(current) <= step < len(current):
                return default
            current = current[step]
        else:
            if not isinstance(current, Mapping) or step not in current:
                return default
            current = current[step]
    return default if current is None else current


def as_list(value: Any) -> list[Any]:
    """A list property as a list of its known elements (None and UNKNOWN give [])."""
    if isinstance(value, list):
        return [v for v in value if v is not UNKNOWN]
    return []


def truthy(value: Any) -> bool | None:
    """True/False for booleans and their string forms (launch templates use "true"); None if unknown/unset."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def maybe_json(value: Any) -> Any:
    """Documents and provider settings arrive as JSON text; parse them, leave anything else alone."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def stack_of(urn: str) -> str:
    """urn:pulumi:<stack>::<project>::<type chain>::<name> -> <stack>."""
    head = urn.split("::", 1)[0]
    return head.split(":")[-1] if head.startswith("urn:pulumi:") else ""


def name_of(urn: str) -> str:
    return urn.rsplit("::", 1)[-1]


# --- policy documents ---------------------------------------------------------------------------


def statements(document: Any) -> list[Mapping[str, Any]] | Any:
    """The statements of a policy document (text or object); UNKNOWN if not yet known, [] if none."""
    doc = maybe_json(document)
    if doc is UNKNOWN:
        return UNKNOWN
    if not isinstance(doc, Mapping):
        return []
    found = doc.get("Statement")
    if found is UNKNOWN:
        return UNKNOWN
    if isinstance(found, Mapping):
        return [found]
    return [s for s in as_list(found) if isinstance(s, Mapping)]


def str_list(value: Any) -> list[str]:
    """IAM fields hold a string or a list of strings."""
    if isinstance(value, str):
        return [value]
    return [v for v in as_list(value) if isinstance(v, str)]


# --- the shape every check sees -----------------------------------------------------------------


@dataclass(frozen=True)
class Res:
    """One resource in plain values: what a check reads, in CrossGuard and in the offline runner alike."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    provider_props: Mapping[str, Any] | None = None
    parent: str | None = None
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def stack(self) -> str:
        return stack_of(self.urn)

    def get(self, *path: str | int, default: Any = None) -> Any:
        return get(self.props, *path, default=default)


Config = Mapping[str, Any]
ResourceCheck = Callable[[Res, Config], Iterable[str]]
StackCheck = Callable[[list[Res], Config], Iterable[tuple[str | None, str]]]


def _config(schema: Mapping[str, Mapping[str, Any]] | None, given: Mapping[str, Any] | None) -> dict[str, Any]:
    # The engine fills schema defaults in; repeat it so a bare PolicyPack call behaves the same.
    merged = {k: spec["default"] for k, spec in (schema or {}).items() if "default" in spec}
    merged.update({k: v for k, v in (given or {}).items() if k != "enforcementLevel"})
    return merged


def resource_policy(
    name: str,
    description: str,
    remediation: str,
    types: Sequence[str],
    check: ResourceCheck,
    level: EnforcementLevel = MANDATORY,
    config: Mapping[str, Mapping[str, Any]] | None = None,
) -> ResourceValidationPolicy:
    """A per-resource policy for `types` (every type when empty), whose `check` yields one message per problem."""
    wanted = frozenset(types)

    def validate(args: ResourceValidationArgs, report_violation) -> None:
        if wanted and args.resource_type not in wanted:
            return
        provider = args.provider
        res = Res(
            type=args.resource_type,
            name=args.name,
            urn=args.urn,
            props=plain(args.props),
            provider_props=plain(provider.props) if provider is not None else None,
        )
        for message in check(res, _config(config, args.get_config())):
            report_violation(message)

    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=level,
        remediation_steps=remediation,
        config_schema=PolicyConfigSchema(dict(config)) if config else None,
    )


def stack_policy(
    name: str,
    description: str,
    remediation: str,
    check: StackCheck,
    level: EnforcementLevel = MANDATORY,
    config: Mapping[str, Mapping[str, Any]] | None = None,
) -> StackValidationPolicy:
    """A whole-stack policy; `check` yields (urn or None for the stack, message)."""

    def validate(args: StackValidationArgs, report_violation) -> None:
        resources = [
            Res(
                type=r.resource_type,
                name=r.name,
                urn=r.urn,
                props=plain(r.props),
                provider_props=plain(r.provider.props) if r.provider is not None else None,
                parent=r.parent.urn if r.parent is not None else None,
                property_dependencies={k: tuple(d.urn for d in deps) for k, deps in r.property_dependencies.items()},
            )
            for r in args.resources
        ]
        for urn, message in check(resources, _config(config, args.get_config())):
            report_violation(message, urn)

    return StackValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=level,
        remediation_steps=remediation,
        config_schema=PolicyConfigSchema(dict(config)) if config else None,
    )


def of_types(resources: Iterable[Res], *types: str) -> Iterator[Res]:
    wanted = set(types)
    return (r for r in resources if r.type in wanted)


# A workload stack is one whose program declares the workload root component: a new env added by
# config alone is judged as a workload without anyone editing a list of names here.
WORKLOAD_ROOT_TYPE = "bakehouse:workload:Stack"
_IS_WORKLOAD_STACK = "__isWorkloadStack"  # set by workload_policy, read by is_workload


def is_workload_stack(resources: Iterable[Res]) -> bool:
    return any(r.type == WORKLOAD_ROOT_TYPE for r in resources)


def is_workload(res: Res, config: Config) -> bool:
    """True inside a workload_policy's check when the resource's stack declares the workload root."""
    return bool(config.get(_IS_WORKLOAD_STACK, False))


def workload_policy(
    name: str,
    description: str,
    remediation: str,
    types: Sequence[str],
    check: ResourceCheck,
    level: EnforcementLevel = MANDATORY,
    config: Mapping[str, Mapping[str, Any]] | None = None,
) -> StackValidationPolicy:
    """A per-resource check that needs to know whether its stack is a workload. A resource policy sees
    one resource, never the stack's root component, so this runs as a stack policy over `types`."""
    wanted = frozenset(types)

    def stack_check(resources: list[Res], settings: Config) -> Iterator[tuple[str | None, str]]:
        scoped = {**settings, _IS_WORKLOAD_STACK: is_workload_stack(resources)}
        for res in resources:
            if res.type in wanted:
                for message in check(res, scoped):
                    yield res.urn, message

    return stack_policy(name, description, remediation, stack_check, level, config)
