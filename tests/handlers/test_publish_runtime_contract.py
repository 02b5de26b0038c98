"""The factory handlers run inside SSM aws:executeScript (python3.11, stdlib + boto3 only) and Lambda:
they may import the standard library, boto3/botocore and other modules of the handlers package (the
documents attach the whole package as handlers.zip, components/build/image_factory.handler_sources) -
nothing else - and must build no AWS client or session at import time."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

HANDLERS = Path(__file__).resolve().parents[2] / "handlers"
MINE = ("publish", "distribute", "catalog", "inspector_summary")
ALLOWED_THIRD_PARTY = {"boto3", "botocore"}


def _imports(module: str) -> set[str]:
    tree = ast.parse((HANDLERS / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _shipped(name: str) -> bool:
    """A module of the handlers package, which ships whole in handlers.zip."""
    return name.startswith("handlers.") and (HANDLERS / f"{name.split('.', 1)[1]}.py").is_file()


@pytest.mark.parametrize("module", MINE)
def test_handler_imports_only_stdlib_boto3_and_the_handlers_package(module):
    bad = {
        name
        for name in _imports(module)
        if name.split(".")[0] not in sys.stdlib_module_names | ALLOWED_THIRD_PARTY | {"__future__"} and not _shipped(name)
    }
    assert bad == set()


def test_a_module_outside_the_handlers_package_is_not_shipped():
    assert not _shipped("handlers.no_such_module") and not _shipped("estate.naming") and _shipped("handlers.common")


@pytest.mark.parametrize("module", MINE)
def test_importing_a_handler_creates_no_aws_client(module, monkeypatch):
    import boto3

    def refuse(*args, **kwargs):
        raise AssertionError(f"handlers.{module} built an AWS client or session at import time")

    monkeypatch.setattr(boto3, "client", refuse)
    monkeypatch.setattr(boto3, "Session", refuse)
    # A fresh import, undone afterwards in both places Python keeps it: sys.modules and the package's
    # attribute (which `from handlers import x` reads), so later tests see the module they imported.
    monkeypatch.delitem(sys.modules, f"handlers.{module}", raising=False)
    monkeypatch.delattr(importlib.import_module("handlers"), module, raising=False)
    loaded = importlib.import_module(f"handlers.{module}")
    assert callable(loaded.handler)
