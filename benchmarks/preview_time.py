"""Benchmark: how long the offline preview takes, for the six stacks and for a generated larger estate.

Runs every stack's real program under the mock runtime (as `make preview` does, without printing) and
prints seconds per stack. Then generates workload stacks from dev's file for 10, 25 and 50 accounts
(plus the org stack, which declares one account each) to show that time grows linearly with accounts.
Target: the six stacks together under 10 s. A benchmark, not a timed test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.mockrun import STACKS, run_stack  # noqa: E402

import yaml  # noqa: E402

PROJECT_DIR = Path(__file__).resolve().parent.parent


def generated_estate(workloads: int) -> tuple[dict, dict, dict[str, dict]]:
    """Project accounts with `workloads` extra envs, the org section naming them, and per-stack
    overrides built from dev's file."""
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]
    accounts = dict(project["bakehouse:accounts"]["value"])
    dev_file = yaml.safe_load((PROJECT_DIR / "Pulumi.dev.yaml").read_text())["config"]
    stacks = {}
    for i in range(workloads):
        env = f"w{i:03d}"
        accounts[env] = f"7{i:011d}"
        # 10.64.0.0/16 upwards stays clear of the committed stacks' ranges (10.0-10.63).
        network = {**dev_file["bakehouse:network"], "cidr": f"10.{64 + i}.0.0/16"}
        stacks[env] = {**dev_file, "bakehouse:env": env, "bakehouse:network": network}
    org = yaml.safe_load((PROJECT_DIR / "Pulumi.org.yaml").read_text())["config"]["bakehouse:org"]
    emails = {**org["accountEmails"], **{env: f"aws+{env}@example.com" for env in stacks}}
    return accounts, {**org, "accountEmails": emails}, stacks


def time_generated(workloads: int) -> dict[str, float]:
    accounts, org, stacks = generated_estate(workloads)
    seconds = {}
    org_overrides = {"bakehouse:accounts": accounts, "bakehouse:org": org}
    seconds["org"] = run_stack("org", overrides=org_overrides).seconds
    for env, overrides in stacks.items():
        seconds[env] = run_stack(env, overrides={**overrides, "bakehouse:accounts": accounts}).seconds
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 25, 50])
    args = parser.parse_args(argv)

    run_stack("dev")  # warm imports so the first stack does not carry them
    print("The six stacks (seconds, mock runtime, real programs):")
    total = 0.0
    for stack in STACKS:
        started = time.perf_counter()
        run = run_stack(stack)
        elapsed = time.perf_counter() - started
        total += elapsed
        print(f"  {stack:<9} {elapsed:6.2f} s  {sum(1 for r in run.resources if r.custom):4d} resources")
    print(f"  {'all six':<9} {total:6.2f} s  (target < 10 s: {'met' if total < 10 else 'MISSED'})")

    print("\nGenerated estates (workload stacks from dev's file, org declaring every account):")
    print(f"  {'workloads':>9} {'total s':>8} {'org s':>7} {'mean s/workload':>16}")
    rows = []
    for size in args.sizes:
        seconds = time_generated(size)
        workload_times = [v for k, v in seconds.items() if k != "org"]
        total = sum(seconds.values())
        rows.append((size, total))
        print(f"  {size:>9} {total:8.2f} {seconds['org']:7.2f} {statistics.mean(workload_times):16.3f}")
    if len(rows) >= 2:
        (n0, t0), (n1, t1) = rows[0], rows[-1]
        print(f"\n  growth: x{n1 / n0:.1f} accounts -> x{t1 / t0:.2f} time (linear would be ~x{n1 / n0:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
