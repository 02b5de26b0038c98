"""pyproject.toml declares the dependencies; `make lock` compiles them into the locks that get installed.

requirements.txt is what Pulumi.yaml's pip toolchain installs for `pulumi up` (runtime only),
requirements-dev.txt is what `make` installs for tests and linters (runtime + dev, same versions), and
policy/requirements.txt is what the CLI installs into the pack's own venv (policy group).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME_LOCK = ROOT / "requirements.txt"
DEV_LOCK = ROOT / "requirements-dev.txt"
POLICY_LOCK = ROOT / "policy" / "requirements.txt"
# What `pulumi up` must never carry: test doubles, test runners, validators, linters, the AWS SDK the
# handlers use inside Lambda, and the pin that nothing imports.
TEST_TOOLING = {"moto", "pytest", "pytest-xdist", "cfn-lint", "yamllint", "jsonschema", "ruff", "mypy", "boto3", "botocore"}
UNUSED = {"aws-lambda-powertools"}


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(group: str | None) -> dict[str, str]:
    """name -> exact version for [project] dependencies (group None) or a [dependency-groups] group."""
    entries = PYPROJECT["project"]["dependencies"] if group is None else PYPROJECT["dependency-groups"][group]
    pins = {}
    for entry in entries:
        req = Requirement(entry)
        (spec,) = req.specifier  # one exact pin each: a range would let the locks drift apart
        assert spec.operator == "==", f"{entry}: pin an exact version"
        pins[_name(req.name)] = spec.version
    return pins


def locked(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert not line.startswith("-"), f"{path.name}: {line!r} (a lock pins, it does not include)"
            name, version = line.split("==")
            pins[_name(name.split("[")[0])] = version.strip()
    return pins


def test_pulumi_up_installs_the_runtime_lock():
    runtime = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["runtime"]
    # the pip toolchain installs requirements.txt from the project directory, into this virtualenv
    assert runtime["options"]["toolchain"] == "pip"
    assert runtime["options"]["virtualenv"] == ".venv"
    assert RUNTIME_LOCK.exists()


def test_runtime_lock_carries_no_test_tooling():
    runtime = locked(RUNTIME_LOCK)
    dev_only = set(declared("dev")) - set(declared(None))
    assert not (set(runtime) & (TEST_TOOLING | UNUSED | dev_only)), set(runtime) & (TEST_TOOLING | UNUSED | dev_only)


def test_runtime_declares_and_locks_pydantic_for_the_config_models():
    assert "pydantic" in declared(None)
    assert locked(RUNTIME_LOCK)["pydantic"] == declared(None)["pydantic"]


def test_dev_lock_pins_every_runtime_pin_at_the_same_version():
    dev = locked(DEV_LOCK)
    differing = {name: (version, dev.get(name)) for name, version in locked(RUNTIME_LOCK).items() if dev.get(name) != version}
    assert not differing, f"runtime pin -> (runtime, dev): {differing}"


def test_policy_lock_pins_what_the_tests_run_the_pack_with():
    # tests/policy serve the pack from the dev venv; the CLI serves it from policy/venv
    dev = locked(DEV_LOCK)
    differing = {name: (version, dev.get(name)) for name, version in locked(POLICY_LOCK).items() if dev.get(name) != version}
    assert not differing, f"policy pin -> (policy, dev): {differing}"


@pytest.mark.parametrize(
    ("groups", "lock"),
    [((None,), RUNTIME_LOCK), ((None, "dev"), DEV_LOCK), (("policy",), POLICY_LOCK)],
    ids=["runtime", "dev", "policy"],
)
def test_every_declared_pin_is_locked_at_its_version(groups, lock):
    pins = locked(lock)
    for group in groups:
        stale = {name: (version, pins.get(name)) for name, version in declared(group).items() if pins.get(name) != version}
        assert not stale, f"{lock.name} disagrees with pyproject.toml ({group or 'runtime'}): {stale}; run `make lock`"


def test_the_policy_lock_holds_only_the_pack_and_what_it_needs():
    pack = locked(POLICY_LOCK)
    assert set(declared("policy")) <= set(pack)
    assert not set(pack) & {"pulumi-aws", "pydantic", *TEST_TOOLING}


def test_pyproject_is_the_only_declaration():
    # a second source of pins (requirements*.in) would drift from the one `make lock` compiles
    assert not sorted(p.name for p in ROOT.glob("requirements*.in")) and not (ROOT / "policy" / "requirements.in").exists()
    assert "make lock" in RUNTIME_LOCK.read_text().splitlines()[1]
