"""What CI runs, derived from config (bakehouse:accounts, bakehouse:org.prodEnvs): the stacks to
preview, the deploy order, and for each stack the GitHub environment and the management-account role
its job assumes. The workflow reads this instead of listing envs, ids or roles itself.

At scale the stacks are batched, several to a job, so no matrix passes GitHub's limit:
- `preview_batches`: every stack, one per job up to MAX_JOBS stacks, beyond that the fewest stacks per
  job that keep the preview within MAX_JOBS jobs (the preview role reaches every account).
- `deploy_waves`: the workload envs in batches that each share one GitHub environment and role (a job
  runs in one environment, and each deploy role trusts only its environment's tokens, so today only
  prod envs, all under `production`, share a batch); prod's batches last; waves of at most MAX_JOBS
  batches, which the workflow runs one after another.

Usage: python -m tools.ci_plan   (prints `plan=<json>`, the form $GITHUB_OUTPUT takes)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from components.org.org_stack import parse_org_settings
from estate.naming import (
    GITHUB_PREVIEW_ROLE,
    PRODUCTION_ENVIRONMENT,
    github_deploy_role,
    github_environment,
    role_arn,
)
from estate.validate import validate_stack
from tools.mockrun import PROJECT_DIR, stack_config

CORE_STACKS = (("org", "management"), ("security", "security"), ("build", "build"))

# docs.github.com "Actions limits": a job matrix generates at most 256 jobs per workflow run.
MATRIX_LIMIT = 256
# The same page: standard GitHub-hosted runners run 20 (Free), 40 (Pro), 60 (Team) or 500 (Enterprise)
# jobs at once per account. 50 lets a Team organization start a whole matrix at once with room left
# for the run's test job and other repositories; more jobs would only queue, each paying the fixed
# cost of checkout and virtualenv before its first stack.
MAX_JOBS = 50
# What the workflow reads; the flat lists stay in plan() for people and tests. docs.github.com
# "Passing information between jobs": outputs total at most 1 MB per job, sized as UTF-16.
OUTPUT_KEYS = ("home_region", "preview_role", "core", "preview_batches", "deploy_waves")


def per_job(count: int, jobs: int = MAX_JOBS) -> int:
    """One stack a job while they fit in `jobs`; beyond, the fewest a job that keep within it."""
    return max(1, math.ceil(count / jobs))


def _batch(stacks: Sequence[str], **fields: str) -> dict[str, str]:
    # a space-separated string: matrix values reach the reusable workflow as string inputs
    name = stacks[0] if len(stacks) == 1 else f"{stacks[0]} .. {stacks[-1]} ({len(stacks)})"
    return {"name": name, "stacks": " ".join(stacks), **fields}


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def preview_batches(stacks: Sequence[str], jobs: int = MAX_JOBS) -> list[dict[str, str]]:
    return [_batch(chunk) for chunk in _chunks(stacks, per_job(len(stacks), jobs))]


def deploy_waves(workloads: Sequence[Mapping[str, str]], jobs: int = MAX_JOBS) -> list[dict[str, Any]]:
    by_identity: dict[tuple[str, str], list[str]] = {}
    for w in workloads:
        by_identity.setdefault((w["environment"], w["role"]), []).append(w["stack"])
    # prod last: by the time its reviewers are asked, every other env has deployed this commit
    identities = sorted(by_identity, key=lambda identity: identity[0] == PRODUCTION_ENVIRONMENT)
    size = per_job(len(workloads), jobs)
    batches = [
        _batch(chunk, environment=environment, role=role)
        for environment, role in identities
        for chunk in _chunks(by_identity[(environment, role)], size)
    ]
    waves = _chunks(batches, min(jobs, MATRIX_LIMIT))
    return [{"name": f"wave {i} of {len(waves)}", "batches": list(wave)} for i, wave in enumerate(waves, start=1)]


def plan(project_dir: Path = PROJECT_DIR, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    text, _ = stack_config("org", project_dir, overrides)
    values = {k: v for k, v in text.items() if k.startswith("bakehouse:")}
    cfg, org = validate_stack("org", values, project_dir, role_settings=parse_org_settings)
    prod_envs = org.prod_envs
    management = cfg.estate.accounts.management

    def deploy(stack: str, account_key: str) -> dict[str, str]:
        environment = github_environment(account_key, prod_envs)
        return {"stack": stack, "environment": environment, "role": role_arn(management, github_deploy_role(environment))}

    workloads = [deploy(env, env) for env in cfg.estate.accounts.workloads]
    stacks = [stack for stack, _ in CORE_STACKS] + [w["stack"] for w in workloads]
    return {
        "home_region": cfg.estate.home_region,
        "preview_role": role_arn(management, GITHUB_PREVIEW_ROLE),
        "stacks": stacks,
        "core": {stack: deploy(stack, key) for stack, key in CORE_STACKS},
        "workloads": workloads,
        "preview_batches": preview_batches(stacks),
        "deploy_waves": deploy_waves(workloads),
    }


def output_line(planned: Mapping[str, Any]) -> str:
    return "plan=" + json.dumps({key: planned[key] for key in OUTPUT_KEYS}, separators=(",", ":"))


if __name__ == "__main__":
    print(output_line(plan()))
