"""The stack files are the estate: stacks, workloads and deploy order derive from them, and what no single
file can get wrong alone (two files claiming one env, one account id under two names) is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from estate.config import ConfigError
from estate.stack_files import cross_file_problems, stack_files, stacks_in_deploy_order, workload_stacks

PROJECT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture()
def estate_dir(tmp_path: Path) -> Path:
    for path in PROJECT_DIR.glob("Pulumi*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def _add_stack(directory: Path, stack: str, config: dict) -> None:
    (directory / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))


def test_committed_estate_deploys_org_security_build_then_non_prod_then_prod():
    assert stacks_in_deploy_order(PROJECT_DIR) == ("org", "security", "build", "dev", "uat", "prod")
    assert workload_stacks(PROJECT_DIR) == ("dev", "uat", "prod")


def test_a_new_env_is_one_stack_file_and_lands_among_the_workloads_before_prod(estate_dir):
    dev = yaml.safe_load((estate_dir / "Pulumi.dev.yaml").read_text())["config"]
    _add_stack(estate_dir, "staging", {**dev, "bakehouse:env": "staging"})
    assert stacks_in_deploy_order(estate_dir) == ("org", "security", "build", "dev", "staging", "uat", "prod")
    assert "staging" in workload_stacks(estate_dir)
    assert cross_file_problems(estate_dir) == []


def test_two_stack_files_claiming_one_env_are_refused_naming_both(estate_dir):
    dev = yaml.safe_load((estate_dir / "Pulumi.dev.yaml").read_text())["config"]
    _add_stack(estate_dir, "dev2", {**dev, "bakehouse:env": "dev"})
    (problem,) = cross_file_problems(estate_dir)
    assert "Pulumi.dev.yaml and Pulumi.dev2.yaml both claim env 'dev'" in problem


def test_one_account_id_under_two_names_is_refused(estate_dir):
    project = yaml.safe_load((estate_dir / "Pulumi.yaml").read_text())
    accounts = project["config"]["bakehouse:accounts"]["value"]
    accounts["uat"] = accounts["dev"]
    (estate_dir / "Pulumi.yaml").write_text(yaml.safe_dump(project))
    (problem,) = cross_file_problems(estate_dir)
    assert f"gives dev, uat the same account {accounts['dev']}" in problem


def test_a_yaml_error_in_any_stack_file_names_that_file(estate_dir):
    (estate_dir / "Pulumi.broken.yaml").write_text("config:\n  bakehouse:role: [workload\n")
    with pytest.raises(ConfigError) as err:
        stack_files(estate_dir)
    assert "Pulumi.broken.yaml is not valid YAML" in str(err.value)


def test_a_stack_file_that_does_not_parse_is_still_listed_last_so_each_stack_can_report_it(estate_dir):
    # The stack list is read when the preview starts: one bad file must not take every stack's verdict with it.
    (estate_dir / "Pulumi.broken.yaml").write_text("config:\n  bakehouse:role: [workload\n")
    assert stacks_in_deploy_order(estate_dir) == ("org", "security", "build", "dev", "uat", "prod", "broken")
    assert workload_stacks(estate_dir) == ("dev", "uat", "prod")


@pytest.mark.slow  # a copy of the project and a preview in a fresh process
def test_the_preview_reports_a_broken_stack_file_as_a_rejection_naming_it_not_a_traceback(tmp_path):
    import subprocess
    import sys

    project = tmp_path / "project"
    shutil.copytree(
        PROJECT_DIR,
        project,
        ignore=shutil.ignore_patterns(".git", ".venv", "node_modules", "__pycache__", "tests", "policy/venv"),
    )
    (project / "Pulumi.broken.yaml").write_text("config:\n  bakehouse:role: [workload\n")
    done = subprocess.run(
        [sys.executable, "-m", "tools.preview", "dev", "broken"], cwd=project, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert "REJECTED" in done.stdout and "Pulumi.broken.yaml is not valid YAML" in done.stdout
