"""Memory capture in the golden image (issue 16.3): bakehouse:factory.memoryCapture is validated, a
placeholder digest is refused before a real deploy, and the release keeps the pinned AVML build in the
scripts bucket only if its SHA-256 is the pinned one (moto; the GitHub download is stubbed)."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest
import yaml
from moto import mock_aws

from components.build.factory_config import factory_config
from tests.build._build_config_support import build_cfg, problems_of, shipped_factory
from tests.build._build_release_support import BUCKET, SETTINGS, seed_release_world
from tests.fakes.operations import FakeAutomation
from tools import refuse_examples
from tools import release as rel
from tools.mockrun import PROJECT_DIR

BINARY = b"\x7fELF avml 0.14.0 static build"
DIGEST = hashlib.sha256(BINARY).hexdigest()
SOURCE = "https://github.com/microsoft/avml/releases/download/v0.14.0/avml"
PINS = {"version": "0.14.0", "sha256": DIGEST, "source": SOURCE}


# --- config -----------------------------------------------------------------------------------------
def test_memory_capture_pins_reach_the_factory_settings():
    factory = copy.deepcopy(shipped_factory())
    factory["memoryCapture"] = dict(PINS)
    assert factory_config(build_cfg(factory)).as_settings()["memoryCapture"] == PINS


@pytest.mark.parametrize(
    "pins, key, allowed",
    [
        ({**PINS, "sha256": "ABC"}, "memoryCapture.sha256", "64 lower-case hex digits"),
        ({**PINS, "sha256": DIGEST.upper()}, "memoryCapture.sha256", "64 lower-case hex digits"),
        ({**PINS, "version": "latest"}, "memoryCapture.version", "an AVML release version"),
        (
            {**PINS, "source": "http://github.com/microsoft/avml/releases/download/v0.14.0/avml"},
            "memoryCapture.source",
            "AVML's GitHub release asset",
        ),
        ({**PINS, "source": "https://example.com/avml"}, "memoryCapture.source", "AVML's GitHub release asset"),
        (
            {**PINS, "source": "https://github.com/microsoft/avml/releases/download/v0.13.0/avml"},
            "memoryCapture.source",
            "the asset of the pinned version",
        ),
        ({**PINS, "url": SOURCE}, "memoryCapture.url", "one of the keys sha256, source, version"),
    ],
)
def test_a_malformed_memory_capture_pin_is_refused_naming_key_and_allowed(pins, key, allowed):
    problems = problems_of(memoryCapture=pins)
    assert any(f"bakehouse:factory.{key} is" in p and allowed in p for p in problems), problems


def test_the_shipped_build_stack_pins_avml_by_version_and_source():
    shipped = shipped_factory()["memoryCapture"]
    parsed = factory_config(build_cfg(shipped_factory())).memory_capture
    assert parsed is not None and parsed.source.endswith(f"/v{shipped['version']}/avml")


# --- the placeholder digest ---------------------------------------------------------------------------
def test_refuse_examples_refuses_the_placeholder_avml_digest_of_the_build_stack(tmp_path):
    doc = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())
    doc["config"]["bakehouse:factory"]["memoryCapture"]["sha256"] = "0" * 64
    (tmp_path / "Pulumi.build.yaml").write_text(yaml.safe_dump(doc))
    [problem] = refuse_examples.placeholder_problems("build", tmp_path)
    assert "bakehouse:factory.memoryCapture.sha256 is the placeholder" in problem and "Pulumi.build.yaml" in problem


def test_refuse_examples_passes_a_real_looking_avml_digest(tmp_path):
    doc = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())
    doc["config"]["bakehouse:factory"]["memoryCapture"]["sha256"] = DIGEST
    (tmp_path / "Pulumi.build.yaml").write_text(yaml.safe_dump(doc))
    assert refuse_examples.placeholder_problems("build", tmp_path) == []


def test_refuse_examples_main_fails_on_the_shipped_placeholder(capsys):
    assert refuse_examples.main(["build"]) == 1
    assert "memoryCapture.sha256 is the placeholder" in capsys.readouterr().err


# --- the release ------------------------------------------------------------------------------------
@pytest.fixture
def aws():
    with mock_aws():
        s3, ssm, key = seed_release_world({**SETTINGS, "memoryCapture": PINS})
        yield s3, FakeAutomation(ssm, {"Bakehouse-Pipeline"}), key


class StubDownload:
    def __init__(self, body: bytes = BINARY):
        self.body, self.urls = body, []

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        return self.body


def test_release_keeps_the_verified_avml_build_versioned_and_kms_encrypted_beside_the_bundle(aws):
    s3, ssm, key = aws
    download = StubDownload()
    started = rel.release("al2023", "0123abc", s3=s3, ssm=ssm, project_dir=PROJECT_DIR, download=download)
    assert download.urls == [SOURCE]
    bundle = s3.head_object(Bucket=BUCKET, Key=rel.BUNDLE_KEY, VersionId=started["ScriptsVersionId"])["Metadata"]
    assert bundle["avmlversion"] == "0.14.0" and bundle["avmlsha256"] == DIGEST
    avml = s3.get_object(Bucket=BUCKET, Key="tools/avml/0.14.0/avml", VersionId=bundle["avmlobjectversion"])
    assert avml["Body"].read() == BINARY
    assert avml["ServerSideEncryption"] == "aws:kms" and avml["SSEKMSKeyId"] == key
    assert avml["Metadata"]["sha256"] == DIGEST


def test_release_refuses_an_avml_asset_whose_sha256_is_not_the_pinned_one_and_uploads_nothing(aws):
    s3, ssm, _ = aws
    with pytest.raises(rel.ReleaseError, match=f"has SHA-256 .*but bakehouse:factory.memoryCapture.sha256 pins {DIGEST}"):
        rel.release("al2023", "0123abc", s3=s3, ssm=ssm, project_dir=PROJECT_DIR, download=StubDownload(b"tampered"))
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert ssm.calls_to("start_automation_execution") == []


def test_a_second_release_reuses_the_staged_avml_build_without_downloading(aws):
    s3, ssm, _ = aws
    first = rel.release("al2023", "0123abc", s3=s3, ssm=ssm, project_dir=PROJECT_DIR, download=StubDownload())
    again = StubDownload()
    second = rel.release("al2023", "4567def", s3=s3, ssm=ssm, project_dir=PROJECT_DIR, download=again)
    assert again.urls == []
    meta = [
        s3.head_object(Bucket=BUCKET, Key=rel.BUNDLE_KEY, VersionId=r["ScriptsVersionId"])["Metadata"] for r in (first, second)
    ]
    assert meta[0]["avmlobjectversion"] == meta[1]["avmlobjectversion"]


def test_release_refuses_settings_whose_avml_source_is_not_the_github_asset(aws):
    s3, ssm, _ = aws
    settings = {**SETTINGS, "memoryCapture": {**PINS, "source": "https://mirror.example.com/avml"}}
    ssm.put_parameter(Name=rel.SETTINGS_PARAMETER, Type="String", Overwrite=True, Value=json.dumps(settings))
    download = StubDownload()
    with pytest.raises(rel.ReleaseError, match="memoryCapture.source"):
        rel.release("al2023", "0123abc", s3=s3, ssm=ssm, project_dir=PROJECT_DIR, download=download)
    assert download.urls == []


def test_the_packer_zip_carries_the_avml_pins_for_the_buildspec(aws):
    s3, _, _ = aws
    meta = rel.stage_memory_capture(s3, BUCKET, None, PINS, StubDownload())
    assert set(meta) == set(rel.AVML_METADATA)


class _Pipeline:
    class exceptions:  # noqa: N801 - mirrors a boto3 client's attribute
        PipelineNotFoundException = type("PipelineNotFoundException", (Exception,), {})

    def start_pipeline_execution(self, **kw):
        return {"pipelineExecutionId": "p-1"}


def test_a_packer_release_records_the_avml_pins_on_the_packer_zip(aws):
    s3, ssm, _ = aws
    settings = {**SETTINGS, "engines": {"ubuntu2404": "packer"}, "memoryCapture": PINS}
    ssm.put_parameter(Name=rel.SETTINGS_PARAMETER, Type="String", Overwrite=True, Value=json.dumps(settings))
    started = rel.release(
        "ubuntu2404", "0123abc", s3=s3, ssm=ssm, codepipeline=_Pipeline(), project_dir=PROJECT_DIR, download=StubDownload()
    )
    head = s3.head_object(Bucket=BUCKET, Key=rel.PACKER_BUNDLE_KEY, VersionId=started["PackerBundleVersionId"])
    assert head["Metadata"]["avmlsha256"] == DIGEST and head["Metadata"]["avmlversion"] == "0.14.0"


# --- who reads the AVML object --------------------------------------------------------------------------
def _role_policy(run, role: str) -> dict:
    statements = [
        s
        for rp in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if rp.inputs["role"] == role
        for s in json.loads(rp.inputs["policy"])["Statement"]
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def test_build_instance_may_read_the_pinned_avml_object_version_and_decrypt_it_through_s3(stack_run):
    from tests.iam.evaluate import allowed

    policy = _role_policy(stack_run("build"), "BakehouseBuildInstance")
    scripts = "arn:aws:s3:::bakehouse-scripts-333333333333-eu-west-1"  # the build stack's scripts bucket
    # `aws s3api get-object --version-id` needs s3:GetObjectVersion (S3 API reference, GetObject).
    assert allowed(policy, "s3:GetObjectVersion", f"{scripts}/tools/avml/0.14.0/avml")
    assert allowed(
        policy,
        "kms:Decrypt",
        "arn:aws:kms:eu-west-1:333333333333:key/build-key-key",
        {"kms:ViaService": "s3.eu-west-1.amazonaws.com"},
    )
    assert not allowed(policy, "s3:PutObject", f"{scripts}/tools/avml/0.14.0/avml")


def test_factory_automation_may_read_the_bundle_versions_avml_pins(stack_run):
    from tests.iam.evaluate import allowed

    policy = _role_policy(stack_run("build"), "BakehouseFactoryAutomation")
    # HeadObject of a version is authorized as s3:GetObjectVersion (S3 API reference, HeadObject).
    assert allowed(
        policy, "s3:GetObjectVersion", "arn:aws:s3:::bakehouse-scripts-333333333333-eu-west-1/provisioning/bundle.tar.gz"
    )


def test_refuse_examples_refuses_the_buildspecs_placeholder_packer_digests_before_a_build_deploy():
    from tools.refuse_examples import buildspec_placeholders, placeholder_problems

    problems = buildspec_placeholders()
    assert any("env.variables.PACKER_SHA256 is the placeholder" in p for p in problems)
    assert set(problems) <= set(placeholder_problems("build"))
    assert not [p for p in placeholder_problems("dev") if "buildspec" in p]
