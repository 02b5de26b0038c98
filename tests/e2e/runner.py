"""A small SSM Automation runner for end-to-end tests against a moto server.

moto has no Automation service (StartAutomationExecution and friends), so this executes a
document's `mainSteps` the way Automation does: parameters typed and defaulted, `{{ }}` references
resolved (parameters, earlier step outputs, `global:*`/`automation:*` variables), `onFailure` /
`nextStep` / `isEnd` / `aws:branch` followed, declared step outputs selected from the response, and
the document's `outputs` collected; a run cancelled while a step runs (StopAutomationExecution Type=Cancel)
goes to that step's `onCancel` and ends Cancelled (see Runner.run). Actions map to boto3 calls on the moto server (see _actions.py);
`aws:runCommand` and `aws:approve` go to collaborators the test supplies; `aws:executeScript` runs
the step's own Python (which imports the real handlers/) with boto3 pointed at the server.

Stable API (other areas use it):
    runner = Runner(endpoint_url, region="eu-west-1", command_executor=..., approver=...)
    runner.actions["aws:myAction"] = fn          # extra or replacement actions: fn(ctx, inputs) -> outputs
    runner.api_fakes[("ssm", "DescribeInstanceInformation")] = fn   # fn(params) -> response, for moto gaps
    execution = runner.run("Bakehouse-BuildImage", {"Family": "al2023", ...})
    execution.status, execution.outputs, execution.step("CreateImage").outputs, execution.steps
    runner.run(..., cancel_at="WaitForBuildInstanceRunning")   # cancelled while that step runs
    ctx.execution.cancel()                                     # or from inside a step (an action, a stand-in)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import socket
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml

from estate.naming import automation_document_name

from ._actions import ACTIONS, ApiLog, Approver, CommandExecutor, StepFailed
from ._refs import SYSTEM_VARIABLES, UnresolvedReference, coerce, resolve, select

AUTOMATION_DIR = Path(__file__).resolve().parents[2] / "automation"
ACCOUNT_ID = "123456789012"  # moto's default account
MAX_STEPS = 500  # SSM caps an execution's steps too; a loop in a document must not hang a test
# Cancellation (Systems Manager user guide, "Properties shared by all actions", onCancel; and "Error
# handling with the visual design experience", Canceled actions): a cancelled run goes to the running
# step's onCancel (default Abort: no further step runs), runs that cancellation workflow for at most two
# minutes, and onCancel cannot move to these actions.
CANCEL_WINDOW_SECONDS = 120.0
NOT_A_CANCEL_TARGET = frozenset(
    {
        "aws:approve",
        "aws:copyImage",
        "aws:createImage",
        "aws:createStack",
        "aws:createTags",
        "aws:loop",
        "aws:pause",
        "aws:runInstances",
        "aws:sleep",
    }
)
__all__ = ["Runner", "Execution", "StepRecord", "StepContext", "StepFailed", "moto_server", "load_documents"]


@dataclass
class StepRecord:
    name: str
    action: str
    inputs: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)
    status: str = "Pending"  # Success | Failed | Cancelled
    error: str | None = None
    attempts: int = 0


@dataclass
class Execution:
    execution_id: str
    document_name: str
    parameters: dict[str, Any]
    status: str = "InProgress"  # Success | Failed | Cancelled
    failure: str | None = None
    steps: list[StepRecord] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    children: list[Execution] = field(default_factory=list)
    parent: Execution | None = None
    cancel_requested: bool = False

    def cancel(self) -> None:
        """StopAutomationExecution with Type=Cancel: delivered to the step running now, once it returns."""
        self.cancel_requested = True

    def step(self, name: str) -> StepRecord:
        """The last run of a step by name (raises if it never ran)."""
        for record in reversed(self.steps):
            if record.name == name:
                return record
        raise KeyError(f"step {name} did not run in {self.document_name}; ran: {self.step_names}")

    @property
    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]

    def ran(self, name: str) -> bool:
        return name in self.step_names

    def walk(self) -> Iterator[Execution]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class StepContext:
    runner: Runner
    execution: Execution
    step: str
    timeout: float

    def client(self, service: str, region: str | None = None):
        return self.runner.client(service, region)


def load_documents(directory: Path = AUTOMATION_DIR) -> dict[str, dict[str, Any]]:
    """Deployed name (Bakehouse-<Stem>) -> parsed document, for every automation/*.yaml."""
    return {automation_document_name(p.stem): yaml.safe_load(p.read_text()) for p in sorted(directory.glob("*.yaml"))}


class Runner:
    def __init__(
        self,
        endpoint_url: str,
        region: str = "eu-west-1",
        documents: Mapping[str, Mapping[str, Any]] | None = None,
        command_executor: CommandExecutor | None = None,
        approver: Approver | None = None,
        poll_interval: float = 0.02,
        max_wait: float = 10.0,
        script_host: Callable[[StepContext, Mapping[str, Any]], Any] | None = None,
    ):
        self.endpoint_url = endpoint_url
        self.region = region
        self.documents = dict(documents) if documents is not None else load_documents()
        self.command_executor = command_executor
        self.approver = approver
        self.poll_interval = poll_interval
        # Waits honour a step's timeoutSeconds up to this cap, so a broken wait fails fast in tests.
        self.max_wait = max_wait
        self.max_steps = MAX_STEPS
        self.actions = dict(ACTIONS)
        self.api_fakes: dict[tuple[str, str], Callable[[dict[str, Any]], dict[str, Any]]] = {}
        self.api_log = ApiLog()
        self.script_host = script_host or run_inline_script
        self.executions: list[Execution] = []
        self.clock: Callable[[], float] = time.monotonic  # the cancellation window's clock; tests may replace it
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str | None = None):
        key = (service, region or self.region)
        if key not in self._clients:
            self._clients[key] = boto3.client(service, region_name=key[1], endpoint_url=self.endpoint_url)
        return self._clients[key]

    # --- execution -----------------------------------------------------------------------------
    def run(
        self,
        document_name: str,
        parameters: Mapping[str, Any],
        parent: Execution | None = None,
        cancel_at: str | None = None,
    ) -> Execution:
        """Runs the document to its end; with cancel_at, the run is cancelled while that step runs.

        A cancel (cancel_at, or execution.cancel() from inside a step) reaches the step that is running: its
        call has been made (as in AWS, a request already sent is not recalled) but the step ends Cancelled,
        with no outputs and no further attempt. The run then goes to the step's onCancel (Abort if none)
        and follows nextStep/onFailure from there as usual, for at most CANCEL_WINDOW_SECONDS; it ends
        Cancelled whatever that workflow does. A cancel arrives once: the cancellation workflow runs on.
        """
        execution = Execution(str(uuid.uuid4()), document_name, dict(parameters), parent=parent)
        self.executions.append(execution)
        if parent is not None:
            parent.children.append(execution)
        document = self.documents.get(document_name)
        if document is None:
            return self._fail(execution, f"document {document_name} not found; known: {sorted(self.documents)}")
        try:
            values = self._parameters(document, parameters)
        except (TypeError, ValueError) as err:
            return self._fail(execution, str(err))
        execution.parameters = values
        steps = document.get("mainSteps") or []
        by_name = {s["name"]: i for i, s in enumerate(steps)}
        if cancel_at is not None and cancel_at not in by_name:
            return self._fail(execution, f"cancel_at names {cancel_at}, which is not a step of {document_name}")
        now = dt.datetime.now(dt.UTC)
        variables = {
            "global:ACCOUNT_ID": ACCOUNT_ID,
            "global:AWS_PARTITION": "aws",
            "global:REGION": self.region,
            "global:DATE": now.strftime("%Y-%m-%d"),
            "global:DATE_TIME": now.strftime("%Y-%m-%d_%H.%M.%S"),
            "global:AWS_URL_SUFFIX": "amazonaws.com",
            "automation:EXECUTION_ID": execution.execution_id,
            "automation:DOCUMENT_NAME": document_name,
        }
        assert set(variables) == set(SYSTEM_VARIABLES)
        outputs: dict[str, Any] = {}

        def lookup(ref: str) -> Any:
            if ref in variables:
                return variables[ref]
            if ref in values:
                return values[ref]
            if ref in outputs:
                return outputs[ref]
            raise UnresolvedReference(ref, document_name)

        index: int | None = 0
        failed = False
        cancel_deadline: float | None = None  # set once the cancel has been delivered
        while index is not None and index < len(steps):
            if len(execution.steps) >= self.max_steps:
                return self._fail(execution, f"more than {self.max_steps} steps run: the document loops")
            step = steps[index]
            window: float | None = None
            if cancel_deadline is not None:
                window = cancel_deadline - self.clock()
                if window <= 0:
                    execution.failure = execution.failure or (
                        f"the cancellation workflow ran past {CANCEL_WINDOW_SECONDS:.0f} s; {step['name']} never ran"
                    )
                    break
            elif step["name"] == cancel_at:
                execution.cancel()
            record = StepRecord(step["name"], step["action"])
            execution.steps.append(record)
            next_name = self._run_step(step, record, execution, lookup, outputs, window)
            if cancel_deadline is None and execution.cancel_requested:
                cancel_deadline = self.clock() + CANCEL_WINDOW_SECONDS
                for key in record.outputs:
                    outputs.pop(f"{step['name']}.{key}", None)
                record.status, record.error, record.outputs = "Cancelled", "cancelled while running", {}
                target = step.get("onCancel", "Abort")
                if target == "Abort":
                    break
                if not (isinstance(target, str) and target.startswith("step:")):
                    return self._fail(execution, f"step {record.name}: onCancel is {target!r}, not Abort or step:<name>")
                next_name = target[len("step:") :]
                action = steps[by_name[next_name]]["action"] if next_name in by_name else None
                if action in NOT_A_CANCEL_TARGET:
                    return self._fail(execution, f"step {record.name}: onCancel moves to {next_name}, an {action} step")
            elif record.status == "Failed":
                if str(step.get("isCritical", True)).lower() != "false":
                    failed = True
                    execution.failure = execution.failure or f"step {record.name}: {record.error}"
                target = step.get("onFailure", "Abort")
                if target == "Continue":
                    next_name = step.get("nextStep")
                elif isinstance(target, str) and target.startswith("step:"):
                    next_name = target[len("step:") :]
                else:
                    break
            elif str(step.get("isEnd", False)).lower() == "true":
                break
            if next_name and next_name not in by_name:
                return self._fail(execution, f"step {record.name} goes to {next_name}, which is not a step")
            index = by_name[next_name] if next_name else index + 1
        execution.status = "Cancelled" if cancel_deadline is not None else "Failed" if failed else "Success"
        for ref in document.get("outputs") or []:
            if ref in outputs:
                execution.outputs[ref] = outputs[ref]
        return execution

    def _run_step(
        self, step, record: StepRecord, execution: Execution, lookup, outputs: dict[str, Any], window: float | None = None
    ) -> str | None:
        action = self.actions.get(step["action"])
        timeout = min(float(step.get("timeoutSeconds", self.max_wait)), self.max_wait)
        if window is not None:  # a step of the cancellation workflow has what is left of its window
            timeout = min(timeout, window)
        ctx = StepContext(self, execution, step["name"], timeout)
        attempts = int(step.get("maxAttempts", 1))
        try:
            record.inputs = resolve(step.get("inputs") or {}, lookup)
        except UnresolvedReference as err:
            record.status, record.error = "Failed", str(err)
            return None
        if action is None:
            record.status, record.error = "Failed", f"no action {step['action']} registered"
            return None
        for attempt in range(1, attempts + 1):
            record.attempts = attempt
            try:
                native = action(ctx, record.inputs) or {}
                declared = self._declared_outputs(step, native)
            except Exception as err:  # noqa: BLE001 - any error (a handler's own included) fails the step, as in SSM
                record.status, record.error = "Failed", f"{type(err).__name__}: {err}"
                if execution.cancel_requested and window is None:
                    return None  # a cancelled step is not tried again
                continue
            record.status, record.error = "Success", None
            record.outputs = {**native, **declared}
            for key, value in record.outputs.items():
                outputs[f"{step['name']}.{key}"] = value
            if step["action"] == "aws:branch":
                return native["NextStep"]
            return step.get("nextStep")
        return None

    @staticmethod
    def _declared_outputs(step: Mapping[str, Any], native: Mapping[str, Any]) -> dict[str, Any]:
        declared: dict[str, Any] = {}
        for out in step.get("outputs") or []:
            value = select(dict(native), out["Selector"])
            declared[out["Name"]] = coerce(value, out.get("Type", "String"), f"{step['name']}.{out['Name']}")
        return declared

    @staticmethod
    def _parameters(document: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
        declared = document.get("parameters") or {}
        unknown = set(given) - set(declared)
        problems = [f"unknown parameter {name}" for name in sorted(unknown)]
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in given:
                raw = given[name]
            elif "default" in spec:
                raw = spec["default"]
            else:
                problems.append(f"parameter {name} is required")
                continue
            try:
                value = coerce(raw, spec.get("type", "String"), name)
            except (TypeError, ValueError) as err:
                problems.append(str(err))
                continue
            allowed = spec.get("allowedValues")
            items = value if isinstance(value, list) else [value]
            if allowed is not None and any(str(v) not in [str(a) for a in allowed] for v in items):
                problems.append(f"parameter {name} is {value!r}; allowed: {allowed}")
            pattern = spec.get("allowedPattern")
            if pattern is not None:
                if any(not re.fullmatch(pattern, str(v)) for v in items):
                    problems.append(f"parameter {name} is {value!r}; must match {pattern}")
            values[name] = value
        if problems:
            raise ValueError("; ".join(problems))
        return values

    @staticmethod
    def _fail(execution: Execution, reason: str) -> Execution:
        execution.status, execution.failure = "Failed", reason
        return execution


# --- aws:executeScript ---------------------------------------------------------------------------
@contextlib.contextmanager
def endpoint_env(endpoint_url: str, region: str) -> Iterator[None]:
    """boto3 honours AWS_ENDPOINT_URL, so a handler's own clients reach the moto server unchanged."""
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}
    os.environ["AWS_ENDPOINT_URL"], os.environ["AWS_DEFAULT_REGION"] = endpoint_url, region
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_inline_script(ctx: StepContext, inputs: Mapping[str, Any]) -> Any:
    """Runs the step's Script as aws:executeScript would: define it, then call Handler(payload, context).

    The attachment (a zip of handlers/) is what makes `from handlers.x import ...` work in AWS; here the
    repository root is on sys.path, which gives the script the same modules.
    """
    if not str(inputs.get("Runtime", "")).startswith("python3"):
        raise StepFailed(f"runtime {inputs.get('Runtime')!r} is not a python3 runtime")
    script = inputs.get("Script")
    if not isinstance(script, str):
        raise StepFailed("aws:executeScript without an inline Script is not supported by this runner")
    namespace: dict[str, Any] = {"__name__": f"ssm_script_{ctx.step}"}
    with endpoint_env(ctx.runner.endpoint_url, ctx.runner.region):
        exec(compile(textwrap.dedent(script), f"<{ctx.execution.document_name}:{ctx.step}>", "exec"), namespace)
        handler = namespace.get(inputs["Handler"])
        if not callable(handler):
            raise StepFailed(f"Handler {inputs['Handler']!r} is not defined by the step's script")
        return handler(dict(inputs.get("InputPayload") or {}), None)


# --- a moto server for the run -------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_live_world: str | None = None  # the endpoint of the moto world open in this process, if any


@contextlib.contextmanager
def moto_server(load_default_amis: bool = False) -> Iterator[str]:
    """A ThreadedMotoServer on 127.0.0.1 and a free port; yields its endpoint URL.

    moto keeps its backends per process, not per server: state is reset when the server starts and
    when it stops, so runs in one pytest process never see each other's resources, and one world at a
    time may be open (a second would reset the first under its tests). Without the
    ~1,300 stock AMIs (the default here) every DescribeImages stays fast.
    """
    from moto.server import ThreadedMotoServer

    global _live_world
    if _live_world is not None:
        raise RuntimeError(
            f"one moto world per process: {_live_world} is still live, and opening another would reset it "
            "(moto keeps its backends per process); give each world its own test module"
        )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per call drowns failures
    saved = os.environ.get("MOTO_EC2_LOAD_DEFAULT_AMIS")
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "true" if load_default_amis else "false"
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    _live_world = url
    try:
        _reset(url)
        yield url
    finally:
        _live_world = None
        _reset(url)
        server.stop()
        if saved is None:
            os.environ.pop("MOTO_EC2_LOAD_DEFAULT_AMIS", None)
        else:
            os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = saved


def _reset(url: str) -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=30).close()
