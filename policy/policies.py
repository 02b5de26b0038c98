"""Every policy of the pack, gathered from the per-area modules (importable without the engine)."""

from __future__ import annotations

from pulumi_policy import Policy

from . import audit, compute, identity, network, stack, storage

POLICIES: list[Policy] = [
    *storage.POLICIES,
    *network.POLICIES,
    *compute.POLICIES,
    *identity.POLICIES,
    *audit.POLICIES,
    *stack.POLICIES,
]

_names = [p.name for p in POLICIES]
if len(set(_names)) != len(_names):
    raise RuntimeError(f"policy names repeat: {sorted({n for n in _names if _names.count(n) > 1})}")
