"""Benchmark: the offline preview (`make preview`'s code path) of generated estates of N workload envs.

For each size it writes a real project into a temporary directory: a copy of the program (the modules
find their files through `Path(__file__).resolve()`, so symlinks would read this checkout's stack
files instead), a `Pulumi.yaml` naming an account for every env, one `Pulumi.<env>.yaml` per env made
from dev's file with its own /20 out of 10.64.0.0/10, and org, security and build files that name every
env. Then it previews org, security, build and every workload stack in one fresh process, the way
`make preview` does (`tools.preview.evaluate`: the real program under the mocks, then the policy pack;
each verdict kept, each run's record dropped as without --details), and reports seconds per stack, the
total, CPU seconds spent in garbage collection and peak RSS.

Each size runs twice, as a pair, each in its own process (so a freeze cannot leak into the other):
`baseline` (the collector as Python sets it: thresholds 700/10/10, nothing frozen) and `freeze` (exactly
`tools.preview.freeze_imports`, as `make preview` calls it: the provider SDK imported, `gc.collect();
gc.freeze()`, then `gc.set_threshold(*GC_THRESHOLDS)`), the order alternating between sizes. Each run
records the thresholds and frozen-object count its stacks ran under. A benchmark, not a timed test; the
figures depend on the machine and on what else runs on it.

    python -m benchmarks.preview_time                  # sizes 1 10 50 200
    python -m benchmarks.preview_time --sizes 500      # measured; otherwise extrapolated, labelled ESTIMATE
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
PROGRAM = ("__main__.py", "components", "estate", "handlers", "automation", "catalog", "packer", "policy", "tools")
# 10.0.0.0/20 is build's; the workloads take /20s from 10.64.0.0/10: 1,024 of them, none overlapping.
WORKLOAD_SUPERNET = ipaddress.ip_network("10.64.0.0/10")
WORKLOAD_PREFIX = 20
VARIANTS = ("baseline", "freeze")
DEFAULT_SIZES = (1, 10, 50, 200)
ESTIMATE_SIZE = 500
CORE = ("org", "security", "build")


def env_names(count: int) -> list[str]:
    """`prod` (the org's prodEnvs, so one env is behind approval) and w001, w002, ...; one env alone is
    w001, since the build stack needs a non-prod env for its canary."""
    if count == 1:
        return ["w001"]
    return ["prod", *(f"w{i:03d}" for i in range(1, count))]


def workload_cidrs(count: int) -> list[str]:
    subnets = WORKLOAD_SUPERNET.subnets(new_prefix=WORKLOAD_PREFIX)
    cidrs = [str(next(subnets)) for _ in range(count)]  # StopIteration past 1,024: no silent overlap
    return cidrs


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / name).read_text())


def _write(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def generate_project(root: Path, count: int, copy_program: bool = True) -> list[str]:
    """Write a project of `count` workload envs into `root`; returns the workload env names."""
    root.mkdir(parents=True, exist_ok=True)
    if copy_program:
        for name in PROGRAM:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, root / name)
    envs = env_names(count)

    project = _load("Pulumi.yaml")
    core_accounts = {k: v for k, v in project["config"]["bakehouse:accounts"]["value"].items() if k in ("management", *CORE[1:])}
    project["config"]["bakehouse:accounts"]["value"] = {
        **core_accounts,
        **{env: f"7{i:011d}" for i, env in enumerate(envs, start=1)},
    }
    _write(root / "Pulumi.yaml", project)

    org = _load("Pulumi.org.yaml")
    section = org["config"]["bakehouse:org"]
    section["accountEmails"] = {
        **{k: v for k, v in section["accountEmails"].items() if k in CORE[1:]},
        **{env: f"aws+{env}@example.com" for env in envs},
    }
    section["prodEnvs"] = [env for env in envs if env == "prod"]
    _write(root / "Pulumi.org.yaml", org)

    shutil.copy2(REPO / "Pulumi.security.yaml", root / "Pulumi.security.yaml")

    build = _load("Pulumi.build.yaml")
    factory = build["config"]["bakehouse:factory"]
    factory.pop("targetEnvs", None)  # default: every workload env receives the images
    factory["autoApproveEnvs"] = [env for env in envs if env != "prod"][:1]
    factory["canaryEnv"] = factory["autoApproveEnvs"][0]  # the dev canary runs in a target env that exists
    _write(root / "Pulumi.build.yaml", build)

    dev = _load("Pulumi.dev.yaml")
    for env, cidr in zip(envs, workload_cidrs(count), strict=True):
        config = dict(dev["config"])
        config["bakehouse:env"] = env
        config["bakehouse:network"] = {**config["bakehouse:network"], "cidr": cidr}
        _write(root / f"Pulumi.{env}.yaml", {"config": config})
    return envs


# ---------------------------------------------------------------------------------------------- worker


def worker(project_dir: Path, variant: str, only: list[str] | None) -> dict[str, Any]:
    """One process, one variant: import, maybe freeze, then preview every stack as tools.preview does."""
    started, cpu_started = time.perf_counter(), time.process_time()
    gc_state = {"cpu": 0.0, "since": 0.0, "collections": [0, 0, 0]}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_state["since"] = time.process_time()
        else:
            gc_state["cpu"] += time.process_time() - gc_state["since"]
            gc_state["collections"][info["generation"]] += 1

    gc.callbacks.append(on_gc)
    parses = {"calls": 0, "seconds": 0.0}
    real_safe_load = yaml.safe_load

    def counting_safe_load(stream: Any) -> Any:
        t = time.perf_counter()
        try:
            return real_safe_load(stream)
        finally:
            parses["calls"] += 1
            parses["seconds"] += time.perf_counter() - t

    yaml.safe_load = counting_safe_load

    # The copy's modules, not this checkout's (they read the stack files beside them): run_worker puts the
    # copy on this process's PYTHONPATH.
    import pulumi_aws  # noqa: F401

    from estate import stack_files as stack_files_module
    from tools import mockrun
    from tools.preview import evaluate, freeze_imports

    assert Path(mockrun.__file__).resolve().is_relative_to(project_dir.resolve()), mockrun.__file__
    imports = time.perf_counter() - started
    if variant == "freeze":
        freeze_imports()
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()  # what the stacks then ran under
    parses_at_start = parses["calls"]

    stacks = stack_files_module.stacks_in_deploy_order(project_dir)
    files = len(stacks)
    roles = {s: c.get("bakehouse:role") for s, c in stack_files_module.stack_files(project_dir).items()}
    results, rows = [], []
    for stack in only or stacks:
        gc_before, t, cpu = gc_state["cpu"], time.perf_counter(), time.process_time()
        result = evaluate(stack)
        rows.append(
            {
                "stack": stack,
                "role": roles.get(stack),
                "status": result.status,
                "program_s": result.seconds,
                "preview_s": time.perf_counter() - t,
                "cpu_s": time.process_time() - cpu,
                "gc_cpu_s": gc_state["cpu"] - gc_before,
                "resources": result.resources,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # so far: where it grows
                "problems": result.problems[:3] + result.mandatory[:3],
            }
        )
        result.run = None  # as `make preview` without --details: the verdict stays, the run's record goes
        results.append(result)

    return {
        "variant": variant,
        "stacks": rows,
        "files": files,
        "imports_s": imports,
        "total_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu_started,
        "gc_cpu_s": gc_state["cpu"],
        "gc_collections": gc_state["collections"],
        "gc_threshold": threshold,
        "gc_frozen": frozen,
        "runs_kept": sum(1 for r in results if r.run is not None),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "stack_file_parses": len(stack_files_module._CACHE),
        "yaml_parses": parses["calls"] - parses_at_start,
        "yaml_s": parses["seconds"],
    }


def run_worker(
    project_dir: Path,
    variant: str,
    only: list[str] | None = None,
    timeout: float = 3600,
) -> dict[str, Any]:
    out = project_dir / f"result-{variant}.json"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        str(project_dir),
        "--variant",
        variant,
        "--out",
        str(out),
        *(["--only", *only] if only else []),
    ]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(project_dir)}
    subprocess.run(command, check=True, timeout=timeout, cwd=project_dir, env=env)
    return json.loads(out.read_text())


# ---------------------------------------------------------------------------------------------- report


def summarise(run: dict[str, Any]) -> dict[str, Any]:
    by_role: dict[str, list[dict]] = {}
    for row in run["stacks"]:
        by_role.setdefault(row["role"] if row["role"] in CORE else "workload", []).append(row)
    workloads = [r["preview_s"] for r in by_role.get("workload", [])]
    workload_cpu = [r["cpu_s"] for r in by_role.get("workload", [])]
    failed = [f"{r['stack']}: {r['status']} {'; '.join(r['problems'])[:300]}" for r in run["stacks"] if r["status"] != "pass"]
    return {
        **{role: by_role[role][0]["preview_s"] for role in CORE if role in by_role},
        "workload_median": statistics.median(workloads) if workloads else float("nan"),
        "workload_max": max(workloads) if workloads else float("nan"),
        "workload_cpu_median": statistics.median(workload_cpu) if workload_cpu else float("nan"),
        "stacks_s": sum(r["preview_s"] for r in run["stacks"]),
        "failed": failed,
    }


def _gc_setting(run: dict[str, Any]) -> str:
    threshold = run.get("gc_threshold")  # absent from runs saved before it was recorded
    return f"{'/'.join(map(str, threshold))},{run['gc_frozen']}" if threshold else "-"


def print_size(size: int, runs: dict[str, dict[str, Any]]) -> None:
    base, frozen = runs["baseline"], runs["freeze"]
    sb, sf = summarise(base), summarise(frozen)
    print(f"\n{size} workload envs ({base['files']} stack files), each figure beside its baseline from the same run:")
    print(f"  {'':<28} {'baseline':>10} {'freeze':>10} {'freeze/base':>12}")

    def line(label: str, b: float, f: float, fmt: str = "{:10.2f}") -> None:
        ratio = f / b if b else float("nan")
        print(f"  {label:<28} {fmt.format(b)} {fmt.format(f)} {ratio:12.2f}")

    line("imports (s)", base["imports_s"], frozen["imports_s"])
    for role in CORE:
        line(f"{role} stack (s)", sb.get(role, float("nan")), sf.get(role, float("nan")))
    line("workload stack, median (s)", sb["workload_median"], sf["workload_median"], "{:10.3f}")
    line("workload stack, slowest (s)", sb["workload_max"], sf["workload_max"], "{:10.3f}")
    line("workload stack, median CPU s", sb["workload_cpu_median"], sf["workload_cpu_median"], "{:10.3f}")
    line("total, process (s)", base["total_s"], frozen["total_s"])
    line("CPU (s)", base["cpu_s"], frozen["cpu_s"])
    line("GC CPU (s)", base["gc_cpu_s"], frozen["gc_cpu_s"])
    line("GC share of CPU", base["gc_cpu_s"] / base["cpu_s"], frozen["gc_cpu_s"] / frozen["cpu_s"])
    line("peak RSS (MB)", base["peak_rss_mb"], frozen["peak_rss_mb"], "{:10.0f}")
    print(f"  {'GC thresholds, frozen':<28} {_gc_setting(base):>10} {_gc_setting(frozen):>10}")
    print(
        f"  {'gen0/1/2 collections':<28} {'/'.join(map(str, base['gc_collections'])):>10} "
        f"{'/'.join(map(str, frozen['gc_collections'])):>10}"
    )
    print(
        f"  stack files parsed: {base['stack_file_parses']} for {base['files']} files and "
        f"{len(base['stacks'])} stacks (estate/stack_files.py cache); all YAML parses in the run: "
        f"{base['yaml_parses']} ({base['yaml_s']:.2f} s)"
    )
    for failure in sorted(set(sb["failed"] + sf["failed"]))[:10]:
        print(f"  NOT PASSING {failure}")


def estimate(results: dict[int, dict[str, dict]], size: int) -> None:
    """A line through the two largest measured sizes, per quantity: every stack past them is assumed to cost
    what the last ones did (a floor: parsing Pulumi.yaml and the overlap check grow with the estate)."""
    sizes = sorted(results)[-2:]
    if len(sizes) < 2:
        print(f"\n{size} workload envs: not run, and too few sizes measured to extrapolate.")
        return
    (n0, n1) = sizes

    def line(pick) -> float:
        y0, y1 = pick(results[n0]), pick(results[n1])
        return y1 + (y1 - y0) / (n1 - n0) * (size - n1)

    print(
        f"\nESTIMATE for {size} workload envs (not measured: a line through sizes {n0} and {n1}; run --sizes {size} to measure):"
    )
    for variant in VARIANTS:
        total, cpu, gc_cpu, rss = (
            line(lambda r, v=variant, k=key: r[v][k]) for key in ("total_s", "cpu_s", "gc_cpu_s", "peak_rss_mb")
        )
        print(f"  {variant:<9} ~{total:5.0f} s total, ~{cpu:5.0f} s CPU, ~{gc_cpu:5.0f} s GC CPU, peak RSS ~{rss:4.0f} MB")


def markdown(results: dict[int, dict[str, dict]]) -> str:
    lines = [
        "| workload envs | stacks | workload stack, median s (CPU s) | org / security / build s | total s "
        "| CPU s | peak RSS MB | GC CPU s (share) | with freeze: total s | CPU s | GC CPU s (share) "
        "| freeze/baseline: total | CPU |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, runs in sorted(results.items()):
        b, f = runs["baseline"], runs["freeze"]
        sb = summarise(b)
        lines.append(
            f"| {size} | {len(b['stacks'])} | {sb['workload_median']:.2f} ({sb['workload_cpu_median']:.2f}) | "
            f"{sb['org']:.2f} / {sb['security']:.2f} / {sb['build']:.2f} | {b['total_s']:.1f} | {b['cpu_s']:.1f} | "
            f"{b['peak_rss_mb']:.0f} | {b['gc_cpu_s']:.1f} ({b['gc_cpu_s'] / b['cpu_s']:.0%}) | "
            f"{f['total_s']:.1f} | {f['cpu_s']:.1f} | {f['gc_cpu_s']:.1f} ({f['gc_cpu_s'] / f['cpu_s']:.0%}) | "
            f"{f['total_s'] / b['total_s']:.2f} | {f['cpu_s'] / b['cpu_s']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    parser.add_argument("--report", type=Path, help="print the tables of a saved --json file, run nothing")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.report:  # re-print a saved run (--json) without running it again
        results = {int(k): v for k, v in json.loads(args.report.read_text()).items()}
        for size, runs in sorted(results.items()):
            print_size(size, runs)
        if ESTIMATE_SIZE not in results:
            estimate(results, ESTIMATE_SIZE)
        print("\n" + markdown(results))
        return 0
    if args.worker:
        args.out.write_text(json.dumps(worker(args.worker, args.variant, args.only)))
        return 0

    print(
        f"preview benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.2f} at start"
    )
    results: dict[int, dict[str, dict]] = {}
    for index, size in enumerate(args.sizes):
        with tempfile.TemporaryDirectory(prefix=f"bakehouse-bench-{size}-") as tmp:
            generate_project(Path(tmp), size)
            order = VARIANTS if index % 2 == 0 else VARIANTS[::-1]
            results[size] = {variant: run_worker(Path(tmp), variant) for variant in order}
        print_size(size, results[size])
        sys.stdout.flush()
    if ESTIMATE_SIZE not in results:
        estimate(results, ESTIMATE_SIZE)
    print("\n" + markdown(results))
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
