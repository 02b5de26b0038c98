"""The test tree's layout rules (issue 14.4): a test module imports support modules, never another test
module (sharing a helper through a test module runs that module's tests' imports and fixtures twice and hides
who depends on what); and every fake of an AWS API lives under tests/fakes, where each one has a guard that
fails when moto learns the call.

A fake, precisely: a module whose name says "fake", or a class named Fake* or built on
tests.fakes.RecordingFake (the base that forwards everything else to moto)."""

from __future__ import annotations

import ast
import configparser
import fnmatch
from pathlib import Path

TESTS = Path(__file__).resolve().parent
FAKES = TESTS / "fakes"


def _modules() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_modules(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            # `from tests.unit import test_x` imports a module too
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def imported_test_modules(source: str) -> list[str]:
    return sorted(
        m for m in _imported_modules(ast.parse(source)) if m.startswith("tests.") and m.rsplit(".", 1)[-1].startswith("test_")
    )


def test_no_test_module_imports_another():
    offenders = {}
    # Support modules too: a helper such as tests/iam/scp_fit.py importing a test module is the same coupling.
    for path in _modules():
        imported = imported_test_modules(path.read_text()) if path != Path(__file__) else []
        if imported:
            offenders[str(path.relative_to(TESTS.parent))] = imported
    assert offenders == {}, f"test modules importing test modules (move the helper into a support module): {offenders}"


def test_the_import_check_sees_both_import_forms():
    assert imported_test_modules("from tests.org.test_org_scps import Request\n") == ["tests.org.test_org_scps"]
    assert imported_test_modules("from tests.org import test_org_scps\n") == ["tests.org.test_org_scps"]
    assert imported_test_modules("import tests.policy.test_policy_fixtures\n") == ["tests.policy.test_policy_fixtures"]
    assert imported_test_modules("from tests.policy.cases import CASES\n") == []


def fakes_defined(path: Path, source: str) -> list[str]:
    found = [path.name] if "fake" in path.stem.lower() else []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            bases = {b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in node.bases}
            if node.name.startswith("Fake") or "RecordingFake" in bases:
                found.append(node.name)
    return found


def test_every_fake_lives_under_tests_fakes():
    outside = {
        str(path.relative_to(TESTS.parent)): fakes_defined(path, path.read_text())
        for path in _modules()
        if FAKES not in path.parents and path != Path(__file__)
    }
    outside = {path: fakes for path, fakes in outside.items() if fakes}
    assert outside == {}, f"fakes outside tests/fakes: {outside}"


def test_the_fake_check_sees_fake_modules_and_classes():
    assert fakes_defined(Path("tests/handlers/_operations_fakes.py"), "") == ["_operations_fakes.py"]
    assert fakes_defined(Path("tests/unit/x.py"), "class FakeSqs:\n    pass\n") == ["FakeSqs"]
    assert fakes_defined(Path("tests/unit/x.py"), "class Sqs(fakes.RecordingFake):\n    pass\n") == ["Sqs"]
    assert fakes_defined(Path("tests/unit/x.py"), "class RecordingApprover:\n    pass\n") == []


def test_every_test_folder_is_collected():
    """pytest skips folders matching norecursedirs (its default has `build`): none under tests/ may match."""
    ini = configparser.ConfigParser()
    ini.read(TESTS.parent / "pytest.ini")
    patterns = ini["pytest"]["norecursedirs"].split()
    skipped = sorted(
        str(d.relative_to(TESTS.parent))
        for d in TESTS.rglob("*")
        if d.is_dir() and "__pycache__" not in d.parts and any(fnmatch.fnmatch(d.name, pattern) for pattern in patterns)
    )
    assert skipped == [], f"test folders pytest would not collect: {skipped}"
