"""The JSON schema of a `Pulumi.<stack>.yaml` file, its `config:` mapping generated from estate/models.py.

`make schema` writes it to schema/bakehouse-stack.schema.json for editors: each stack file's first line,
`# yaml-language-server: $schema=schema/bakehouse-stack.schema.json`, names it (a relative path is
resolved against the YAML file's own folder). The schema is of the whole file, since that is what an
editor checks; tests/unit/test_config_schema.py keeps the committed file equal to this.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .models import SECRET_PREFIX, StackKeys
from .validate import NAMESPACE

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "bakehouse-stack.schema.json"
# The first line of every Pulumi.<stack>.yaml (the schema's path relative to the stack files).
MODELINE = "# yaml-language-server: $schema=schema/bakehouse-stack.schema.json"
# `pulumi config set --secret` writes {secure: <ciphertext>} in place of the value.
_SECURE = {"type": "object", "properties": {"secure": {"type": "string"}}, "required": ["secure"], "additionalProperties": False}


def stack_file_schema() -> dict[str, Any]:
    model = StackKeys.model_json_schema(by_alias=True)
    properties = {f"{NAMESPACE}{key}": value for key, value in model.pop("properties").items()}
    config = {
        "title": "Bakehouse stack config (the config: mapping)",
        "type": "object",
        "properties": properties,
        "required": [f"{NAMESPACE}{key}" for key in model.pop("required", [])],
        "patternProperties": {
            # The workload app's secrets, always set with --secret.
            "^" + NAMESPACE + SECRET_PREFIX.replace(".", r"\.") + r"[A-Za-z0-9_./-]+$": _SECURE,
            # Other namespaces (aws:region, pulumi:...) are not Bakehouse's to judge.
            "^(?!" + NAMESPACE + ")": {},
        },
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Bakehouse stack file (Pulumi.<stack>.yaml)",
        "type": "object",
        # secretsprovider, encryptedkey, encryptionsalt, environment: the CLI's keys, not Bakehouse's to judge.
        "properties": {"config": config},
        "required": ["config"],
        "$defs": model.pop("$defs", {}),
    }


def render() -> str:
    return json.dumps(stack_file_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render())
    print(f"wrote {target}")
