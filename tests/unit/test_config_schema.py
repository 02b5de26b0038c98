"""The editors' JSON schema (`make schema`) is what the models generate, every shipped stack file names it on
its first line (the YAML language server's modeline, relative to the file) and fits it as a whole."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from estate.schema import MODELINE, SCHEMA_PATH, render

PROJECT_DIR = Path(__file__).resolve().parents[2]
STACK_FILES = sorted(PROJECT_DIR.glob("Pulumi.*.yaml"))


def test_committed_schema_is_what_the_models_generate():
    assert SCHEMA_PATH.read_text() == render(), "run `make schema` and commit schema/bakehouse-stack.schema.json"


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_shipped_stack_file_fits_the_schema(path):
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_shipped_stack_file_names_the_schema_on_its_first_line(path):
    first = path.read_text().splitlines()[0]
    assert first == MODELINE, f"{path.name}: put `{MODELINE}` first (`pulumi config set` may drop comments)"
    # yaml-language-server resolves a relative $schema against the YAML file's own folder.
    assert (path.parent / first.split("$schema=", 1)[1]).resolve() == SCHEMA_PATH


def test_the_schema_describes_the_whole_file_not_just_its_config():
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    doc = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())
    assert list(validator.iter_errors(doc)) == []
    doc["config"]["bakehouse:colour"] = "blue"
    assert any("colour" in e.message for e in validator.iter_errors(doc))
    assert any("config" in e.message for e in validator.iter_errors({"bakehouse:role": "workload"}))


def test_the_schema_refuses_a_typo_and_an_unknown_key():
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    doc = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())
    doc["config"]["bakehouse:factory"]["rescan"] = {"schedul": "rate(1 day)"}
    doc["config"]["bakehouse:colour"] = "blue"
    messages = [e.message for e in validator.iter_errors(doc)]
    assert any("schedul" in m for m in messages) and any("colour" in m for m in messages), messages
