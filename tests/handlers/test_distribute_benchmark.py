"""Keeps benchmarks/distribution.py from rotting: a tiny run must work and model each design's calls.

No timing is asserted (the machine is shared); the figures are the benchmark's to print."""

from __future__ import annotations

from benchmarks import distribution as bench


def test_tiny_benchmark_runs_each_design_to_completion_with_the_calls_it_models():
    runs = bench.run(n_regions=2, n_accounts=3, scale=20_000, latency=0.06, quiet=True)
    shipped, sequential, replaced = runs["shipped"], runs["sequential"], runs["replaced"]
    for run in runs.values():
        assert run.failures == []
        assert run.calls[("build", "CopyImage")] == 1
        assert run.calls[("build", "sts.AssumeRole")] == 3
        assert sum(n for (who, a), n in run.calls.items() if a == "ssm.PutParameter") == 6
        # the copy (5-30 modelled minutes) is waited for, not skipped
        assert run.modelled_seconds >= 60 * bench.COPY_MINUTES[0]
    assert (shipped.workers, sequential.workers) == (8, 1)
    # the shipped design shares once per region; the replaced one once per account per region
    assert shipped.calls[("build", "ModifyImageAttribute")] == 2
    assert shipped.calls[("build", "ModifySnapshotAttribute")] == 0
    assert replaced.calls[("build", "ModifyImageAttribute")] == 6
    assert replaced.calls[("build", "ModifySnapshotAttribute")] == 6


def test_an_empty_token_bucket_makes_the_caller_wait_for_the_refill():
    model = bench.Model(scale=1.0, latency=0.0, copy_seconds={})
    for _ in range(100):  # ModifyImageAttribute: 100 tokens, 5 a second
        model.call("build", "eu-west-1", "ModifyImageAttribute")
    assert model.throttled == 0
    model.call("build", "eu-west-1", "ModifyImageAttribute")
    assert 0.1 <= model.throttled <= 0.2 + 1e-9
    model.call("other", "eu-west-1", "ModifyImageAttribute")  # another account's bucket is full
    assert model.throttled <= 0.2 + 1e-9
