"""Fixtures for the static checks: rigs that rehearse the provisioning scripts (see rig.py)."""

from __future__ import annotations

import pytest

from tests.static.rig import Rig, build_rig


@pytest.fixture(params=["dnf", "apt"])
def rig(request, tmp_path) -> Rig:
    return build_rig(tmp_path, request.param)


@pytest.fixture
def rig_for(tmp_path):
    """rig_for("apt", systemd=False) -> a rig of that kind (one per test)."""
    return lambda pkg, systemd=True: build_rig(tmp_path, pkg, systemd)
