"""Judge a stack's mock-recorded resources with the CrossGuard pack, offline, as the engine would.

The engine hands each resource policy a `ResourceValidationArgs` (type, camelCase inputs behind a
proxy that raises on unknown values, urn, name, options, the resource's provider with its inputs,
the policy's config) and each stack policy a `StackValidationArgs` of `PolicyResource`s linked by
parent and property dependencies. This runner builds exactly those objects from a `StackRun`, so
the validators run here unchanged; violations come back by enforcement level.

    python -m tools.policy_runner [stack ...]           # print verdicts (exit 1 on a mandatory one)
    python -m tools.policy_runner --write-workload-types # regenerate policy/workload_types.json
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from estate.stack_files import workload_stacks
from tools.mockrun import STACKS, Declared, StackRun, run_stack

PROJECT_DIR = Path(__file__).resolve().parent.parent
PACK_CONFIG = PROJECT_DIR / "policy" / "config.json"
WORKLOAD_STACKS = workload_stacks(PROJECT_DIR)
_DEFAULT_PROVIDER = "pulumi:providers:aws"


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str  # "mandatory" or "advisory"
    resource: str  # resource name, or "stack <name>" for a stack-wide violation
    urn: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.policy}: {self.resource}: {self.message}"


@dataclass
class Verdict:
    stack: str
    mandatory: list[Violation] = field(default_factory=list)
    advisory: list[Violation] = field(default_factory=list)
    # Policies that could not decide because a value was unknown (CrossGuard reports these as
    # "can't run policy during preview"); never a pass or a failure.
    undecided: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mandatory

    def by_policy(self, name: str) -> list[Violation]:
        return [v for v in self.mandatory + self.advisory if v.policy == name]


def load_pack_config(path: Path = PACK_CONFIG) -> dict[str, Any]:
    """The file the workflow passes as --policy-pack-config (policy name -> level or settings)."""
    return json.loads(path.read_text()) if path.exists() else {}


def _level(policy: Policy, setting: Any) -> EnforcementLevel:
    if isinstance(setting, str):
        return EnforcementLevel(setting)
    if isinstance(setting, Mapping) and "enforcementLevel" in setting:
        return EnforcementLevel(setting["enforcementLevel"])
    return policy.enforcement_level or EnforcementLevel.MANDATORY


def _settings(setting: Any) -> dict[str, Any] | None:
    if isinstance(setting, Mapping):
        return {k: v for k, v in setting.items() if k != "enforcementLevel"}
    return None


def _options(res: Declared) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=res.parent,
    )


def _wire(value: Any) -> Any:
    """Inputs as the engine sends them to an analyzer: JSON values, unknowns as CrossGuard's sentinel."""
    if isinstance(value, pulumi.output.Unknown):
        return UNKNOWN_STRING_VALUE
    if isinstance(value, Mapping):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)  # assets and archives: policies here never look inside them


def _props(value: Mapping[str, Any]) -> Any:
    return unknown_checking_proxy(_wire(value))


def _provider_of(res: Declared, providers: Mapping[str, Declared]) -> PolicyProviderResource | None:
    if not res.custom or res.is_provider:
        return None
    if res.provider:
        urn = res.provider.rsplit("::", 1)[0]
        declared = providers.get(urn)
        if declared is not None:
            return PolicyProviderResource(declared.type, _props(declared.inputs), declared.urn, declared.name)
    # No explicit provider: the engine would hand over its default provider, which has no inputs here.
    stack = res.urn.split("::", 1)[0].split(":")[-1]
    return PolicyProviderResource(
        _DEFAULT_PROVIDER, _props({}), f"urn:pulumi:{stack}::bakehouse::{_DEFAULT_PROVIDER}::default", "default"
    )


def property_dependencies(resources: Sequence[Declared]) -> dict[str, dict[str, list[str]]]:
    """urn -> input key -> urns it depends on.

    Taken from the run when it recorded them; otherwise inferred from the mocks' deterministic ids
    (`<name>-id`): an input holding another resource's id depends on that resource, exactly the
    dependency the engine would have recorded for an Output passed as that input.
    """
    # an empty record is no record: fixtures and older runs carry none, and inference finds nothing extra
    recorded = {r.urn: getattr(r, "property_dependencies", None) or None for r in resources}
    by_id: dict[str, list[str]] = {}
    for res in resources:
        if res.custom and not res.is_provider:
            by_id.setdefault(f"{res.name}-id", []).append(res.urn)
    found: dict[str, dict[str, list[str]]] = {}
    for res in resources:
        if recorded[res.urn] is not None:
            found[res.urn] = {k: list(v) for k, v in recorded[res.urn].items()}
            continue
        deps: dict[str, list[str]] = {}
        for key, value in res.inputs.items():
            urns = [u for text in _strings(value) for u in by_id.get(text, ()) if u != res.urn]
            if urns:
                deps[key] = sorted(set(urns))
        found[res.urn] = deps
    return found


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def _settle(result: Any) -> None:
    if inspect.isawaitable(result):
        asyncio.run(_await(result))


async def _await(result: Any) -> None:
    await result


def judge(
    run: StackRun,
    policies: Sequence[Policy] | None = None,
    pack_config: Mapping[str, Any] | None = None,
) -> Verdict:
    """Every policy over every recorded resource of `run`, as `pulumi preview --policy-pack` would."""
    if policies is None:
        from policy.policies import POLICIES as policies  # noqa: N811 - the pack's own name
    config = load_pack_config() if pack_config is None else pack_config
    verdict = Verdict(run.stack)
    resources = [r for r in run.resources if r.type != "pulumi:pulumi:Stack"]
    providers = {r.urn: r for r in resources if r.is_provider}
    # Built once: policies only read them (plain() copies before any check looks inside).
    props = {r.urn: _props(r.inputs) for r in resources}
    provider_of = {r.urn: _provider_of(r, providers) for r in resources}
    stack_resources: list[PolicyResource] | None = None

    for policy in policies:
        setting = config.get(policy.name)
        level = _level(policy, setting)
        if level == EnforcementLevel.DISABLED:
            continue
        sink = verdict.advisory if level == EnforcementLevel.ADVISORY else verdict.mandatory
        kind = "advisory" if level == EnforcementLevel.ADVISORY else "mandatory"
        settings = _settings(setting)

        if isinstance(policy, ResourceValidationPolicy):
            for res in resources:
                args = ResourceValidationArgs(
                    res.type, props[res.urn], res.urn, res.name, _options(res), provider_of[res.urn], settings
                )
                _call(policy, args, _reporter(sink, policy.name, kind, {res.urn: res.name}, res.urn), verdict, res.name)
        elif isinstance(policy, StackValidationPolicy):
            if stack_resources is None:
                stack_resources = policy_resources(resources, providers)
            args = StackValidationArgs(stack_resources, settings)
            names = {r.urn: r.name for r in resources}
            _call(
                policy, args, _reporter(sink, policy.name, kind, names, None, f"stack {run.stack}"), verdict, f"stack {run.stack}"
            )
    return verdict


def _reporter(
    sink: list[Violation], policy: str, kind: str, names: Mapping[str, str], default_urn: str | None, default_where: str = ""
) -> Callable[..., None]:
    """CrossGuard's report_violation for one policy: a resource policy's reports name its resource; a
    stack policy's name the resource they point at, or the stack."""

    def report(message: str, urn: str | None = None) -> None:
        urn = urn or default_urn
        sink.append(Violation(policy, kind, names.get(urn, urn) if urn else default_where, urn, message))

    return report


def policy_resources(resources: Sequence[Declared], providers: Mapping[str, Declared]) -> list[PolicyResource]:
    deps = property_dependencies(resources)
    built = {
        r.urn: PolicyResource(r.type, _props(r.inputs), r.urn, r.name, _options(r), _provider_of(r, providers), None, [], {})
        for r in resources
    }
    for res in resources:
        node = built[res.urn]
        node.parent = built.get(res.parent) if res.parent else None
        for key, urns in deps[res.urn].items():
            node.property_dependencies[key] = [built[u] for u in urns if u in built]
            node.dependencies.extend(d for d in node.property_dependencies[key] if d not in node.dependencies)
    return list(built.values())


def _call(policy: Policy, args: Any, report: Any, verdict: Verdict, where: str) -> None:
    try:
        _settle(policy.validate(args, report))
    except UnknownValueError as err:
        verdict.undecided.append(f"{policy.name}: {where}: can't run during preview: {err.message}")


# --- the workload type manifest --------------------------------------------------------------------
def workload_types(runs: Iterable[StackRun]) -> dict[str, list[str]]:
    from policy.stack import declared_types

    return {run.stack: declared_types(r.type for r in run.resources) for run in runs}


def write_workload_manifest(stacks: Sequence[str] = WORKLOAD_STACKS) -> Path:
    from policy.stack import MANIFEST

    per_stack = workload_types(run_stack(s) for s in stacks)
    reference = per_stack[stacks[0]]
    for stack, types in per_stack.items():
        if types != reference:
            raise SystemExit(
                f"workload stacks differ: {stacks[0]} vs {stack}: "
                f"only in {stacks[0]}: {sorted(set(reference) - set(types))}; "
                f"only in {stack}: {sorted(set(types) - set(reference))}"
            )
    MANIFEST.write_text(json.dumps({"stacks": list(stacks), "types": reference}, indent=2) + "\n")
    return MANIFEST


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stacks", nargs="*", default=list(STACKS))
    parser.add_argument(
        "--write-workload-types", action="store_true", help="regenerate policy/workload_types.json from the workload stacks"
    )
    args = parser.parse_args(argv)
    if args.write_workload_types:
        print(f"wrote {write_workload_manifest()}")
        return 0
    failed = False
    for stack in args.stacks:
        verdict = judge(run_stack(stack))
        for violation in verdict.mandatory:
            print(f"{stack} MANDATORY {violation}")
        for violation in verdict.advisory:
            print(f"{stack} advisory {violation}")
        print(
            f"{stack}: {'pass' if verdict.ok else 'FAIL'} "
            f"({len(verdict.mandatory)} mandatory, {len(verdict.advisory)} advisory, {len(verdict.undecided)} undecided)"
        )
        failed |= not verdict.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
