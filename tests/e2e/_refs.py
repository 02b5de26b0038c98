"""`{{ }}` references and output selectors as SSM Automation evaluates them (the subset we use).

Kept apart from the runner so the document schema checks (tests/documents) use the very same
reference grammar the runner resolves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

REF = re.compile(r"\{\{\s*([A-Za-z0-9_:.\-]+)\s*\}\}")
WHOLE_REF = re.compile(r"^\s*\{\{\s*([A-Za-z0-9_:.\-]+)\s*\}\}\s*$")
# Variables SSM Automation provides itself (https://docs.aws.amazon.com/systems-manager/latest/userguide/automation-variables.html)
SYSTEM_VARIABLES = (
    "global:ACCOUNT_ID",
    "global:AWS_PARTITION",
    "global:DATE",
    "global:DATE_TIME",
    "global:REGION",
    "global:AWS_URL_SUFFIX",
    "automation:EXECUTION_ID",
    "automation:DOCUMENT_NAME",
)


class UnresolvedReference(KeyError):
    def __init__(self, ref: str, where: str):
        self.ref = ref
        super().__init__(f"{{{{ {ref} }}}} in {where} names no parameter, earlier step output or automation variable")


def references(value: Any) -> list[str]:
    """Every reference inside a (nested) value, in order."""
    found: list[str] = []
    if isinstance(value, str):
        found.extend(m.group(1) for m in REF.finditer(value))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            found.extend(references(k))
            found.extend(references(v))
    elif isinstance(value, list | tuple):
        for item in value:
            found.extend(references(item))
    return found


def resolve(value: Any, lookup: Callable[[str], Any]) -> Any:
    """Substitute references; a string that is exactly one reference takes the referenced value's type."""
    if isinstance(value, str):
        whole = WHOLE_REF.match(value)
        if whole:
            return lookup(whole.group(1))
        return REF.sub(lambda m: _as_text(lookup(m.group(1))), value)
    if isinstance(value, Mapping):
        return {resolve(k, lookup): resolve(v, lookup) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(item, lookup) for item in value]
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, default=str)


_TOKEN = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+|\*)\]|\['([^']+)'\]")


def select(document: Any, selector: str) -> Any:
    """The JSONPath subset SSM selectors use: `$.A.B[0].C`, `$.A[*].B`, `$.A['k.with.dots']`."""
    if not selector.startswith("$"):
        raise ValueError(f"selector {selector!r} must start with $")
    nodes, multi, pos = [document], False, 1
    while pos < len(selector):
        m = _TOKEN.match(selector, pos)
        if not m:
            raise ValueError(f"selector {selector!r}: cannot read from position {pos}")
        pos = m.end()
        key, index, quoted = m.group(1), m.group(2), m.group(3)
        nxt: list[Any] = []
        for node in nodes:
            if index == "*":
                multi = True
                nxt.extend(node if isinstance(node, list) else [])
            elif index is not None:
                if isinstance(node, list) and int(index) < len(node):
                    nxt.append(node[int(index)])
            elif isinstance(node, Mapping) and (key or quoted) in node:
                nxt.append(node[key or quoted])
        nodes = nxt
    if multi:
        return nodes
    if not nodes:
        raise LookupError(f"selector {selector!r} matched nothing")
    return nodes[0]


def coerce(value: Any, kind: str, name: str) -> Any:
    """Give a value the SSM type declared for it (parameters and step outputs)."""
    if kind == "String":
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
            return value[0]
        if isinstance(value, bool | int | float):
            return _as_text(value)
        if not isinstance(value, str):
            raise TypeError(f"{name} is {value!r}, declared String")
        return value
    if kind == "StringList":
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"{name} is {value!r}, declared StringList")
        return list(value)
    if kind == "Integer":
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
            return int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} is {value!r}, declared Integer")
        return value
    if kind == "Boolean":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise TypeError(f"{name} is {value!r}, declared Boolean")
        return value
    if kind == "StringMap":
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, Mapping):
            raise TypeError(f"{name} is {value!r}, declared StringMap")
        return dict(value)
    if kind == "MapList":
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise TypeError(f"{name} is {value!r}, declared MapList")
        return list(value)
    raise TypeError(f"{name} has unknown type {kind!r}")
