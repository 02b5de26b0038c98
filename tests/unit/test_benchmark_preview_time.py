"""The preview-time benchmark's generated estate stays a valid estate (a benchmark, not a timed test)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "preview_time.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("preview_time", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_workload_accounts_run_their_real_programs_and_the_org_declares_each():
    bench = _benchmark()
    seconds = bench.time_generated(2)
    assert set(seconds) == {"org", "w000", "w001"}
    accounts, org, stacks = bench.generated_estate(2)
    assert accounts["w001"] == "700000000001" and org["accountEmails"]["w001"] == "aws+w001@example.com"
    assert stacks["w001"]["bakehouse:network"]["cidr"] == "10.65.0.0/16"
