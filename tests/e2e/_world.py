"""Seeds a moto server with what the factory documents expect to find, and the test-side stand-ins
for what moto cannot do (an SSM agent that reports Online, a shell that runs the scripts).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from tools.release import stage_memory_capture

from ._actions import CommandRequest, CommandResult

REPO = Path(__file__).resolve().parents[2]
AL2023_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
ACCOUNT_ID = "123456789012"
# The workload accounts by env, as the build stack writes them (components/build/factory_targets.py): one
# parameter per env under TARGETS_PATH, which the handlers read when a run names no accounts.
TARGET_ACCOUNTS = {"dev": "111111111111", "prod": "222222222222"}
TARGETS_PATH = "/bakehouse/factory/targets"
# The pinned memory-capture build as the release keeps it (tools/release.py; the download is stubbed).
AVML_BINARY = b"\x7fELF e2e avml"
AVML_PINS = {
    "version": "0.14.0",
    "sha256": hashlib.sha256(AVML_BINARY).hexdigest(),
    "source": "https://github.com/microsoft/avml/releases/download/v0.14.0/avml",
}


def set_public_parameter(name: str, value: str, region: str, account_id: str = ACCOUNT_ID) -> None:
    """AWS (and moto) refuse PutParameter under /aws/; the public parameter is placed in moto's
    backend directly, which is what AWS does on its side when a new base AMI ships."""
    from moto.ssm.models import Parameter, ssm_backends

    params = ssm_backends[account_id][region]._parameters
    existing = params[name]  # loads moto's bundled /aws/service defaults first
    version = (existing[-1].version + 1) if existing else 1
    existing.append(
        Parameter(
            account_id=account_id,
            name=name,
            value=value,
            parameter_type="String",
            description=None,
            allowed_pattern=None,
            keyid=None,
            last_modified_date=dt.datetime.now().timestamp(),
            version=version,
            data_type="aws:ec2:image",
        )
    )


def bundle_bytes() -> bytes:
    """The provisioning bundle as CI would upload it: packer/scripts and packer/validation."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for folder in ("scripts", "validation"):
            root = REPO / "packer" / folder
            for path in sorted(root.glob("*")) if root.is_dir() else ():
                tar.add(path, arcname=f"{folder}/{path.name}")
    return buffer.getvalue()


@dataclass
class World:
    endpoint_url: str
    region: str
    base_ami: str
    subnet_id: str
    security_group_id: str
    instance_profile: str
    kms_key_arn: str
    scripts_bucket: str
    scripts_key: str
    scripts_version: str
    commit: str
    topic_arn: str
    findings_bucket: str
    avml_version: str = ""
    avml_sha256: str = ""

    def client(self, service: str, region: str | None = None):
        return boto3.client(service, region_name=region or self.region, endpoint_url=self.endpoint_url)

    def build_parameters(self, role_arn: str, family: str = "al2023-base") -> dict[str, Any]:
        return {
            "AutomationAssumeRole": role_arn,
            "Family": family,
            "BaseImageParameter": AL2023_PARAMETER,
            "SubnetId": self.subnet_id,
            "SecurityGroupIds": [self.security_group_id],
            "InstanceProfileName": self.instance_profile,
            "FactoryKmsKeyId": self.kms_key_arn,
            "ScriptsBucket": self.scripts_bucket,
            "ScriptsKey": self.scripts_key,
            "ScriptsVersionId": self.scripts_version,
            "ScriptsCommit": self.commit,
        }


def seed(endpoint_url: str, region: str = "eu-west-1", commit: str = "0a1b2c3d4e5f") -> World:
    def c(service: str):
        return boto3.client(service, region_name=region, endpoint_url=endpoint_url)

    ec2 = c("ec2")
    base = ec2.register_image(
        Name="al2023-ami-2023.6-kernel-6.1-x86_64",
        RootDeviceName="/dev/xvda",
        Architecture="x86_64",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
    )["ImageId"]
    set_public_parameter(AL2023_PARAMETER, base, region)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/20")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="bakehouse-build", Description="build", VpcId=vpc)["GroupId"]
    c("iam").create_instance_profile(InstanceProfileName="BakehouseBuildInstance")
    key = c("kms").create_key(Description="factory")["KeyMetadata"]["Arn"]
    s3 = c("s3")
    buckets = {}
    for purpose in ("scripts", "findings"):
        name = f"bakehouse-{purpose}-{ACCOUNT_ID}-{region}"
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key},
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
        buckets[purpose] = name
    avml = stage_memory_capture(s3, buckets["scripts"], key, AVML_PINS, download=lambda _url: AVML_BINARY)
    put = s3.put_object(
        Bucket=buckets["scripts"],
        Key="provisioning/bundle.tar.gz",
        Body=bundle_bytes(),
        Metadata={"commit": commit, **avml},
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=key,
    )
    topic = c("sns").create_topic(Name="bakehouse-approvers")["TopicArn"]
    for env, account in TARGET_ACCOUNTS.items():
        c("ssm").put_parameter(Name=f"{TARGETS_PATH}/{env}", Type="String", Value=account)
    return World(
        endpoint_url,
        region,
        base,
        subnet,
        sg,
        "BakehouseBuildInstance",
        key,
        buckets["scripts"],
        "provisioning/bundle.tar.gz",
        put["VersionId"],
        commit,
        topic,
        buckets["findings"],
        avml["avmlversion"],
        avml["avmlsha256"],
    )


def ssm_agent_online(world: World):
    """DescribeInstanceInformation (moto lacks it): the agent of a running instance reports Online."""

    def describe(params: dict[str, Any]) -> dict[str, Any]:
        ids = [v for f in params.get("Filters", []) if f["Key"] == "InstanceIds" for v in f["Values"]]
        if not ids:
            raise ValueError("DescribeInstanceInformation without an InstanceIds filter")
        found = world.client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
        return {
            "InstanceInformationList": [
                {"InstanceId": i["InstanceId"], "PingStatus": "Online", "ResourceType": "EC2Instance"}
                for r in found
                for i in r["Instances"]
                if i["State"]["Name"] == "running"
            ]
        }

    return describe


_GET_OBJECT = re.compile(r"--bucket '([^']+)' --key '([^']+)'\s+--version-id '([^']+)'")
_COMMIT = re.compile(r"grep -q '\"commit\": \"([0-9a-f]+)\"'")
_LOOP = re.compile(r'"\$work"/(\w+)/\[0-9\]\[0-9\]-\*\.sh')
_ENTRY = re.compile(r'bash "\$work/(\w+)/validate\.sh"')
_CHECKS = re.compile(r'^CHECKS="([^"]*)"', re.M)
_AVML_OBJECT = re.compile(r"--key '(tools/avml/[^']+)'\s+--version-id '([^']+)'")
_AVML_SHA256 = re.compile(r"BAKEHOUSE_AVML_SHA256='([^']*)'")


@dataclass
class ShellRun:
    step: str
    instance_ids: tuple[str, ...]
    scripts: tuple[str, ...]


@dataclass
class BundleShell:
    """Runs an AWS-RunShellScript of the documents the way the instance would, minus the scripts' own
    effects: it fetches the pinned object version from moto's S3, refuses a commit mismatch, and
    resolves which bundle scripts the loop would run, in order. `fail_folders` makes a folder's run fail."""

    world: World
    runs: list[ShellRun] = field(default_factory=list)
    fail_folders: set[str] = field(default_factory=set)

    def __call__(self, request: CommandRequest, ctx) -> CommandResult:
        if request.document_name != "AWS-RunShellScript":
            return CommandResult("Failed", f"unexpected document {request.document_name}", 1)
        text = "\n".join(request.parameters.get("commands", []))
        got, commit = _GET_OBJECT.search(text), _COMMIT.search(text)
        loop = _LOOP.search(text) or _ENTRY.search(text)
        if not (got and commit and loop):
            return CommandResult("Failed", "commands do not fetch, verify and run a pinned bundle", 1)
        bucket, key, version = got.groups()
        try:
            obj = self.world.client("s3").get_object(Bucket=bucket, Key=key, VersionId=version)
        except Exception as err:  # noqa: BLE001 - the shell would print the CLI's error and exit 1
            return CommandResult("Failed", f"get-object: {err}", 1)
        if obj["Metadata"].get("commit") != commit.group(1):
            return CommandResult("Failed", f"bundle version {version} is not commit {commit.group(1)}", 1)
        folder = loop.group(1)
        if folder == "scripts":
            refused = self._memory_capture_refusal(bucket, text)
            if refused:
                return CommandResult("Failed", refused, 1)
        with tarfile.open(fileobj=io.BytesIO(obj["Body"].read()), mode="r:gz") as tar:
            present = set(tar.getnames())
            if loop.re is _ENTRY:
                # validate.sh runs the checks it lists; each must be in the bundle.
                entry = tar.extractfile(f"{folder}/validate.sh")
                listed = _CHECKS.search(entry.read().decode()) if entry else None
                names = [f"{folder}/{n}" for n in (listed.group(1).split() if listed else ())]
                missing = [n for n in names if n not in present]
                if missing:
                    return CommandResult("Failed", f"validate.sh lists checks missing from the bundle: {missing}", 1)
            else:
                names = sorted(n for n in present if re.fullmatch(rf"{folder}/\d\d-[^/]*\.sh", n))
        if not names:
            return CommandResult("Failed", f"bundle has no {folder}/NN-*.sh scripts", 1)
        self.runs.append(ShellRun(request.step, request.instance_ids, tuple(names)))
        if folder in self.fail_folders:
            return CommandResult("Failed", f"{names[-1]} exited 1", 1)
        return CommandResult("Success", "\n".join(f"ran {n}" for n in names))

    def _memory_capture_refusal(self, bucket: str, text: str) -> str | None:
        """What 55-memory-capture.sh would say: no pins, no staged object, or a digest that is not the pin."""
        obj, pin = _AVML_OBJECT.search(text), _AVML_SHA256.search(text)
        if not (obj and pin):
            return "55-memory-capture.sh: BAKEHOUSE_AVML_VERSION is required: the pinned AVML release"
        try:
            body = self.world.client("s3").get_object(Bucket=bucket, Key=obj.group(1), VersionId=obj.group(2))["Body"].read()
        except Exception as err:  # noqa: BLE001 - the CLI would print the error and exit 1
            return f"get-object {obj.group(1)}: {err}"
        got = hashlib.sha256(body).hexdigest()
        return None if got == pin.group(1) else f"AVML has SHA-256 {got}, expected {pin.group(1)}; not installed"
