"""The stack files are the estate: stacks, workloads and deploy order derive from them, and what no single
file can get wrong alone (two files claiming one env, one account id under two names) is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from estate.config import ConfigError
from estate.stack_files import cross_file_problems, stacks_in_deploy_order, workload_stacks

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
        stacks_in_deploy_order(estate_dir)
    assert "Pulumi.broken.yaml is not valid YAML" in str(err.value)
