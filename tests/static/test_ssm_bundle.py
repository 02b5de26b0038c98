"""The SSM documents' own runCommand lines, run against the rehearsal rig with the bundle laid out as
the documents unpack it (scripts/ and validation/ side by side): the SSM path must provision exactly
what provision.sh provisions, and validate the result with the same checks."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.static.rig import REPO, SCRIPTS, VALIDATION, Rig, build_rig

BUILD_IMAGE_DOC = REPO / "automation" / "build_image.yaml"
VALIDATE_IMAGE_DOC = REPO / "automation" / "validate_image.yaml"
BUNDLE_LINE = re.compile(r'\$work"?/(scripts|validation)/')


def _bundle_lines(doc) -> list[str]:
    if not doc.exists():
        pytest.skip(f"{doc.relative_to(REPO)} is written by the factory-documents engineer; not there yet")
    steps = yaml.safe_load(doc.read_text())["mainSteps"]
    lines = [
        line
        for step in steps
        if step["action"] == "aws:runCommand"
        for line in step["inputs"]["Parameters"]["commands"]
        if BUNDLE_LINE.search(line)
    ]
    assert lines, f"{doc.name} runs nothing from the unpacked bundle"
    # The document's parameters and earlier steps' outputs, as a rehearsal without memory-capture pins
    # has them (55-memory-capture.sh then skips, as provision.sh does without them).
    lines = [PARAMETER.sub(lambda m: _resolve(doc, m.group(1)), line) for line in lines]
    return lines


PARAMETER = re.compile(r"\{\{\s*([A-Za-z0-9_.]+)\s*\}\}")
REHEARSAL_VALUES = {
    "ScriptsBucket": "bakehouse-scripts",
    "ReadMemoryCapturePins.AvmlVersion": "",
    "ReadMemoryCapturePins.AvmlSha256": "",
    "ReadMemoryCapturePins.AvmlObjectVersion": "",
}


def _resolve(doc, name: str) -> str:
    if name not in REHEARSAL_VALUES:
        raise AssertionError(f"{doc.name}: bundle line uses {{{{ {name} }}}}; give it a rehearsal value here")
    return REHEARSAL_VALUES[name]


def _run_as_document(rig: Rig, lines: list[str], tmp_path, **extra: str) -> subprocess.CompletedProcess:
    work = tmp_path / "work"
    if not work.exists():
        shutil.copytree(SCRIPTS, work / "scripts")
        shutil.copytree(VALIDATION, work / "validation")
    # `aws s3api get-object ... OUTFILE` fetches the staged AVML object: write an empty file where asked.
    aws = rig.bin / "aws"
    if not aws.exists():
        aws.write_text('#!/bin/sh\nfor last; do :; done\n: > "$last"\n')
        aws.chmod(0o755)
    script = "set -eu\nwork=" + str(work) + "\n" + "\n".join(lines) + "\n"
    return subprocess.run(["bash", "-c", script], env=rig.env(**extra), capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_ssm_build_lines_provision_the_same_system_as_provision_sh(provisioned, tmp_path):
    lines = _bundle_lines(BUILD_IMAGE_DOC)
    reference = provisioned("apt")
    rig = build_rig(tmp_path / "ssm", "apt")
    result = _run_as_document(rig, lines, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    # Only provision.sh keeps a local log and the /etc/bakehouse/image-build record; a document that
    # runs the steps itself has its output in the command invocation instead.
    own_records = ("etc/bakehouse", "etc/bakehouse/image-build", "var/log/bakehouse")

    def comparable(snapshot):
        return {k: v for k, v in snapshot.items() if k not in own_records}

    ours, theirs = comparable(reference.snapshot()), comparable(rig.snapshot())
    differing = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    assert differing == []


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_ssm_validation_line_passes_a_good_image_and_fails_a_listening_sshd(provisioned, tmp_path):
    lines = _bundle_lines(VALIDATE_IMAGE_DOC)
    rig = provisioned("dnf")
    rig.boot()
    good = _run_as_document(rig, lines, tmp_path)
    assert good.returncode == 0, good.stdout[-3000:]
    assert "PASS no-remote-shell-listening" in good.stdout

    (rig.state / "listening").write_text("LISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n")
    bad = _run_as_document(rig, lines, tmp_path)
    assert bad.returncode != 0
    assert "FAIL no-remote-shell-listening" in bad.stdout
