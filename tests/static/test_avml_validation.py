"""The memory-capture tool on the image (issue 16.3), offline: validation finds `avml` and checks its
SHA-256 against /etc/bakehouse/memory-capture (stubbed rig), and the Packer path stages the pinned
AVML object, passes the pins to provisioning and tags the AMI and its snapshots with them."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.static.packer_hcl import load as _load
from tests.static.rig import REPO, SCRIPTS, VALIDATION, build_rig

CHECK = VALIDATION / "50-memory-capture.sh"
PACKER = REPO / "packer"
BINARY = b"\x7fELF pinned avml build"
DIGEST = hashlib.sha256(BINARY).hexdigest()
VERSION = "0.14.0"


# --- validation on the stubbed rig ---------------------------------------------------------------------
@pytest.fixture
def rig(tmp_path):
    rig = build_rig(tmp_path / "rig", "dnf")
    (rig.bin / "sha256sum").symlink_to(shutil.which("sha256sum"))
    staged = tmp_path / f"avml-{VERSION}"
    staged.write_bytes(BINARY)
    installed = rig.run(
        SCRIPTS / "55-memory-capture.sh",
        BAKEHOUSE_AVML_VERSION=VERSION,
        BAKEHOUSE_AVML_SHA256=DIGEST,
        BAKEHOUSE_AVML_SOURCE=str(staged),
    )
    assert installed.returncode == 0, installed.stderr
    return rig


def test_validation_passes_when_avml_is_installed_with_the_recorded_sha256(rig):
    result = rig.run(CHECK, BAKEHOUSE_CONTEXT="image")
    assert result.returncode == 0, result.stderr
    assert "PASS memory-capture" in result.stdout and "PASS avml-sha256" in result.stdout
    assert "FAIL" not in result.stdout


def test_validation_fails_when_the_installed_avml_is_not_the_recorded_build(rig):
    (rig.root / "usr/local/bin/avml").write_bytes(b"swapped after install")
    result = rig.run(CHECK, BAKEHOUSE_CONTEXT="image")
    assert (
        f"FAIL avml-sha256: /usr/local/bin/avml has SHA-256 '{hashlib.sha256(b'swapped after install').hexdigest()}'"
        in result.stdout
    )
    assert f"the image records '{DIGEST}'" in result.stdout


def test_validation_fails_when_avml_is_missing(rig):
    (rig.root / "usr/local/bin/avml").unlink()
    result = rig.run(CHECK, BAKEHOUSE_CONTEXT="image")
    assert "FAIL memory-capture: avml is not installed" in result.stdout and "FAIL avml-sha256" in result.stdout


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_the_whole_validation_counts_a_wrong_avml_as_a_failure(rig):
    (rig.root / "usr/local/bin/avml").write_bytes(b"swapped")
    result = rig.validate("image")
    assert result.returncode == 1 and "FAIL avml-sha256" in result.stdout


def test_a_rehearsal_without_pins_skips_and_a_real_image_without_the_tool_fails(tmp_path):
    rig = build_rig(tmp_path / "bare", "dnf")
    rehearsal = rig.run(CHECK, BAKEHOUSE_CONTEXT="image")
    assert rehearsal.returncode == 0 and "SKIP memory-capture" in rehearsal.stdout
    env = {k: v for k, v in rig.env(BAKEHOUSE_CONTEXT="image").items() if k != "BAKEHOUSE_ROOT"}
    real = subprocess.run([str(CHECK)], env={**env, "BAKEHOUSE_ROOT": ""}, capture_output=True, text=True, timeout=60)
    assert "FAIL memory-capture: no /etc/bakehouse/memory-capture" in real.stdout


def test_validate_runs_the_memory_capture_check():
    checks = re.search(r'^CHECKS="([^"]+)"', (VALIDATION / "validate.sh").read_text(), re.M).group(1).split()
    assert "50-memory-capture.sh" in checks


# --- the Packer path -----------------------------------------------------------------------------------


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_packer_avml_variables_have_no_default_and_validate_their_shape():
    variables = {n: b for block in _load("variables.pkr.hcl")["variable"] for n, b in block.items()}
    for name in ("avml_version", "avml_sha256"):
        assert "default" not in variables[name], f"{name} must come from the release, not a default"
    sha = re.compile(
        re.search(r'regex\("(.+?)",', variables["avml_sha256"]["validation"][0]["condition"]).group(1).replace("\\\\", "\\")
    )
    assert sha.search(DIGEST) and not sha.search(DIGEST.upper()) and not sha.search("abc")


def test_packer_ami_and_snapshots_are_tagged_with_the_avml_pins():
    provenance = _load("sources.pkr.hcl")["locals"][0]["provenance"]
    assert provenance["bakehouse:avml-version"] == "${var.avml_version}"
    assert provenance["bakehouse:avml-sha256"] == "${var.avml_sha256}"


def test_both_packer_builders_pass_the_avml_pins_to_provisioning():
    [build] = _load("build.pkr.hcl")["build"]
    runs = [
        p["shell"]
        for p in build["provisioner"]
        if "shell" in p and any("provision.sh" in line for line in p["shell"].get("inline", []))
    ]
    assert len(runs) == 2
    for run in runs:
        assert "BAKEHOUSE_AVML_VERSION=${var.avml_version}" in run["environment_vars"]
        assert "BAKEHOUSE_AVML_SHA256=${var.avml_sha256}" in run["environment_vars"]


def _buildspec_avml_lines() -> list[str]:
    commands = yaml.safe_load((PACKER / "buildspec.yml").read_text())["phases"]["pre_build"]["commands"]
    start = next(i for i, c in enumerate(commands) if "AVML_VERSION=" in c)
    end = next(i for i, c in enumerate(commands) if "sha256sum -c" in c)
    return commands[start : end + 1]


def _run_buildspec_staging(tmp_path, metadata: dict, body: bytes) -> subprocess.CompletedProcess:
    """The buildspec's AVML lines in bash, with `aws` stubbed to hand out `body` for the object asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "object").write_bytes(body)
    aws = bin_dir / "aws"
    aws.write_text(f'#!/bin/bash\nprintf "%s\\n" "$*" >> {tmp_path}/calls\ncp {tmp_path}/object "${{@: -1}}"\n')
    aws.chmod(0o755)
    head = json.dumps({"Metadata": {"commit": "0123abc", "bundle-version": "v1", **metadata}})
    script = "set -euo pipefail\n" + f"head='{head}'\n" + "\n".join(_buildspec_avml_lines()) + "\n"
    return subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "SCRIPTS_BUCKET": "bakehouse-scripts", "BUNDLE_VERSION_ID": "v1"},
    )


PINS = {"avmlversion": VERSION, "avmlsha256": DIGEST, "avmlobjectversion": "objv1"}


def test_buildspec_stages_the_pinned_avml_object_version_beside_the_scripts(tmp_path):
    result = _run_buildspec_staging(tmp_path, PINS, BINARY)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "scripts" / "tools" / f"avml-{VERSION}").read_bytes() == BINARY
    call = (tmp_path / "calls").read_text()
    assert f"--key tools/avml/{VERSION}/avml --version-id objv1" in call


def test_buildspec_refuses_an_avml_object_that_is_not_the_pinned_build(tmp_path):
    result = _run_buildspec_staging(tmp_path, PINS, b"tampered")
    assert result.returncode != 0


def test_buildspec_refuses_a_bundle_released_without_avml_pins(tmp_path):
    result = _run_buildspec_staging(tmp_path, {}, BINARY)
    assert result.returncode != 0 and "carries no AVML pins" in result.stderr


def test_buildspec_writes_the_avml_pins_into_the_packer_variables():
    commands = yaml.safe_load((PACKER / "buildspec.yml").read_text())["phases"]["pre_build"]["commands"]
    [pkrvars] = [c for c in commands if "bakehouse.auto.pkrvars.hcl" in c]
    assert 'avml_version = "%s"' in pkrvars and 'avml_sha256 = "%s"' in pkrvars
    assert '"$AVML_VERSION" "$AVML_SHA256"' in pkrvars
