"""Release one image family: bundle the provisioning scripts, upload them, start the Pipeline.

    make release FAMILY=al2023            (python -m tools.release al2023)
    python -m tools.release --plan        (prints `plan=<json>` for the release workflow)

The bundle is a reproducible tar.gz of packer/scripts and packer/validation (the format the build
and validation documents unpack with `tar -xzf`, which both base images carry; `unzip` is not on
every base): members sorted, fixed mtimes, owners and modes, gzip header without a timestamp, so
one commit always gives the same bytes. It is uploaded versioned (the object version pins what a
build runs) and KMS-encrypted with the scripts key, with the commit as object metadata (the
documents refuse a bundle whose metadata names another commit).

Everything the Pipeline is started with comes from `/bakehouse/factory/settings`, which the build
stack wrote: the caller chooses the family and nothing else (not the approvers, not the approval
path). Only the parameters the Pipeline document declares are sent.

A family whose engine is `packer` (the settings' `engines`) builds in CodeBuild instead: the same
tar.gz is uploaded (validation runs it), then a reproducible zip of packer/ goes to
provisioning/packer.zip with the commit and the tar.gz's version as metadata (the buildspec reads
both), and the family's CodePipeline `bakehouse-packer-<family>` is started on exactly that zip
version (a source revision override), never on whatever the key holds when the pipeline polls.

Memory capture (the settings' `memoryCapture`, from bakehouse:factory.memoryCapture): AVML is published
on GitHub, outside the build firewall's allow-list, so the release (CI has the internet) downloads the
pinned asset, refuses it unless its SHA-256 is the pinned one, and keeps it versioned and KMS-encrypted
at tools/avml/<version>/avml in the scripts bucket. Both bundles carry the pins as metadata
(avmlversion, avmlsha256, avmlobjectversion): BuildImage and the buildspec stage that object version,
provisioning installs it only if its digest matches, and the AMI is tagged with the version and digest.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from handlers.contract import FACTORY_SETTINGS_PARAMETER

PROJECT_DIR = Path(__file__).resolve().parent.parent
SETTINGS_PARAMETER = FACTORY_SETTINGS_PARAMETER  # written by the build stack (components/build/image_factory.py)
PIPELINE = "Bakehouse-Pipeline"
BUNDLE_KEY = "provisioning/bundle.tar.gz"
BUNDLE_FOLDERS = {"scripts": "packer/scripts", "validation": "packer/validation"}
# components/build/packer_pipeline.py's names: the zip the pipeline's S3 source action ("Bundle") reads.
PACKER_BUNDLE_KEY = "provisioning/packer.zip"
PACKER_FOLDER = "packer"
PACKER_SOURCE_ACTION = "Bundle"
PACKER_PIPELINE_PREFIX = "bakehouse-packer-"
# What a local `packer build` leaves behind; never part of what CodeBuild runs.
PACKER_LOCAL_FILES = ("manifest.json", ".auto.pkrvars.hcl", "packer_cache/", ".packer.d/")
# Public parameters AWS and Canonical maintain with the latest base AMI id of each OS.
BASE_IMAGE_PARAMETERS = {
    "al2023": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "ubuntu2404": "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
}
FIXED_MTIME = 315532800  # 1980-01-01, the earliest time every archive format can hold
# Idempotency namespace: one (family, commit, bundle version) starts one execution however often it is retried.
RELEASE_NAMESPACE = uuid.UUID("5b1f5c2e-6c8e-4b0a-9a57-6f6a1f3c2d10")
# Where the pinned AVML build lives in the scripts bucket (packer/scripts/55-memory-capture.sh names it too).
AVML_KEY = "tools/avml/{version}/avml"
AVML_SOURCE = re.compile(r"https://github\.com/microsoft/avml/releases/download/v[^/]+/avml(-minimal)?")
# S3 lower-cases user metadata keys; these carry no dash so an SSM selector reads them as $.Metadata.<key>.
AVML_METADATA = ("avmlversion", "avmlsha256", "avmlobjectversion")


class ReleaseError(Exception):
    """The release cannot start: what is wrong and where."""


def build_bundle(project_dir: Path = PROJECT_DIR) -> bytes:
    """The provisioning bundle's bytes; identical for identical sources."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for folder, source in sorted(BUNDLE_FOLDERS.items()):
            root = project_dir / source
            if not root.is_dir():
                raise ReleaseError(f"{source} is missing: the bundle needs it")
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                data = path.read_bytes()
                info = tarfile.TarInfo(f"{folder}/{path.relative_to(root).as_posix()}")
                info.size, info.mtime, info.uid, info.gid, info.uname, info.gname = len(data), FIXED_MTIME, 0, 0, "", ""
                info.mode = 0o755 if path.suffix == ".sh" else 0o644
                tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def build_packer_zip(project_dir: Path = PROJECT_DIR) -> bytes:
    """packer/ as the CodeBuild source (members under packer/, where the project's buildspec path points);
    sorted, fixed timestamps and modes, so one commit always gives the same bytes."""
    root = project_dir / PACKER_FOLDER
    if not root.is_dir():
        raise ReleaseError(f"{PACKER_FOLDER}/ is missing: the Packer engine builds from it")
    out = io.BytesIO()
    with zipfile.ZipFile(out, mode="w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(project_dir).as_posix()
            if any(rel.endswith(x) or f"/{x}" in f"/{rel}" for x in PACKER_LOCAL_FILES):
                continue
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100755 if path.suffix == ".sh" else 0o100644) << 16
            zf.writestr(info, path.read_bytes())
    return out.getvalue()


def engine_of(settings: Mapping[str, Any], family: str) -> str:
    return (settings.get("engines") or {}).get(family, "ssm")


def download_https(url: str) -> bytes:
    """The release asset's bytes (GitHub answers with a redirect to its object store; urllib follows it)."""
    with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - the URL is validated https
        return response.read()


def memory_capture_pins(settings: Mapping[str, Any]) -> dict[str, str] | None:
    """The settings' memoryCapture, checked again here: the release is what lets a binary into the factory."""
    pins = settings.get("memoryCapture")
    if pins is None:
        return None
    if not isinstance(pins, Mapping):
        raise ReleaseError(f"{SETTINGS_PARAMETER} memoryCapture is not an object")
    version, sha256, source = (str(pins.get(k, "")) for k in ("version", "sha256", "source"))
    if not re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", version):
        raise ReleaseError(f"{SETTINGS_PARAMETER} memoryCapture.version {version!r} is not a release version")
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ReleaseError(f"{SETTINGS_PARAMETER} memoryCapture.sha256 {sha256!r} is not 64 lower-case hex digits")
    if not AVML_SOURCE.fullmatch(source) or f"/v{version}/" not in source:
        raise ReleaseError(f"{SETTINGS_PARAMETER} memoryCapture.source {source!r} is not AVML's v{version} GitHub release asset")
    return {"version": version, "sha256": sha256, "source": source}


def stage_memory_capture(
    s3, bucket: str, kms_key_id: str | None, pins: Mapping[str, str], download: Callable[[str], bytes] = download_https
) -> dict[str, str]:
    """Put the pinned AVML build in the scripts bucket (once per digest); returns the bundles' metadata."""
    key = AVML_KEY.format(version=pins["version"])
    expected = pins["sha256"]
    version = _staged_version(s3, bucket, key, expected)
    if version is None:
        body = download(pins["source"])
        got = hashlib.sha256(body).hexdigest()
        if got != expected:
            raise ReleaseError(
                f"{pins['source']} has SHA-256 {got}, but bakehouse:factory.memoryCapture.sha256 "
                f"pins {expected}: not uploaded (a changed release asset, or the wrong pin)"
            )
        put = s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/octet-stream",
            ServerSideEncryption="aws:kms",
            Metadata={"sha256": expected, "version": pins["version"], "source": pins["source"]},
            **({"SSEKMSKeyId": kms_key_id} if kms_key_id else {}),
        )
        version = put.get("VersionId")
        if not version or version == "null":
            raise ReleaseError(f"s3://{bucket}/{key} has no version id: the scripts bucket must be versioned")
    return dict(zip(AVML_METADATA, (pins["version"], expected, version), strict=True))


def _staged_version(s3, bucket: str, key: str, expected: str) -> str | None:
    """The current version of the key if its bytes already hash to the pin (a rerun downloads nothing)."""
    try:
        current = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return None
    body = current["Body"].read()
    version = current.get("VersionId")
    if hashlib.sha256(body).hexdigest() != expected or not version or version == "null":
        return None
    return version


def release_packer(
    family: str,
    commit: str,
    bundle_version: str,
    settings: Mapping[str, Any],
    *,
    s3,
    codepipeline,
    project_dir: Path = PROJECT_DIR,
    extra_metadata: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Upload packer/ as the pipeline's source and start the family's pipeline on that exact version."""
    bucket = settings["pipelineParameters"]["ScriptsBucket"]
    kms = settings.get("scriptsKmsKeyId")
    put = s3.put_object(
        Bucket=bucket,
        Key=PACKER_BUNDLE_KEY,
        Body=build_packer_zip(project_dir),
        ContentType="application/zip",
        ServerSideEncryption="aws:kms",
        Metadata={"commit": commit, "bundle-version": bundle_version, **(extra_metadata or {})},
        **({"SSEKMSKeyId": kms} if kms else {}),
    )
    version = put.get("VersionId")
    if not version or version == "null":
        raise ReleaseError(f"s3://{bucket}/{PACKER_BUNDLE_KEY} has no version id: the scripts bucket must be versioned")
    pipeline = f"{PACKER_PIPELINE_PREFIX}{family}"
    token = str(uuid.uuid5(RELEASE_NAMESPACE, f"packer:{family}:{commit}:{version}"))
    # CodePipeline user guide, "Start a pipeline with a source revision override": S3_OBJECT_VERSION_ID.
    try:
        started = codepipeline.start_pipeline_execution(
            name=pipeline,
            clientRequestToken=token,
            sourceRevisions=[
                {"actionName": PACKER_SOURCE_ACTION, "revisionType": "S3_OBJECT_VERSION_ID", "revisionValue": version}
            ],
        )
    except codepipeline.exceptions.PipelineNotFoundException as err:
        raise ReleaseError(
            f"family {family} builds with packer but pipeline {pipeline} does not exist: deploy the build stack first"
        ) from err
    return {
        "Family": family,
        "Commit": commit,
        "Engine": "packer",
        "ScriptsVersionId": bundle_version,
        "PackerBundleVersionId": version,
        "Pipeline": pipeline,
        "PipelineExecutionId": started["pipelineExecutionId"],
    }


def read_settings(ssm) -> dict[str, Any]:
    try:
        value = ssm.get_parameter(Name=SETTINGS_PARAMETER)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound as err:
        raise ReleaseError(f"{SETTINGS_PARAMETER} does not exist: deploy the build stack first") from err
    try:
        settings = json.loads(value)
    except json.JSONDecodeError as err:
        raise ReleaseError(f"{SETTINGS_PARAMETER} is not JSON: {err}") from err
    if not isinstance(settings, Mapping) or not isinstance(settings.get("pipelineParameters"), Mapping):
        raise ReleaseError(f"{SETTINGS_PARAMETER} has no pipelineParameters object")
    return dict(settings)


def declared_parameters(document: Path = PROJECT_DIR / "automation" / "pipeline.yaml") -> dict[str, Any]:
    return (yaml.safe_load(document.read_text()) or {}).get("parameters") or {}


def as_automation_values(value: Any) -> list[str]:
    """StartAutomationExecution takes every parameter as a list of strings."""
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, Mapping):
        return [json.dumps(value, sort_keys=True)]  # StringMap
    if isinstance(value, list | tuple):
        return [json.dumps(v, sort_keys=True) if isinstance(v, Mapping) else str(v) for v in value]  # MapList / StringList
    return [str(value)]


def pipeline_parameters(
    settings: Mapping[str, Any], family: str, version_id: str, commit: str, declared: Mapping[str, Any]
) -> dict[str, list[str]]:
    families = settings.get("families") or {}
    if family not in families:
        raise ReleaseError(
            f"family {family!r} is not configured; {SETTINGS_PARAMETER} builds: {', '.join(sorted(families)) or 'none'}"
        )
    base = families[family]
    if base not in BASE_IMAGE_PARAMETERS:
        raise ReleaseError(f"family {family} has base {base!r}; known bases: {', '.join(BASE_IMAGE_PARAMETERS)}")
    values = {
        **settings["pipelineParameters"],
        "Family": family,
        "BaseImageParameter": BASE_IMAGE_PARAMETERS[base],
        "ScriptsKey": BUNDLE_KEY,
        "ScriptsVersionId": version_id,
        "ScriptsCommit": commit,
    }
    return {name: as_automation_values(value) for name, value in values.items() if name in declared}


def upload_bundle(
    s3, bucket: str, kms_key_id: str | None, body: bytes, commit: str, extra_metadata: Mapping[str, str] | None = None
) -> str:
    extra = {"SSEKMSKeyId": kms_key_id} if kms_key_id else {}
    put = s3.put_object(
        Bucket=bucket,
        Key=BUNDLE_KEY,
        Body=body,
        ContentType="application/gzip",
        ServerSideEncryption="aws:kms",
        Metadata={"commit": commit, **(extra_metadata or {})},
        **extra,
    )
    version = put.get("VersionId")
    if not version or version == "null":
        raise ReleaseError(f"s3://{bucket}/{BUNDLE_KEY} has no version id: the scripts bucket must be versioned")
    return version


def release(
    family: str,
    commit: str,
    *,
    s3,
    ssm,
    codepipeline=None,
    project_dir: Path = PROJECT_DIR,
    download: Callable[[str], bytes] = download_https,
) -> dict[str, str]:
    """Upload the bundle and start the family's build (the Pipeline, or its Packer pipeline); returns what started."""
    settings = read_settings(ssm)
    declared = declared_parameters(project_dir / "automation" / "pipeline.yaml")
    if family not in (settings.get("families") or {}):
        pipeline_parameters(settings, family, "", commit, declared)  # raises with the configured families
    bucket = settings["pipelineParameters"].get("ScriptsBucket")
    if not bucket:
        raise ReleaseError(f"{SETTINGS_PARAMETER} names no ScriptsBucket")
    kms = settings.get("scriptsKmsKeyId")
    pins = memory_capture_pins(settings)
    # Without pins the bundle carries none, and the build stops at its memory-capture step (fail closed).
    avml = stage_memory_capture(s3, bucket, kms, pins, download) if pins else {}
    version = upload_bundle(s3, bucket, kms, build_bundle(project_dir), commit, avml)
    if engine_of(settings, family) == "packer":
        if codepipeline is None:
            raise ReleaseError(f"family {family} builds with packer: a CodePipeline client is needed")
        return release_packer(
            family, commit, version, settings, s3=s3, codepipeline=codepipeline, project_dir=project_dir, extra_metadata=avml
        )
    parameters = pipeline_parameters(settings, family, version, commit, declared)
    token = str(uuid.uuid5(RELEASE_NAMESPACE, f"{family}:{commit}:{version}"))
    started = ssm.start_automation_execution(DocumentName=PIPELINE, Parameters=parameters, ClientToken=token)
    return {
        "Family": family,
        "Commit": commit,
        "ScriptsVersionId": version,
        "AutomationExecutionId": started["AutomationExecutionId"],
    }


def head_commit(project_dir: Path = PROJECT_DIR) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=project_dir, check=True, capture_output=True, text=True).stdout.strip()

    dirty = git("status", "--porcelain", "--", PACKER_FOLDER)  # the tar.gz and the Packer zip both come from it
    if dirty:
        raise ReleaseError(f"uncommitted changes under packer/; the bundle would not be commit HEAD:\n{dirty}")
    return git("rev-parse", "HEAD")


def plan(project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """What the release workflow needs: the families, the build environment, its role and the build account's."""
    from estate.validate import validate_stack
    from tools.ci_plan import plan as ci_plan
    from tools.mockrun import stack_config

    text, _ = stack_config("build", project_dir)
    values = {
        k.removeprefix("bakehouse:"): json.loads(v) if v[:1] in "[{" else v for k, v in text.items() if k.startswith("bakehouse:")
    }
    cfg, _ = validate_stack("build", values, project_dir)
    families = sorted((values.get("factory") or {}).get("families") or {})
    build = ci_plan(project_dir)["core"]["build"]
    return {
        "families": families,
        "home_region": cfg.region,
        "environment": build["environment"],
        "role": build["role"],
        "build_role": cfg.deploy_role_arn,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tools.release", description=__doc__.split("\n\n")[0])
    parser.add_argument("family", nargs="?", help="image family, as configured in bakehouse:factory.families")
    parser.add_argument("--plan", action="store_true", help="print the release plan (plan=<json>) and exit")
    parser.add_argument("--commit", help="commit the bundle is made from (default: HEAD, with packer/ clean)")
    parser.add_argument("--region", help="the build account's home region (default: the build stack's)")
    parser.add_argument("--assume-role", help="role to assume first (the build account's deploy role in CI)")
    args = parser.parse_args(argv)
    if args.plan:
        print("plan=" + json.dumps(plan(), separators=(",", ":")))
        return 0
    if not args.family:
        parser.error("a family is required (e.g. make release FAMILY=al2023)")
    import boto3  # tools may use boto3; imported here so --plan and tests need no AWS

    try:
        commit = args.commit or head_commit()
        region = args.region or plan()["home_region"]
        session = boto3.Session(region_name=region)
        if args.assume_role:
            creds = session.client("sts").assume_role(
                RoleArn=args.assume_role, RoleSessionName=f"bakehouse-release-{args.family}"
            )["Credentials"]
            session = boto3.Session(
                region_name=region,
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
            )
        started = release(
            args.family, commit, s3=session.client("s3"), ssm=session.client("ssm"), codepipeline=session.client("codepipeline")
        )
    except ReleaseError as err:
        print(f"release refused: {err}", file=sys.stderr)
        return 2
    print(json.dumps(started, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
