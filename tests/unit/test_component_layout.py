"""components/ by account (issue 14.1): every component's type token is bakehouse:<account>:<Type>, with
<account> the folder it lives in (lib for the blocks every account uses), and the registry maps each role
to a root typed bakehouse:<role>:Stack."""

from __future__ import annotations

import re
from pathlib import Path

from components.roots import ROOTS

COMPONENTS = Path(__file__).resolve().parents[2] / "components"
ACCOUNTS = {"org", "security", "build", "workload", "lib"}
TOKEN = re.compile(r'super\(\).__init__\(\s*"bakehouse:([a-z]+):([A-Za-z]+)"')
# Declared beside the security stack's trail (one file owns the trail's names) but deployed by the org stack
# into the management account, so its token names the account it runs in.
RUNS_ELSEWHERE = {"OrgTrailLogs": "org"}


def _tokens() -> list[tuple[str, str, str]]:
    return [
        (path.parent.name, account, name)
        for path in sorted(COMPONENTS.glob("*/*.py"))
        for account, name in TOKEN.findall(path.read_text())
    ]


def test_components_live_only_in_account_folders():
    assert {p.name for p in COMPONENTS.iterdir() if p.is_dir() and p.name != "__pycache__"} == ACCOUNTS
    assert sorted(p.name for p in COMPONENTS.glob("*.py")) == ["__init__.py", "roots.py"]


def test_every_type_token_names_the_account_folder():
    tokens = _tokens()
    assert len(tokens) > 30
    wrong = [
        (folder, f"bakehouse:{account}:{name}") for folder, account, name in tokens if account != RUNS_ELSEWHERE.get(name, folder)
    ]
    assert wrong == []


def test_type_names_are_unique():
    names = [name for _, _, name in _tokens() if name != "Stack"]
    assert len(names) == len(set(names))


def test_the_registry_maps_each_role_to_its_root_stack():
    roots = {(folder, account) for folder, account, name in _tokens() if name == "Stack"}
    assert roots == {(role, role) for role in ROOTS} == {(r, r) for r in ("org", "security", "build", "workload")}
    for role, root in ROOTS.items():
        assert root.__module__ == f"components.{role}.{role}_stack"
