"""Bakehouse CrossGuard policy pack. `policy.policies.POLICIES` is importable without the engine."""
