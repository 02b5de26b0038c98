"""CI at scale: the matrices the workflows build from tools/ci_plan.py stay within GitHub's limits at 500
workload envs, every stack is previewed and deployed exactly once, the deploy order and prod's approval
hold, and a three-env estate still runs one stack per job.

GitHub's figures (docs.github.com, "Actions limits" and "Passing information between jobs"): a matrix
generates at most 256 jobs per workflow run; a job's outputs total at most 1 MB, sized as UTF-16.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from functools import reduce
from pathlib import Path
from typing import Any

import pytest
import yaml

from estate.naming import PRODUCTION_ENVIRONMENT
from tests import scale_estate
from tools.ci_plan import MAX_JOBS, output_line, plan

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
GITHUB_MATRIX_LIMIT = 256
GITHUB_JOB_OUTPUT_BYTES = 1024 * 1024
FROM_PLAN = re.compile(r"^\$\{\{ fromJSON\(needs\.plan\.outputs\.plan\)\.([\w.]+) \}\}$")
FROM_INPUT = re.compile(r"^\$\{\{ fromJSON\(inputs\.([\w-]+)\) \}\}$")
TO_JSON_OF_MATRIX = re.compile(r"^\$\{\{ toJSON\(matrix\.([\w.]+)\) \}\}$")


def _benchmark():
    spec = importlib.util.spec_from_file_location("preview_time", ROOT / "benchmarks" / "preview_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def estate_of_500(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("estate-500")
    envs = _benchmark().generate_project(root, 500, copy_program=False)
    return root, envs


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _dig(value: Any, path: str) -> Any:
    return reduce(lambda v, key: v[key], path.split("."), value)


def matrices(planned: dict[str, Any]) -> dict[str, list[Any]]:
    """Every matrix preview.yml expands from the plan, and each matrix a called workflow expands from an
    input the caller's matrix entry hands it (one per entry): job label -> the matrix's rows."""
    found: dict[str, list[Any]] = {}
    for job_name, job in _load("preview.yml")["jobs"].items():
        for key, expression in job.get("strategy", {}).get("matrix", {}).items():
            match = FROM_PLAN.match(expression)
            assert match, f"{job_name}: matrix.{key} is not read from the plan: {expression}"
            rows = _dig(planned, match.group(1))
            found[f"{job_name}.{key}"] = rows
            if "uses" not in job:
                continue
            called = _load(Path(job["uses"]).name)
            for inner_name, inner in called["jobs"].items():
                for inner_key, inner_expression in inner.get("strategy", {}).get("matrix", {}).items():
                    given = job["with"][FROM_INPUT.match(inner_expression).group(1)]
                    path = TO_JSON_OF_MATRIX.match(given).group(1)
                    assert path.split(".")[0] == key, given
                    for index, row in enumerate(rows):
                        found[f"{job_name}[{index}]/{inner_name}.{inner_key}"] = _dig({key: row}, path)
    return found


def previewed(planned: dict[str, Any]) -> list[str]:
    return [s for batch in planned["preview_batches"] for s in batch["stacks"].split()]


def deploy_batches(planned: dict[str, Any]) -> list[dict[str, str]]:
    return [batch for wave in planned["deploy_waves"] for batch in wave["batches"]]


def test_a_three_env_estate_still_previews_and_deploys_one_stack_per_job():
    planned = plan()
    assert [b["stacks"] for b in planned["preview_batches"]] == ["org", "security", "build", "dev", "uat", "prod"]
    assert [[b["stacks"] for b in wave["batches"]] for wave in planned["deploy_waves"]] == [["dev", "uat", "prod"]]
    sizes = {label: len(rows) for label, rows in matrices(planned).items()}
    assert sizes == {"preview.batch": 6, "up-workloads.wave": 1, "up-workloads[0]/up.include": 3}


@pytest.mark.slow  # a 500-env estate (1.5 s of CPU); runs in make test-slow and CI
def test_at_500_envs_no_matrix_the_workflows_build_exceeds_githubs_256_jobs(estate_of_500):
    root, _ = estate_of_500
    sizes = {label: len(rows) for label, rows in matrices(plan(root)).items()}
    assert sizes and max(sizes.values()) <= GITHUB_MATRIX_LIMIT, sizes
    # and the preview fills no more jobs than the concurrency the plan is sized for
    assert sizes["preview.batch"] <= MAX_JOBS


@pytest.mark.slow  # a 500-env estate: make test-slow and CI
def test_at_500_envs_every_stack_is_previewed_once_and_every_workload_env_deployed_once(estate_of_500):
    root, envs = estate_of_500
    planned = plan(root)
    assert Counter(previewed(planned)) == Counter(["org", "security", "build", *envs])
    assert Counter(s for b in deploy_batches(planned) for s in b["stacks"].split()) == Counter(envs)


@pytest.mark.slow  # a 500-env estate: make test-slow and CI
def test_at_500_envs_org_security_and_build_deploy_in_order_before_any_workload(estate_of_500):
    root, envs = estate_of_500
    planned = plan(root)
    assert list(planned["core"]) == ["org", "security", "build"]
    jobs = _load("preview.yml")["jobs"]
    assert [jobs[name]["with"]["stacks"] for name in ("up-org", "up-security", "up-build")] == ["org", "security", "build"]
    assert "up-org" in jobs["up-security"]["needs"] and "up-security" in jobs["up-build"]["needs"]
    assert "up-build" in jobs["up-workloads"]["needs"]
    assert not {"org", "security", "build"} & {s for b in deploy_batches(planned) for s in b["stacks"].split()}


@pytest.mark.slow  # a 500-env estate: make test-slow and CI
def test_at_500_envs_each_deploy_batch_runs_in_the_one_environment_and_role_of_all_its_stacks(estate_of_500):
    root, _ = estate_of_500
    planned = plan(root)
    own = {w["stack"]: (w["environment"], w["role"]) for w in planned["workloads"]}
    for batch in deploy_batches(planned):
        assert {own[s] for s in batch["stacks"].split()} == {(batch["environment"], batch["role"])}, batch


@pytest.mark.slow  # a 500-env estate: make test-slow and CI
def test_at_500_envs_prod_deploys_last_and_only_from_the_production_environment(estate_of_500):
    root, _ = estate_of_500
    batches = deploy_batches(plan(root))
    (prod,) = [b for b in batches if "prod" in b["stacks"].split()]
    assert batches[-1] is prod
    assert prod["environment"] == PRODUCTION_ENVIRONMENT and prod["role"].endswith(":role/BakehouseGitHubDeploy-production")
    assert all(b["environment"] != PRODUCTION_ENVIRONMENT for b in batches[:-1])
    # the waves run one at a time, so the last wave (prod's) starts after every other env's deploy
    assert _load("preview.yml")["jobs"]["up-workloads"]["strategy"]["max-parallel"] == 1


def test_several_prod_envs_share_the_production_batches_at_the_end_behind_one_approval():
    overrides = scale_estate.overrides("org", 500)
    prod_envs = ["prod", "w0100", "w0200", "w0300"]
    overrides["bakehouse:org"] = {**overrides["bakehouse:org"], "prodEnvs": prod_envs}
    batches = deploy_batches(plan(overrides=overrides))
    tail = [b for b in batches if b["environment"] == PRODUCTION_ENVIRONMENT]
    assert batches[-len(tail) :] == tail
    assert sorted(s for b in tail for s in b["stacks"].split()) == sorted(prod_envs)


@pytest.mark.slow  # a 500-env estate: make test-slow and CI
def test_at_500_envs_the_plan_output_the_workflow_reads_is_within_githubs_job_output_limit(estate_of_500):
    root, _ = estate_of_500
    line = output_line(plan(root))
    name, _, value = line.partition("=")
    assert name == "plan" and "\n" not in value
    read = json.loads(value)
    assert {"preview_batches", "deploy_waves", "core", "preview_role", "home_region"} <= set(read)
    # GitHub sizes outputs as UTF-16; the plan keeps well under its 1 MB, leaving room for growth
    assert len(value.encode("utf-16-le")) < GITHUB_JOB_OUTPUT_BYTES / 4
