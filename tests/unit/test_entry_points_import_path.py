"""Entry points run as modules of the project (`python -m tools.policy_runner`, `python -m benchmarks.rescan`)
instead of editing sys.path, and the CrossGuard pack imports its own folder only."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", "node_modules", "venv", "tests", ".git"}
# tools/mockrun.run_stack is no entry point: it plays the Pulumi language host, which runs a project's
# `__main__.py` with the project directory importable (the program imports its own components).
HOSTS_A_PROGRAM = {Path("tools/mockrun.py")}


def _project_sources() -> list[Path]:
    return [
        path.relative_to(ROOT)
        for path in ROOT.rglob("*.py")
        if not SKIP & set(path.relative_to(ROOT).parts) and path.relative_to(ROOT) not in HOSTS_A_PROGRAM
    ]


def _touches_sys_path(source: str) -> bool:
    return any(
        isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) and node.value.id == "sys"
        for node in ast.walk(ast.parse(source))
    )


def _clean_env() -> dict[str, str]:
    # nothing may come from the caller's import path: only what the interpreter itself finds
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}


def test_no_entry_point_edits_sys_path():
    editing = sorted(str(path) for path in _project_sources() if _touches_sys_path((ROOT / path).read_text()))
    assert not editing, f"run these as modules (python -m) instead of editing sys.path: {editing}"


def test_the_pack_loads_as_the_cli_runs_it_with_only_its_own_folder_importable(tmp_path):
    # pulumi.policy's __main__ runs the pack folder with runpy.run_path; PolicyPack is stubbed so it does not serve.
    probe = textwrap.dedent(
        f"""
        import importlib.util, json, runpy, sys
        import pulumi_policy
        seen = {{}}
        class Recorder:
            def __init__(self, name, policies, **kwargs):
                seen.update(name=name, policies=len(policies))
        pulumi_policy.PolicyPack = Recorder
        runpy.run_path({str(ROOT / "policy")!r}, run_name="__main__")
        seen["project_importable"] = [m for m in ("estate", "tools", "handlers") if importlib.util.find_spec(m)]
        print(json.dumps(seen))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.splitlines()[-1])
    assert seen["name"] == "bakehouse" and seen["policies"] > 0
    assert seen["project_importable"] == []


@pytest.mark.parametrize(
    "module", ["tools.policy_runner", "benchmarks.rescan", "benchmarks.distribution", "benchmarks.preview_time"]
)
def test_entry_point_runs_as_a_module_from_the_project_root(module):
    out = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, env=_clean_env(), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage:" in out.stdout
