"""`make release FAMILY=<packer family>`: the tar.gz for validation, packer/ as a zip with the commit and
the tar.gz's version, and the family's CodePipeline started on exactly that zip version."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from components.build import packer_pipeline
from components.build.factory_config import factory_config
from tests.build._build_config_support import build_cfg, shipped_factory
from tests.build._build_release_support import BUCKET, REGION, SETTINGS, seed_release_world
from tests.fakes import PipelineRevisionStarts
from tests.fakes.operations import FakeAutomation
from tools import release as rel

ROOT = Path(__file__).resolve().parents[2]
PACKER_SETTINGS = {**SETTINGS, "engines": {"al2023": "ssm", "ubuntu2404": "packer"}}


def create_pipeline(client, iam, family: str) -> None:
    role = iam.create_role(
        RoleName="BakehousePackerPipeline",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "codepipeline.amazonaws.com"}}
                ],
            }
        ),
    )["Role"]["Arn"]
    client.create_pipeline(
        pipeline={
            "name": f"bakehouse-packer-{family}",
            "roleArn": role,
            "artifactStore": {"type": "S3", "location": BUCKET},
            "stages": [
                {
                    "name": "Source",
                    "actions": [
                        {
                            "name": "Bundle",
                            "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                            "outputArtifacts": [{"name": "bundle"}],
                            "configuration": {"S3Bucket": BUCKET, "S3ObjectKey": rel.PACKER_BUNDLE_KEY},
                        }
                    ],
                },
                {
                    "name": "Build",
                    "actions": [
                        {
                            "name": "Packer",
                            "actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
                            "inputArtifacts": [{"name": "bundle"}],
                            "configuration": {"ProjectName": "bakehouse-packer"},
                        }
                    ],
                },
            ],
        }
    )


@pytest.fixture
def aws():
    with mock_aws():
        s3, ssm, key = seed_release_world(PACKER_SETTINGS)
        cp, iam = (boto3.client(s, region_name=REGION) for s in ("codepipeline", "iam"))
        create_pipeline(cp, iam, "ubuntu2404")
        yield s3, FakeAutomation(ssm, {"Bakehouse-Pipeline"}), PipelineRevisionStarts(cp), key


def test_packer_family_uploads_the_packer_zip_with_commit_and_bundle_version(aws):
    s3, ssm, cp, key = aws
    started = rel.release("ubuntu2404", "0123abc", s3=s3, ssm=ssm, codepipeline=cp, project_dir=ROOT)
    head = s3.head_object(Bucket=BUCKET, Key="provisioning/packer.zip", VersionId=started["PackerBundleVersionId"])
    assert head["Metadata"] == {"commit": "0123abc", "bundle-version": started["ScriptsVersionId"]}
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key
    # the bundle-version is the tar.gz validation runs, uploaded in the same release
    tar = s3.head_object(Bucket=BUCKET, Key=rel.BUNDLE_KEY, VersionId=started["ScriptsVersionId"])
    assert tar["Metadata"] == {"commit": "0123abc"}


def test_packer_family_starts_its_codepipeline_on_the_uploaded_zip_version_not_the_ssm_pipeline(aws):
    s3, ssm, cp, _ = aws
    started = rel.release("ubuntu2404", "0123abc", s3=s3, ssm=ssm, codepipeline=cp, project_dir=ROOT)
    assert ssm.calls_to("start_automation_execution") == []
    [call] = cp.calls_to("start_pipeline_execution")
    assert call["name"] == "bakehouse-packer-ubuntu2404"
    assert call["sourceRevisions"] == [
        {"actionName": "Bundle", "revisionType": "S3_OBJECT_VERSION_ID", "revisionValue": started["PackerBundleVersionId"]}
    ]
    assert started["PipelineExecutionId"]


def test_each_packer_zip_version_starts_with_its_own_request_token(aws):
    s3, ssm, cp, _ = aws
    rel.release("ubuntu2404", "0123abc", s3=s3, ssm=ssm, codepipeline=cp, project_dir=ROOT)
    rel.release("ubuntu2404", "0123abc", s3=s3, ssm=ssm, codepipeline=cp, project_dir=ROOT)
    # a token per (family, commit, zip version): a retried start of one version is one execution
    tokens = [c["clientRequestToken"] for c in cp.calls_to("start_pipeline_execution")]
    versions = [c["sourceRevisions"][0]["revisionValue"] for c in cp.calls_to("start_pipeline_execution")]
    assert len(set(tokens)) == len(set(versions)) == 2


def test_ssm_family_still_starts_bakehouse_pipeline(aws):
    s3, ssm, cp, _ = aws
    rel.release("al2023", "0123abc", s3=s3, ssm=ssm, codepipeline=cp, project_dir=ROOT)
    assert [c["DocumentName"] for c in ssm.calls_to("start_automation_execution")] == ["Bakehouse-Pipeline"] and cp.calls_to(
        "start_pipeline_execution"
    ) == []


def test_packer_family_without_its_pipeline_is_refused_naming_it(aws):
    s3, ssm, cp, _ = aws
    cp._inner.delete_pipeline(name="bakehouse-packer-ubuntu2404")
    with pytest.raises(rel.ReleaseError, match="bakehouse-packer-ubuntu2404 does not exist"):
        rel.release("ubuntu2404", "0123abc", s3=s3, ssm=ssm, codepipeline=cp, project_dir=ROOT)


def test_packer_zip_is_reproducible_holds_packer_under_its_folder_and_leaves_local_outputs_out(tmp_path):
    first = rel.build_packer_zip(ROOT)
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "packer", copy / "packer")
    (copy / "packer" / "manifest.json").write_text("{}")
    (copy / "packer" / "bakehouse.auto.pkrvars.hcl").write_text('family = "x"')
    assert rel.build_packer_zip(copy) == first
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        names = zf.namelist()
        assert names == sorted(names)
        assert {"packer/buildspec.yml", "packer/build.pkr.hcl", "packer/scripts/provision.sh", "packer/start_release.sh"} <= set(
            names
        )
        assert zf.getinfo("packer/start_release.sh").external_attr >> 16 == 0o100755


def test_release_names_match_the_build_stack():
    assert rel.PACKER_BUNDLE_KEY == packer_pipeline.BUNDLE_KEY
    assert rel.PACKER_PIPELINE_PREFIX == packer_pipeline.PIPELINE_PREFIX
    assert rel.PACKER_SOURCE_ACTION == packer_pipeline.SOURCE_ACTION


def test_settings_tell_the_release_tool_each_familys_engine():
    settings = factory_config(build_cfg(shipped_factory())).as_settings()
    assert settings["engines"] == {"al2023": "ssm", "ubuntu2404": "packer"}
