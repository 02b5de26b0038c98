"""The stacks as a first `pulumi up` meets them, in deploy order, from an empty organization.

`rehearse()` runs every stack's real program under the AWS-shaped mocks and keeps, beside what each
resource declares, the URNs it waits for: its `depends_on` and its inputs' dependencies. The mock
harness (tools/mockrun.Declared) records only `property_dependencies`, so this monitor also keeps the
request's `dependencies`, which carry `depends_on`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

import tools.mockrun as mockrun
from tests.iam.estate import AwsShapedMocks
from tests.iam.scp_fit import Scope, account_key, accounts, provider_scopes
from tools.mockrun import PROJECT_DIR, STACKS, Declared, StackRun

BOOTSTRAP_DIR = PROJECT_DIR / "bootstrap"
# Organizations creates this role in every account it creates (Organizations User Guide,
# "Accessing a member account that has a management account access role").
CREATED_BY_ORGANIZATIONS = "OrganizationAccountAccessRole"


class _DependencyMonitor(mockrun.RecordingMonitor):
    """The harness's monitor, also keeping each registration's `dependencies` (depends_on included)."""

    def __init__(self, mocks):
        super().__init__(mocks)
        self.dependencies: dict[str, tuple[str, ...]] = {}

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        self.dependencies[response.urn] = tuple(request.dependencies)
        return response


@dataclass
class Rehearsed:
    stack: str
    run: StackRun
    waits_for: Mapping[str, tuple[str, ...]]  # urn -> URNs it depends on (depends_on and inputs)

    def __post_init__(self) -> None:
        self.by_urn = {r.urn: r for r in self.run.resources}
        self.scopes = provider_scopes(self.run)

    def closure(self, urn: str) -> set[str]:
        """Everything the resource waits for, transitively (the engine creates those first)."""
        seen: set[str] = set()
        todo = [urn]
        while todo:
            current = todo.pop()
            declared = self.by_urn.get(current)
            inputs = declared.property_dependencies.values() if declared else ()
            for dep in (*self.waits_for.get(current, ()), *(u for deps in inputs for u in deps)):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    def scope(self, resource: Declared) -> Scope | None:
        """Where the resource lands; None when it names no provider (the default provider: ambient
        credentials and region)."""
        if resource.provider_name is None:
            return None
        scope = self.scopes[resource.provider_name]
        region = resource.inputs.get("region")
        return Scope(region if isinstance(region, str) and region else scope.region, scope.account, scope.role)

    def custom(self) -> Iterator[Declared]:
        return (r for r in self.run.resources if r.custom and not r.is_provider)


@contextlib.contextmanager
def _recording_dependencies() -> Iterator[list[_DependencyMonitor]]:
    made: list[_DependencyMonitor] = []
    original = mockrun.RecordingMonitor

    def monitor(mocks):
        made.append(_DependencyMonitor(mocks))
        return made[-1]

    mockrun.RecordingMonitor = monitor  # type: ignore[assignment,misc]
    try:
        yield made
    finally:
        mockrun.RecordingMonitor = original  # type: ignore[misc]


@cache
def rehearsed(stack: str) -> Rehearsed:
    with _recording_dependencies() as monitors:
        run = mockrun.run_stack(stack, mocks=AwsShapedMocks())
    return Rehearsed(stack, run, monitors[-1].dependencies)


def rehearse() -> list[Rehearsed]:
    return [rehearsed(stack) for stack in STACKS]


# --- what the bootstrap template declares -----------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !Sub...) read as plain values."""


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


_CfnLoader.add_multi_constructor("!", _any_tag)


def bootstrap_roles() -> dict[str, set[str]]:
    """template file -> the role names it declares (the management account's bootstrap)."""
    found: dict[str, set[str]] = {}
    for path in sorted(Path(BOOTSTRAP_DIR).glob("*.yaml")):
        template = yaml.load(path.read_text(), Loader=_CfnLoader) or {}  # noqa: S506 - SafeLoader subclass
        parameters = template.get("Parameters") or {}
        names = set()
        for resource in (template.get("Resources") or {}).values():
            if resource.get("Type") != "AWS::IAM::Role":
                continue
            name = (resource.get("Properties") or {}).get("RoleName")
            # !Ref <parameter>: the parameter's documented value (its default, or the project's deploy role)
            if isinstance(name, str) and name in parameters:
                name = parameters[name].get("Default") or _deploy_role_name()
            if isinstance(name, str):
                names.add(name)
        found[path.name] = names
    return found


def _deploy_role_name() -> str:
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    return str(project["config"]["bakehouse:deployRoleName"]["value"])


def role_arn_of(resource: Declared, scope: Scope) -> str:
    i = resource.inputs
    return f"arn:aws:iam::{scope.account}:role{i.get('path') or '/'}{i.get('name') or resource.name}"


def member_account_id(value: str) -> str:
    """An account id as the org stack's resources hold it: real, or the Account resource's mock id."""
    return value if re.fullmatch(r"\d{12}", value) else accounts()[account_key(value)]
