"""Every provisioning and validation script is shellcheck-clean, runnable, and on the entrypoints' lists."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.static.rig import REPO, SCRIPTS, STUB, VALIDATION

SHELLCHECK = REPO / ".venv" / "bin" / "shellcheck"
ALL_SCRIPTS = sorted([*SCRIPTS.glob("*.sh"), *VALIDATION.glob("*.sh"), STUB])
LIBRARIES = {SCRIPTS / "lib.sh", VALIDATION / "lib.sh"}
IDS = [str(p.relative_to(REPO)) for p in ALL_SCRIPTS]


def _listed(entrypoint: Path, variable: str) -> list[str]:
    match = re.search(rf'^{variable}="([^"]+)"', entrypoint.read_text(), re.MULTILINE)
    assert match, f'{entrypoint.name} has no {variable}="..." list'
    return match.group(1).split()


def test_there_are_scripts_to_check():
    assert len(ALL_SCRIPTS) >= 15


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=IDS)
def test_script_is_shellcheck_clean(script):
    # -x follows `. lib.sh`; SCRIPTDIR resolves it relative to the script, as the scripts do at run time.
    result = subprocess.run(
        [str(SHELLCHECK), "--severity=style", "-x", "-P", "SCRIPTDIR", str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=IDS)
def test_script_has_a_shebang_and_strict_mode(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n"), "first line must be the bash shebang"
    if script not in LIBRARIES:
        assert re.search(r"^set -eu$", text, re.MULTILINE), "runnable scripts stop on errors and unset variables"


@pytest.mark.parametrize("script", [p for p in ALL_SCRIPTS if p not in LIBRARIES], ids=lambda p: p.name)
def test_runnable_script_is_executable(script):
    assert os.access(script, os.X_OK), f"{script} is not executable (git update-index --chmod=+x)"


@pytest.mark.parametrize("library", sorted(LIBRARIES), ids=lambda p: str(p.relative_to(REPO)))
def test_library_is_not_executable(library):
    # Sourced only; running one alone would do nothing useful.
    assert not os.access(library, os.X_OK)


def test_provision_runs_every_step_script_in_numeric_order():
    steps = _listed(SCRIPTS / "provision.sh", "STEPS")
    on_disk = sorted(p.name for p in SCRIPTS.glob("[0-9][0-9]-*.sh"))
    assert steps == on_disk


def test_validate_runs_every_check_script_in_numeric_order():
    checks = _listed(VALIDATION / "validate.sh", "CHECKS")
    on_disk = sorted(p.name for p in VALIDATION.glob("[0-9][0-9]-*.sh"))
    assert checks == on_disk
