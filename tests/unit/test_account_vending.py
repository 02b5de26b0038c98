"""A new workload env is configuration only: one entry in `bakehouse:accounts` (and its email), one
`Pulumi.<env>.yaml`. Copied into a scratch project, a `staging` env is listed among the stacks, previewed
by `make preview`'s code path, judged by the policy pack as a workload, and planned by CI."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROGRAM = ("__main__.py", "components", "estate", "handlers", "automation", "catalog", "packer", "policy")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("estate")
    for name in PROGRAM:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, root / name)
    for path in REPO.glob("Pulumi*.yaml"):
        shutil.copy2(path, root / path.name)
    # The three edits a platform engineer makes, and nothing else:
    project_file = yaml.safe_load((root / "Pulumi.yaml").read_text())
    project_file["config"]["bakehouse:accounts"]["value"]["staging"] = "777777777777"
    (root / "Pulumi.yaml").write_text(yaml.safe_dump(project_file, sort_keys=False))
    org = yaml.safe_load((root / "Pulumi.org.yaml").read_text())
    org["config"]["bakehouse:org"]["accountEmails"]["staging"] = "aws+staging@example.com"
    (root / "Pulumi.org.yaml").write_text(yaml.safe_dump(org, sort_keys=False))
    staging = yaml.safe_load((root / "Pulumi.dev.yaml").read_text())
    staging["config"]["bakehouse:env"] = "staging"
    staging["config"]["bakehouse:network"] = {**staging["config"]["bakehouse:network"], "cidr": "10.40.0.0/16"}
    (root / "Pulumi.staging.yaml").write_text(yaml.safe_dump(staging, sort_keys=False))
    return root


def test_a_staging_env_is_listed_among_the_workloads_before_prod(project):
    from estate.stack_files import stacks_in_deploy_order, workload_stacks

    assert "staging" in workload_stacks(project)
    order = stacks_in_deploy_order(project)
    assert order.index("build") < order.index("staging") < order.index("prod")


def test_a_staging_env_is_previewed_and_judged_as_a_workload(project):
    from tools.mockrun import run_stack
    from tools.policy_runner import judge

    run = run_stack("staging", project_dir=project)
    assert any(r.type == "bakehouse:workload:Stack" for r in run.resources)
    assert run.exports["parameterPrefix"] == "/bakehouse/staging"
    verdict = judge(run)
    assert verdict.mandatory == [], [str(v) for v in verdict.mandatory]
    # judged as a workload: an internet gateway added to its record is refused by the workload-only rule
    vpc = next(r for r in run.resources if r.type == "aws:ec2/vpc:Vpc")
    igw = replace(
        vpc,
        type="aws:ec2/internetGateway:InternetGateway",
        name="staging-igw",
        urn=vpc.urn.rsplit("::", 1)[0] + "::staging-igw",
        inputs={},
    )
    tampered = replace(run, resources=[*run.resources, igw])
    assert [v.resource for v in judge(tampered).by_policy("workload-no-internet-path")] == ["staging-igw"]


def test_ci_plans_a_staging_deploy_in_its_own_environment(project):
    from tools.ci_plan import plan

    planned = plan(project)
    assert "staging" in planned["stacks"]
    (staging,) = [w for w in planned["workloads"] if w["stack"] == "staging"]
    assert staging["environment"] == "staging" and staging["role"].endswith("role/BakehouseGitHubDeploy-staging")
