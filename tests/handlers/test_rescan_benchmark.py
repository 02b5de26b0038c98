"""Guards the benchmark's claims: the rescan launches scan instances only for published AMIs that
nothing runs where Inspector covers it; everything running is judged in place."""

from __future__ import annotations

import pytest

from benchmarks.rescan import measure


@pytest.mark.slow
def test_500_covered_instances_over_12_amis_plus_4_idle_amis_cost_4_scan_launches_not_16(monkeypatch):
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    m = measure(instances=500, amis=12, batch=3, idle=4)
    assert (m.candidates, m.judged_in_place, m.launches, m.left_running) == (16, 12, 4, 0)
    assert m.baseline_launches == 16 and m.scan_hours == 2.0 and m.baseline_scan_hours == 8.0
    assert m.peak_alive == 3
    assert m.api_calls["RunInstances"] == 4


@pytest.mark.slow
def test_images_running_only_where_inspector_does_not_cover_them_still_get_a_scan_instance(monkeypatch):
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    m = measure(instances=60, amis=6, batch=10, idle=1, uncovered=2)
    assert (m.judged_in_place, m.launches, m.left_running) == (4, 3, 0)
