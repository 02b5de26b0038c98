"""Run a stack's real program (`__main__.py`) under Pulumi's mock runtime and record what it declares.

Used by `make preview`, the stack tests, the policy runner and the benchmarks. The mocks know nothing
of this project: a new resource echoes its inputs as outputs (plus an `arn` shaped like AWS's for
custom resources, the one output almost every program reads), and invokes return nothing but the
GuardDuty detector lookup (a detector id per region).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import runpy
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from estate.stack_files import project_config, stack_files, stacks_in_deploy_order

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT = "bakehouse"
# Derived from the stack files: a new env is previewed and tested without editing a list here.
STACKS = stacks_in_deploy_order(PROJECT_DIR)
MOCK_SECRET = "mock-secret-value"


@dataclass(frozen=True)
class Declared:
    """One resource as the engine (and CrossGuard in preview) would see it: camelCase inputs."""

    urn: str
    type: str
    name: str
    inputs: Mapping[str, Any]
    custom: bool
    provider: str | None  # provider reference "urn::id" for custom resources
    parent: str | None
    # input name -> URNs it depends on, as the engine hands CrossGuard (unknown-value reasoning)
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def provider_name(self) -> str | None:
        # a provider reference is "<provider urn>::<provider id>"; the urn ends with its name
        return self.provider.split("::")[-2] if self.provider else None

    @property
    def is_provider(self) -> bool:
        return self.type.startswith("pulumi:providers:")


@dataclass
class StackRun:
    stack: str
    resources: list[Declared] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: BaseException | None = None
    logs: list[str] = field(default_factory=list)  # pulumi.log messages, e.g. cost estimates
    # Values the mocks made up (ids, arns): a real preview knows none of them, so readers mark them computed.
    computed: frozenset[str] = frozenset()

    def of_type(self, type_token: str) -> list[Declared]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> Declared:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r} in stack {self.stack}")
        return matches[0]

    def children_of(self, urn: str) -> list[Declared]:
        return [r for r in self.resources if r.parent == urn]

    @property
    def types(self) -> set[str]:
        return {r.type for r in self.resources}


class EchoMocks(pulumi.runtime.Mocks):
    """Plain mocks: inputs echoed, a deterministic id, and an AWS-shaped arn; invokes return {} (but getDetector)."""

    def __init__(self, synthesize_arn: bool = True):
        self.synthesize_arn = synthesize_arn
        self._provider_scope: dict[str, tuple[str, str]] = {}  # provider name -> (region, account)
        self.invented: set[str] = set()  # every id and arn made up here, none of which AWS would return

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ.startswith("pulumi:providers:"):
            accounts = _decode_json(args.inputs.get("allowedAccountIds"))
            # A member account's provider is pinned to an account the same run creates: unknown in a preview.
            account = accounts[0] if isinstance(accounts, list) and accounts else "000000000000"
            self._provider_scope[args.name] = (args.inputs.get("region", "mock-region"), account)
        elif self.synthesize_arn and args.custom:
            provider_name = args.provider.split("::")[-2] if args.provider else ""
            region, account = self._provider_scope.get(provider_name, ("mock-region", "000000000000"))
            if "arn" not in outputs:
                outputs["arn"] = _arn_for(args.typ, args.name, region, account)
                self.invented.add(outputs["arn"])
        self.invented.add(f"{args.name}-id")
        return [f"{args.name}-id", outputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "aws:guardduty/getDetector:getDetector":
            # Delegating GuardDuty's administrator enables a detector there; the security stack looks it up.
            region = args.args.get("region") or "mock-region"
            return {"id": f"mock-detector-{region}", "status": "ENABLED", "region": region}
        return {}


def _arn_for(type_token: str, name: str, region: str, account: str) -> str:
    # aws:kms/key:Key -> arn:aws:kms:<region>:<account>:key/<name>
    module = type_token.split(":")[1].split("/")[0]
    kind = type_token.split(":")[-1].lower()
    return f"arn:aws:{module}:{region}:{account}:{kind}/{name}"


def _decode_json(value: Any) -> Any:
    # Provider inputs reach the engine as JSON text for anything structured.
    if isinstance(value, str) and value[:1] in ("{", "["):
        return json.loads(value)
    return value


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping each registration's parent, provider and inputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.declared: list[Declared] = []

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = pulumi.runtime.rpc.deserialize_properties(request.object)
            if request.type.startswith("pulumi:providers:"):
                inputs = {k: _decode_json(v) for k, v in inputs.items()}
            self.declared.append(
                Declared(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    inputs=_plain(inputs),
                    custom=bool(request.custom),
                    provider=request.provider or None,
                    parent=request.parent or None,
                    property_dependencies={
                        key: tuple(deps.urns) for key, deps in request.propertyDependencies.items() if deps.urns
                    },
                )
            )
        return response


def _plain(value: Any) -> Any:
    """Deep-copy to plain Python; provider inputs arrive as JSON text and are decoded for readers."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


class _ListHandler(logging.Handler):
    def __init__(self, sink: list[str]):
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def _collecting_logger(stack: str, sink: list[str]) -> logging.Logger:
    """What the program logs with pulumi.log (info and up) lands in the run, not on the console."""
    logger = logging.getLogger(f"bakehouse.mockrun.{stack}.{id(sink)}")
    logger.handlers[:] = [_ListHandler(sink)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def stack_config(
    stack: str,
    project_dir: Path = PROJECT_DIR,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """Config as the CLI would pass it: project-level values, then the stack file, as text.

    `secure:` values cannot be decrypted offline; they become MOCK_SECRET and are marked secret.
    """
    values: dict[str, Any] = {}
    for key, spec in project_config(project_dir).items():
        values[key] = spec["value"] if isinstance(spec, Mapping) and "value" in spec else spec
    values.update(stack_files(project_dir).get(stack) or {})
    values.update(overrides or {})
    config, secrets = {}, []
    for key, value in values.items():
        if isinstance(value, Mapping) and set(value) == {"secure"}:
            config[key] = MOCK_SECRET
            secrets.append(key)
        elif isinstance(value, str):
            config[key] = value
        else:
            config[key] = json.dumps(value)
    return config, secrets


def run_stack(
    stack: str,
    project_dir: Path = PROJECT_DIR,
    overrides: Mapping[str, Any] | None = None,
    mocks: pulumi.runtime.Mocks | None = None,
    preview: bool = False,
    raise_errors: bool = True,
) -> StackRun:
    """Run `__main__.py` for `stack`; raises whatever the program raises (e.g. ConfigError), or with
    raise_errors=False returns the run with `error` set and whatever was declared before it."""
    config, secret_keys = stack_config(stack, project_dir, overrides)
    # Library code, not an entry point: like the Pulumi language host (which runs the project directory
    # with runpy.run_path), it makes the program's own packages importable from `project_dir`, which
    # need not be this checkout (tests run temporary projects).
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))

    def program():
        runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")

    return run_program(program, stack, config, secret_keys, mocks, preview, raise_errors, cwd=project_dir)


_CACHED: dict[tuple[str, str, bool], StackRun] = {}


def cached_run(
    stack: str, overrides: Mapping[str, Any] | None = None, preview: bool = False, raise_errors: bool = True
) -> StackRun:
    """`run_stack` under the plain mocks, once per process for each (stack, overrides, preview).

    The programs are deterministic, so the tests share one run of each (a run costs 0.3-3 s). Callers
    read the run; none may change it. A run that failed is cached too, and re-raised for each caller
    that asks for errors raised.
    """
    key = (stack, json.dumps(overrides or {}, sort_keys=True, default=str), preview)
    if key not in _CACHED:
        _CACHED[key] = run_stack(stack, overrides=overrides, preview=preview, raise_errors=False)
    run = _CACHED[key]
    if run.error is not None and raise_errors:
        raise run.error
    return run


def run_program(
    program: Callable[[], Any],
    stack: str = "unit",
    config: Mapping[str, str] | None = None,
    secret_keys: list[str] | None = None,
    mocks: pulumi.runtime.Mocks | None = None,
    preview: bool = False,
    raise_errors: bool = True,
    cwd: Path = PROJECT_DIR,
) -> StackRun:
    """Run any Pulumi program function under the mocks (components are tested alone this way)."""
    monitor = RecordingMonitor(mocks or EchoMocks())
    pulumi_settings.reset_options(project=PROJECT, stack=stack, preview=preview)
    run = StackRun(stack)
    pulumi.runtime.set_mocks(
        monitor.mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor, logger=_collecting_logger(stack, run.logs)
    )
    set_all_config(dict(config or {}), secret_keys or [])

    def body():
        program()
        outputs = dict(pulumi.runtime.get_root_resource().outputs)

        async def collect():
            for key, value in outputs.items():
                run.exports[key] = await pulumi.Output.from_input(value).future()

        return collect()

    started = time.perf_counter()
    previous = os.getcwd()
    try:
        os.chdir(cwd)
        _sync_await(run_pulumi_func(body))
    except Exception as err:  # noqa: BLE001 - handed back to the caller, raised or recorded
        run.error = err
    finally:
        os.chdir(previous)
    run.seconds = time.perf_counter() - started
    run.resources = list(monitor.declared)
    run.computed = frozenset(getattr(monitor.mocks, "invented", ()))
    if run.error is not None and raise_errors:
        raise run.error
    return run
