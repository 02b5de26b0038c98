"""Checks of automation documents that JSON Schema cannot express: they relate fields to each other.

Each returns a list of problems (empty = fine), each naming the document, the step and the fault, so
a test can show one failing on a deliberately broken copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from yamllint import linter
from yamllint.config import YamlLintConfig

from estate.naming import automation_document_name
from tests.e2e._refs import SYSTEM_VARIABLES, references

REPO = Path(__file__).resolve().parents[2]
AUTOMATION = REPO / "automation"
SCHEMA = Path(__file__).with_name("automation.schema.json")
# Outputs SSM defines for an action whatever the step declares (AWS automation actions reference).
PREDEFINED_OUTPUTS = {
    "aws:runInstances": {"InstanceIds", "InstanceStates"},
    "aws:createImage": {"ImageId", "ImageState"},
    "aws:changeInstanceState": {"InstanceStates"},
    "aws:executeAutomation": {"Output", "ExecutionId", "Status"},
    "aws:runCommand": {"CommandId", "Status", "ResponseCode", "Output"},
    "aws:approve": {"ApprovalStatus", "ApproverDecisions"},
    "aws:executeScript": {"Payload"},
}
Document = Mapping[str, Any]
YAMLLINT = YamlLintConfig("extends: default\nrules:\n  line-length: {max: 120}\n")


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def lint(text: str) -> list[str]:
    """yamllint's problems with a document's text, each as `line:column rule: description`."""
    return [f"{p.line}:{p.column} {p.rule}: {p.desc}" for p in linter.run(text, YAMLLINT)]


def documents() -> dict[str, dict[str, Any]]:
    return {p.stem: load(p) for p in sorted(AUTOMATION.glob("*.yaml"))}


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_problems(name: str, doc: Document) -> list[str]:
    return [
        f"{name}: {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


# --- flow graph ------------------------------------------------------------------------------
def _steps(doc: Document) -> list[Mapping[str, Any]]:
    return list(doc.get("mainSteps") or [])


def _target(value: Any) -> str | None:
    return value[len("step:") :] if isinstance(value, str) and value.startswith("step:") else None


def normal_next(doc: Document, index: int) -> list[str]:
    """Where a step goes when it succeeds."""
    steps = _steps(doc)
    step = steps[index]
    if step.get("action") == "aws:branch":
        inputs = step.get("inputs") or {}
        return [c.get("NextStep") for c in inputs.get("Choices", [])] + ([inputs["Default"]] if "Default" in inputs else [])
    if step.get("isEnd") is True:
        return []
    if "nextStep" in step:
        return [step["nextStep"]]
    return [steps[index + 1]["name"]] if index + 1 < len(steps) else []


def failure_next(doc: Document, index: int) -> list[str]:
    step = _steps(doc)[index]
    on_failure = step.get("onFailure", "Abort")
    if on_failure == "Continue":
        return normal_next(doc, index)
    target = _target(on_failure)
    return [target] if target else []


def target_problems(name: str, doc: Document) -> list[str]:
    """Every nextStep, onFailure/onCancel step:, and branch target names a step of the document."""
    names = {s.get("name") for s in _steps(doc)}
    problems = []
    for step in _steps(doc):
        targets = [
            ("nextStep", step.get("nextStep")),
            ("onFailure", _target(step.get("onFailure"))),
            ("onCancel", _target(step.get("onCancel"))),
        ]
        if step.get("action") == "aws:branch":
            inputs = step.get("inputs") or {}
            targets += [("Choices.NextStep", c.get("NextStep")) for c in inputs.get("Choices", [])]
            targets.append(("Default", inputs.get("Default")))
        for field, target in targets:
            if target is not None and target not in names:
                problems.append(f"{name}: step {step.get('name')}: {field} -> {target}, which is not a step")
    return problems


def _predecessors(doc: Document) -> dict[str, set[str]]:
    """Steps that can have run (successfully or not) before each step, following every edge."""
    steps = _steps(doc)
    index = {s["name"]: i for i, s in enumerate(steps)}
    edges = {s["name"]: set(normal_next(doc, i)) | set(failure_next(doc, i)) for i, s in enumerate(steps)}
    before: dict[str, set[str]] = {}
    for start in index:
        seen, todo = set(), list(edges.get(start, ()))
        while todo:
            nxt = todo.pop()
            if nxt in seen or nxt not in index:
                continue
            seen.add(nxt)
            todo.extend(edges[nxt])
        for reached in seen:
            before.setdefault(reached, set()).add(start)
    return before


def _outputs_of(step: Mapping[str, Any]) -> set[str]:
    declared = {o.get("Name") for o in step.get("outputs") or []}
    return declared | PREDEFINED_OUTPUTS.get(step.get("action"), set())


def reference_problems(name: str, doc: Document) -> list[str]:
    """Every {{ }} names a declared parameter, an automation variable, or an output of a step that can
    run earlier; the document's outputs name real step outputs; every parameter is used."""
    params = set(doc.get("parameters") or {})
    steps = {s["name"]: s for s in _steps(doc) if "name" in s}
    before = _predecessors(doc)
    problems, used = [], set()

    def check(ref: str, where: str, step_name: str | None) -> None:
        if ref in params:
            used.add(ref)
            return
        if ref in SYSTEM_VARIABLES:
            return
        producer, _, output = ref.partition(".")
        if producer not in steps or output not in _outputs_of(steps[producer]):
            problems.append(f"{name}: {where}: {{{{ {ref} }}}} is no parameter, variable or step output")
        elif step_name is not None and producer not in before.get(step_name, set()):
            problems.append(f"{name}: {where}: {{{{ {ref} }}}} is read before step {producer} can have run")

    for ref in references(doc.get("assumeRole")):
        check(ref, "assumeRole", None)
    for step in steps.values():
        for ref in references(step.get("inputs")):
            check(ref, f"step {step['name']}", step["name"])
    for out in doc.get("outputs") or []:
        check(out, "outputs", None)
    problems += [f"{name}: parameter {p} is declared but never used" for p in sorted(params - used)]
    return problems


def _launches(step: Mapping[str, Any]) -> bool:
    """A step that creates instances: the plugin, or RunInstances called through aws:executeAwsApi."""
    inputs = step.get("inputs") or {}
    return step.get("action") == "aws:runInstances" or (
        step.get("action") == "aws:executeAwsApi"
        and str(inputs.get("Service", "")).lower() == "ec2"
        and inputs.get("Api") == "RunInstances"
    )


def _terminates(step: Mapping[str, Any], launch: str) -> bool:
    """Terminates the launch's instances: by the launch's output, or every instance tagged with the
    execution (handlers/factory_cleanup.py), which also finds one a failed launch step never reported."""
    inputs = step.get("inputs") or {}
    if step.get("action") == "aws:executeScript":
        return bool(re.search(r"from handlers\.factory_cleanup import handler", str(inputs.get("Script", ""))))
    refs = references(inputs.get("InstanceIds"))
    return (
        step.get("action") == "aws:changeInstanceState"
        and inputs.get("DesiredState") == "terminated"
        and bool({f"{launch}.InstanceIds", f"{launch}.InstanceId"} & set(refs))
    )


def cleanup_problems(name: str, doc: Document) -> list[str]:
    """After a step launches instances, every way out of the document - success or any failure, the
    launch step's own included (it may fail after EC2 created the instance) - passes a step that
    terminates those instances."""
    steps = _steps(doc)
    index = {s["name"]: i for i, s in enumerate(steps)}
    problems = []
    for li, launch in enumerate(steps):
        if not _launches(launch):
            continue
        ln = launch["name"]

        def always_terminates(start: str, seen: frozenset[str] = frozenset(), ln: str = ln) -> bool:
            """Every normal path from `start` reaches a terminate step before ending."""
            if start not in index or start in seen:
                return start in seen  # a loop ends nowhere new; a missing step never terminates
            step = steps[index[start]]
            if _terminates(step, ln):
                return True
            nxt = normal_next(doc, index[start])
            return bool(nxt) and all(always_terminates(n, seen | {start}) for n in nxt)

        own_failure = failure_next(doc, li)
        if not own_failure or not all(always_terminates(t) for t in own_failure):
            problems.append(
                f"{name}: step {ln} can fail after creating its instances, "
                f"but its onFailure ({launch.get('onFailure', 'Abort')}) does not terminate them"
            )
        # Walk the success paths from the launch up to its terminate steps; each step on them must
        # fail into a path that terminates too.
        todo, seen = list(normal_next(doc, li)), set()
        if not todo or not all(always_terminates(n) for n in todo):
            problems.append(f"{name}: instances of {ln} can end the run without a terminate step")
        while todo:
            current = todo.pop()
            if current in seen or current not in index:
                continue
            seen.add(current)
            step = steps[index[current]]
            if _terminates(step, ln):
                continue
            on_failure = failure_next(doc, index[current])
            if not on_failure or not all(always_terminates(t) for t in on_failure):
                problems.append(
                    f"{name}: step {current} runs while {ln}'s instances live, "
                    f"but its onFailure ({step.get('onFailure', 'Abort')}) does not terminate them"
                )
            todo.extend(normal_next(doc, index[current]))
    return problems


def child_document_problems(name: str, doc: Document, deployed: Mapping[str, Document]) -> list[str]:
    """aws:executeAutomation calls documents this repository deploys (by deployed name), passing only
    parameters they declare and every one they require."""
    problems = []
    for step in _steps(doc):
        if step.get("action") != "aws:executeAutomation":
            continue
        inputs = step.get("inputs") or {}
        child = inputs.get("DocumentName")
        if child not in deployed:
            problems.append(f"{name}: step {step['name']} runs {child}, which automation/ does not deploy")
            continue
        declared = deployed[child].get("parameters") or {}
        given = set(inputs.get("RuntimeParameters") or {})
        for extra in sorted(given - set(declared)):
            problems.append(f"{name}: step {step['name']} passes {extra}, which {child} does not declare")
        for missing in sorted(p for p, spec in declared.items() if "default" not in spec and p not in given):
            problems.append(f"{name}: step {step['name']} does not pass {missing}, which {child} requires")
    return problems


_READS = re.compile(r"""(?:read\.(?:string|strings|integer|boolean)\(|event\.get\()\s*["']([A-Za-z]+)["']""")


def handler_keys(module: str) -> set[str]:
    """The event keys a handler module reads (through EventReader or event.get)."""
    path = REPO / "handlers" / f"{module}.py"
    return set(_READS.findall(path.read_text())) if path.is_file() else set()


def payload_problems(name: str, doc: Document) -> list[str]:
    """An aws:executeScript InputPayload carries only keys its handler reads: a misspelt key would
    otherwise be ignored silently and its default used."""
    problems = []
    for step in _steps(doc):
        if step.get("action") != "aws:executeScript":
            continue
        inputs = step.get("inputs") or {}
        module = _IMPORT.search(inputs.get("Script", ""))
        if not module:
            continue
        reads = handler_keys(module.group(1))
        for key in sorted(set(inputs.get("InputPayload") or {}) - reads):
            problems.append(f"{name}: step {step['name']} passes {key}, which handlers/{module.group(1)}.py never reads")
    return problems


_IMPORT = re.compile(r"from handlers\.([a-z_]+) import handler")


def script_problems(name: str, doc: Document) -> list[str]:
    """aws:executeScript steps only delegate to a handler module that exists, and define their Handler."""
    problems = []
    for step in _steps(doc):
        if step.get("action") != "aws:executeScript":
            continue
        inputs = step.get("inputs") or {}
        script = inputs.get("Script", "")
        module = _IMPORT.search(script)
        if not module or not (REPO / "handlers" / f"{module.group(1)}.py").is_file():
            problems.append(f"{name}: step {step['name']} imports no existing handlers/ module")
        if not re.search(rf"^def {re.escape(str(inputs.get('Handler')))}\(events, context\):", script, re.M):
            problems.append(f"{name}: step {step['name']}: Handler {inputs.get('Handler')} is not defined by its Script")
        if len([line for line in script.splitlines() if line.strip()]) > 3:
            problems.append(f"{name}: step {step['name']}: logic belongs in handlers/, not in the document")
    return problems


def all_problems(docs: Mapping[str, Document]) -> list[str]:
    deployed = {automation_document_name(stem): doc for stem, doc in docs.items()}
    problems: list[str] = []
    for stem, doc in docs.items():
        problems += schema_problems(stem, doc)
        problems += target_problems(stem, doc)
        problems += reference_problems(stem, doc)
        problems += cleanup_problems(stem, doc)
        problems += child_document_problems(stem, doc, deployed)
        problems += script_problems(stem, doc)
        problems += payload_problems(stem, doc)
    return problems
