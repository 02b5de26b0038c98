"""The Packer templates as plain data, for the tests that read them."""

from __future__ import annotations

from typing import Any

import hcl2

from tests.static.rig import REPO

PACKER = REPO / "packer"


def clean(node: Any) -> Any:
    """python-hcl2 keeps string quotes and adds bookkeeping keys; strip both."""
    if isinstance(node, dict):
        return {clean(k): clean(v) for k, v in node.items() if k not in ("__comments__", "__is_block__")}
    if isinstance(node, list):
        return [clean(v) for v in node]
    if isinstance(node, str) and len(node) >= 2 and node[0] == node[-1] == '"':
        return node[1:-1]
    return node


def load(name: str) -> dict:
    """packer/<name> parsed and cleaned."""
    with open(PACKER / name) as f:
        return clean(hcl2.load(f))
