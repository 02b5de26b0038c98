"""packer/scripts/55-memory-capture.sh on the stubbed rig: AVML installed from the staged artifact
only when its SHA-256 is the pinned one, recorded on the image, untouched by a rerun; fail-closed on a
real build without pins. (Run Command later runs `avml` from PATH: handlers/isolate.capture_commands.)"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat

import pytest

from tests.static.rig import SCRIPTS, build_rig

SCRIPT = SCRIPTS / "55-memory-capture.sh"
BINARY = b"\x7fELF pinned avml build"
VERSION = "0.14.0"


@pytest.fixture
def rig(tmp_path):
    rig = build_rig(tmp_path / "rig", "dnf")
    (rig.bin / "sha256sum").symlink_to(shutil.which("sha256sum"))
    staged = tmp_path / "staged" / f"avml-{VERSION}"
    staged.parent.mkdir()
    staged.write_bytes(BINARY)
    rig.staged = staged
    return rig


def _pins(rig, digest=None, **more):
    return {
        "BAKEHOUSE_AVML_VERSION": VERSION,
        "BAKEHOUSE_AVML_SHA256": digest or hashlib.sha256(BINARY).hexdigest(),
        "BAKEHOUSE_AVML_SOURCE": str(rig.staged),
        **more,
    }


def test_avml_is_installed_executable_from_the_staged_artifact_and_recorded(rig):
    result = rig.run(SCRIPT, **_pins(rig))
    assert result.returncode == 0, result.stderr
    avml = rig.root / "usr/local/bin/avml"
    assert avml.read_bytes() == BINARY and stat.S_IMODE(avml.stat().st_mode) == 0o755
    record = (rig.root / "etc/bakehouse/memory-capture").read_text().splitlines()
    assert f"version={VERSION}" in record and f"sha256={hashlib.sha256(BINARY).hexdigest()}" in record


def test_an_artifact_whose_sha256_is_not_the_pinned_one_is_refused_and_nothing_installed(rig):
    result = rig.run(SCRIPT, **_pins(rig, digest="0" * 64))
    assert result.returncode != 0
    assert "has SHA-256" in result.stderr and "expected " + "0" * 64 in result.stderr
    assert not (rig.root / "usr/local/bin/avml").exists()


def test_a_second_run_changes_nothing(rig):
    assert rig.run(SCRIPT, **_pins(rig)).returncode == 0
    before = {p: p.stat().st_mtime_ns for p in (rig.root / "usr/local/bin/avml", rig.root / "etc/bakehouse/memory-capture")}
    rig.reset_calls()
    result = rig.run(SCRIPT, **_pins(rig))
    assert result.returncode == 0 and "AVML 0.14.0 present" in result.stderr
    assert {p: p.stat().st_mtime_ns for p in before} == before and rig.calls() == []


def test_an_artifact_in_the_scripts_bucket_is_fetched_with_the_cli_then_verified(rig, tmp_path):
    cli = rig.bin / "aws"  # the stand-in CLI copies the "bucket" object from a local mirror
    cli.write_text(f'#!/bin/bash\n[ "$1 $2" = \'s3 cp\' ] || exit 2\ncp {rig.staged} "$5"\n')
    cli.chmod(0o755)
    result = rig.run(SCRIPT, **_pins(rig, BAKEHOUSE_AVML_SOURCE=f"s3://bakehouse-scripts/tools/avml/{VERSION}/avml"))
    assert result.returncode == 0, result.stderr
    assert (rig.root / "usr/local/bin/avml").read_bytes() == BINARY


@pytest.mark.parametrize("digest", ["ABC", "g" * 64])
def test_a_malformed_pin_is_refused(rig, digest):
    result = rig.run(SCRIPT, **_pins(rig, digest=digest))
    assert result.returncode != 0 and "BAKEHOUSE_AVML_SHA256" in result.stderr


def test_a_real_build_without_pins_fails_and_a_rehearsal_skips(rig):
    env = {k: v for k, v in rig.env().items() if k != "BAKEHOUSE_ROOT"}
    import subprocess

    real = subprocess.run(["bash", "-c", f"BAKEHOUSE_ROOT= {SCRIPT}"], env=env, capture_output=True, text=True, timeout=60)
    assert real.returncode != 0 and "BAKEHOUSE_AVML_VERSION is required" in real.stderr
    rehearsal = rig.run(SCRIPT)
    assert rehearsal.returncode == 0 and "rehearsal without AVML pins" in rehearsal.stderr


def test_provisioning_runs_the_memory_capture_step_after_the_security_tools():
    steps = next(line for line in (SCRIPTS / "provision.sh").read_text().splitlines() if line.startswith("STEPS="))
    assert steps.index("50-security-tools.sh") < steps.index("55-memory-capture.sh") < steps.index("90-cleanup.sh")
    assert os.access(SCRIPT, os.X_OK)
