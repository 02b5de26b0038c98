"""Guards the benchmark's claim: the rescan launches one scan instance per unique AMI in use."""

from __future__ import annotations

import pytest

from benchmarks.rescan import measure


@pytest.mark.slow
def test_500_running_instances_over_12_amis_cost_exactly_12_scan_launches(monkeypatch):
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    m = measure(instances=500, amis=12, batch=5)
    assert (m.candidates, m.launches, m.left_running) == (12, 12, 0)
    assert m.peak_alive == 5
    # One RunInstances per unique AMI: no per-instance launches, no relaunch of an AMI already scanned.
    assert m.api_calls["RunInstances"] == 12
