"""Keeps benchmarks/distribution.py from rotting: a tiny run must work and compare like with like."""

from __future__ import annotations

import pytest

from benchmarks import distribution as bench


@pytest.mark.slow
def test_tiny_benchmark_distributes_the_same_work_sequentially_and_in_parallel():
    sequential, parallel = bench.run(n_regions=2, n_accounts=3, latency=0.002, workers=4, quiet=True)
    for run in (sequential, parallel):
        assert run.failures == []
        assert run.outcomes == {"shared": 6}
        assert len(run.region_images) == 2
    assert (sequential.workers, parallel.workers) == (1, 4)
    # Both runs start from a reset server, so they must make exactly the same calls.
    assert sequential.calls == parallel.calls
    assert sequential.calls["ec2.CopyImage"] == 1 and sequential.calls["ssm.PutParameter"] == 6
