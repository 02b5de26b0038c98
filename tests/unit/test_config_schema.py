"""The editors' JSON schema (`make schema`) is what the models generate, and every shipped stack file fits it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from estate.schema import SCHEMA_PATH, render

PROJECT_DIR = Path(__file__).resolve().parents[2]
STACK_FILES = sorted(PROJECT_DIR.glob("Pulumi.*.yaml"))


def test_committed_schema_is_what_the_models_generate():
    assert SCHEMA_PATH.read_text() == render(), "run `make schema` and commit schema/bakehouse-stack.schema.json"


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: p.name)
def test_every_shipped_stack_file_fits_the_schema(path):
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text())["config"])


def test_the_schema_refuses_a_typo_and_an_unknown_key():
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    config = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())["config"]
    config["bakehouse:factory"]["rescan"] = {"schedul": "rate(1 day)"}
    config["bakehouse:colour"] = "blue"
    messages = [e.message for e in validator.iter_errors(config)]
    assert any("schedul" in m for m in messages) and any("colour" in m for m in messages), messages
