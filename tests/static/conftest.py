"""Fixtures for the static checks: rigs that rehearse the provisioning scripts (see rig.py)."""

from __future__ import annotations

import pytest

from tests.static.rig import Rig, build_rig, clone


@pytest.fixture
def rig_for(tmp_path):
    """rig_for("apt", systemd=False) -> a fresh, unprovisioned rig of that kind."""
    return lambda pkg, systemd=True: build_rig(tmp_path / "rig", pkg, systemd)


@pytest.fixture(scope="session")
def _provisioned_once(tmp_path_factory):
    cache: dict[str, Rig] = {}

    def get(pkg: str) -> Rig:
        if pkg not in cache:
            rig = build_rig(tmp_path_factory.mktemp(f"provisioned-{pkg}"), pkg)
            result = rig.provision()
            assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
            cache[pkg] = rig
        return cache[pkg]

    return get


@pytest.fixture
def provisioned(_provisioned_once, tmp_path):
    """provisioned("dnf") -> a private copy of a rig after one successful provision.sh run."""
    return lambda pkg: clone(_provisioned_once(pkg), tmp_path / f"copy-{pkg}")
