"""handlers/contract.py is the one place the names stacks and handlers share are declared.

A handler that re-declares a contract value (a role name, tag key, parameter name or id regex) drifts
silently the day the contract changes; so does estate.naming if it stops re-exporting the contract's.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import estate.config
import estate.naming
import handlers.contract as contract
from components.build import factory_schedules, factory_targets
from components.workload import fleet_lifetime

HANDLERS = Path(contract.__file__).resolve().parent
PROJECT_DIR = HANDLERS.parent


def _public(module: object) -> dict[str, object]:
    return {k: v for k, v in vars(module).items() if k.isupper() and not k.startswith("_")}


CONTRACT = _public(contract)
CONTRACT_STRINGS = {v: k for k, v in CONTRACT.items() if isinstance(v, str)}
CONTRACT_PATTERNS = {v.pattern: k for k, v in CONTRACT.items() if isinstance(v, re.Pattern)}
HANDLER_MODULES = sorted(p for p in HANDLERS.glob("*.py") if p.name not in ("contract.py", "__init__.py"))


def _literal(node: ast.expr | None) -> str | None:
    """A module-level value's literal: a string, or the pattern of re.compile("...")."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "compile"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "re"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def _redeclared(path: Path) -> list[str]:
    found = []
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        value = _literal(node.value) if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if value is None:
            continue
        for target in targets:
            name = target.id if isinstance(target, ast.Name) else "?"
            if value in CONTRACT_STRINGS:
                found.append(f"{path.name}:{node.lineno} {name} = {value!r} (contract.{CONTRACT_STRINGS[value]})")
            elif value in CONTRACT_PATTERNS:
                found.append(f"{path.name}:{node.lineno} {name} = re.compile({value!r}) (contract.{CONTRACT_PATTERNS[value]})")
    return found


def test_the_scan_sees_handler_modules():
    assert len(HANDLER_MODULES) > 10
    assert "common.py" in {p.name for p in HANDLER_MODULES}


@pytest.mark.parametrize("path", HANDLER_MODULES, ids=lambda p: p.name)
def test_no_handler_redeclares_a_contract_value(path):
    assert _redeclared(path) == [], "import these from handlers.contract instead"


def _inline(path: Path) -> list[str]:
    """Contract values written out anywhere in a module (a tag key in a dict, a pattern in a call)."""
    return [
        f"{path.name}:{node.lineno} {node.value!r}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and (node.value in CONTRACT_STRINGS or node.value in CONTRACT_PATTERNS)
    ]


@pytest.mark.parametrize("path", HANDLER_MODULES, ids=lambda p: p.name)
def test_no_handler_writes_a_contract_value_inline(path):
    assert _inline(path) == [], "use the handlers.contract name instead"


def test_the_scan_catches_a_copy(tmp_path):
    copy = tmp_path / "copy.py"
    copy.write_text(
        'import re\nROLE = "BakehouseImagePublisher"\nAMI: re.Pattern[str] = re.compile(r"ami-[0-9a-f]{8,17}")\n'
        'OTHER = "unrelated"\n'
    )
    found = _redeclared(copy)
    assert len(found) == 2
    assert "ROLE" in found[0] and "IMAGE_PUBLISHER_ROLE" in found[0]
    assert "AMI" in found[1] and "AMI_ID" in found[1]


def test_contract_is_standard_library_only():
    imported = set()
    for node in ast.walk(ast.parse((HANDLERS / "contract.py").read_text())):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"__future__", "re"}


def test_estate_naming_values_are_the_contracts():
    shared = {k: v for k, v in _public(estate.naming).items() if k in CONTRACT}
    assert shared, "estate.naming re-exports the contract's names"
    for name, value in shared.items():
        assert value is CONTRACT[name], name
    for name in ("IMAGE_PUBLISHER_ROLE", "IMAGE_SCANNER_ROLE", "FACTORY_SETTINGS_PARAMETER", "APPROVED_IMAGE_TAG"):
        assert getattr(estate.naming, name) is CONTRACT[name]
    for fn in ("image_parameter", "image_history_parameter", "env_ami_parameter", "env_ami_path"):
        assert getattr(estate.naming, fn) is getattr(contract, fn)


def test_no_estate_or_naming_module_redeclares_a_contract_value():
    for module in (estate.naming, estate.config):
        assert _redeclared(Path(module.__file__)) == []
    for name in ("ACCOUNT_ID", "REGION", "ENV_NAME", "ROLE_NAME"):
        assert getattr(estate.config, name) is CONTRACT[name]


def test_parameter_helpers_fill_the_templates():
    assert contract.image_parameter("web") == "/bakehouse/images/web/latest"
    assert contract.image_history_parameter("web") == "/bakehouse/images/web/history"
    assert contract.env_ami_parameter("dev", "web") == "/bakehouse/dev/ami/web"
    assert contract.env_ami_path("dev") == "/bakehouse/dev/ami/"
    assert estate.naming.env_ami_parameter("dev", "web").startswith(estate.naming.env_prefix("dev") + "/")
    assert factory_targets.TARGETS_PATH == contract.FACTORY_TARGETS_PATH


def _handler_imports(module: str) -> set[str]:
    """handlers/<module>.py and every handlers module it imports, transitively, as zip member paths."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((HANDLERS / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module:
                    todo.append(node.module)
                elif node.module and node.module.startswith("handlers."):
                    todo.append(node.module.removeprefix("handlers."))
            elif isinstance(node, ast.Import):
                todo += [a.name.removeprefix("handlers.") for a in node.names if a.name.startswith("handlers.")]
    return {f"handlers/{name}.py" for name in seen}


@pytest.mark.parametrize(
    ("members", "entry"),
    [(factory_schedules.LIFECYCLE_MEMBERS, "lifecycle"), (fleet_lifetime.MEMBERS, "fleet_report")],
    ids=["lifecycle", "fleet_report"],
)
def test_hand_picked_zips_ship_the_contract(members, entry):
    assert "handlers/contract.py" in members
    assert _handler_imports(entry) <= set(members), "a module the handler imports is missing from its zip"
