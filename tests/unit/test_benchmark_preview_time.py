"""The preview benchmark stays runnable: its generated estates are valid estates, and its worker previews
them through tools.preview's code path (a benchmark, not a timed test: nothing here asserts a duration)."""

from __future__ import annotations

import importlib.util
import ipaddress
import json
from pathlib import Path

import pytest

from components.build.factory_config import factory_config
from components.org.org_stack import parse_org_settings
from estate.config import parse_stack_config
from estate.stack_files import cross_file_problems, stack_files, workload_stacks
from estate.validate import sibling_networks
from tools.mockrun import stack_config

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "preview_time.py"
RFC1918 = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def _benchmark():
    spec = importlib.util.spec_from_file_location("preview_time", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parsed(stack: str, project_dir: Path, siblings: dict | None = None):
    text, _ = stack_config(stack, project_dir)
    values = {
        k.removeprefix("bakehouse:"): json.loads(v) if v[:1] in "[{" else v for k, v in text.items() if k.startswith("bakehouse:")
    }
    return parse_stack_config(stack, values, siblings, deploying=False, project_dir=project_dir)


def test_a_generated_estate_passes_each_stacks_config_validation(tmp_path):
    bench = _benchmark()
    envs = bench.generate_project(tmp_path, 3, copy_program=False)

    siblings = sibling_networks(tmp_path)
    for stack in (*envs, "build", "security"):
        _parsed(stack, tmp_path, siblings)
    org = parse_org_settings(_parsed("org", tmp_path))
    assert set(org.account_emails) == {"security", "build", *envs} and org.prod_envs == ("prod",)
    factory = factory_config(_parsed("build", tmp_path, siblings), tmp_path)
    assert set(factory.target_envs) == set(envs) and "prod" not in factory.auto_approve_envs


@pytest.mark.slow  # a 500-env estate: make test-slow and CI
def test_a_500_env_estate_gives_every_env_its_own_account_email_and_non_overlapping_private_cidr(tmp_path):
    bench = _benchmark()
    envs = bench.generate_project(tmp_path, 500, copy_program=False)

    assert len(envs) == len(set(envs)) == 500 and set(workload_stacks(tmp_path)) == set(envs)
    assert cross_file_problems(tmp_path) == []  # one file per env, one account id per env
    networks = sorted(ipaddress.ip_network(n["cidr"]) for n in sibling_networks(tmp_path).values())
    assert len(networks) == 501  # every workload and build
    assert all(any(n.subnet_of(block) for block in RFC1918) and 16 <= n.prefixlen <= 24 for n in networks)
    assert not any(a.overlaps(b) for a, b in zip(networks, networks[1:], strict=False))  # sorted: neighbours suffice
    _parsed(envs[-1], tmp_path, sibling_networks(tmp_path))  # the overlap check against 500 siblings
    org = parse_org_settings(_parsed("org", tmp_path))
    assert set(org.account_emails) == {"security", "build", *envs}


def test_generating_more_envs_than_the_workload_supernet_holds_fails_instead_of_overlapping():
    bench = _benchmark()
    assert len(bench.workload_cidrs(1024)) == 1024
    try:
        bench.workload_cidrs(1025)
    except StopIteration:
        return
    raise AssertionError("1,025 /20s cannot fit in 10.64.0.0/10 without overlapping")


@pytest.mark.slow  # a fresh process: the provider SDK's imports, then two stacks (about 4 s of CPU)
def test_the_worker_previews_org_and_a_workload_of_a_generated_estate_parsing_each_stack_file_once(tmp_path):
    bench = _benchmark()
    bench.generate_project(tmp_path, 2)

    run = bench.run_worker(tmp_path, "freeze", only=["org", "w001"], timeout=120)

    assert [(r["stack"], r["status"]) for r in run["stacks"]] == [("org", "pass"), ("w001", "pass")]
    assert run["stacks"][1]["resources"] > 0 and run["gc_collections"][0] > 0
    assert run["files"] == len(stack_files(tmp_path)) == 5
    # two stacks, one parse per stack file, and one of Pulumi.yaml (cached the same way)
    assert run["stack_file_parses"] == run["files"] + 1


@pytest.mark.slow  # two fresh processes, one stack each (about 6 s of CPU)
def test_the_freeze_variant_is_what_make_preview_does_thresholds_included_and_the_baseline_is_pythons_collector(tmp_path):
    from tools.preview import GC_THRESHOLDS

    bench = _benchmark()
    bench.generate_project(tmp_path, 2)

    frozen = bench.run_worker(tmp_path, "freeze", only=["w001"], timeout=120)
    baseline = bench.run_worker(tmp_path, "baseline", only=["w001"], timeout=120)

    assert tuple(frozen["gc_threshold"]) == GC_THRESHOLDS and frozen["gc_frozen"] > 0
    assert tuple(baseline["gc_threshold"]) == (700, 10, 10) and baseline["gc_frozen"] == 0  # CPython's defaults
    # `make preview` without --details keeps each stack's verdict, not its run (the declared resources)
    assert frozen["runs_kept"] == baseline["runs_kept"] == 0
    assert 0 < frozen["stacks"][0]["peak_rss_mb"] <= frozen["peak_rss_mb"]  # memory after each stack, to see where it grows


def test_a_one_env_estate_is_one_non_prod_env_so_the_build_stack_has_a_canary_env(tmp_path):
    bench = _benchmark()
    envs = bench.generate_project(tmp_path, 1, copy_program=False)

    assert envs == ["w001"]
    siblings = sibling_networks(tmp_path)
    org = parse_org_settings(_parsed("org", tmp_path))
    assert set(org.account_emails) == {"security", "build", "w001"} and org.prod_envs == ()
    factory = factory_config(_parsed("build", tmp_path, siblings), tmp_path)
    assert factory.target_envs == ("w001",) and factory.canary_env == "w001"
