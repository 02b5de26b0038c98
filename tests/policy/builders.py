"""Known-good and known-bad resources, recorded the way the mock runtime records a stack's program."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from policy.support import WORKLOAD_ROOT_TYPE
from tools.mockrun import Declared, StackRun

DEFAULT_TAGS = {"bakehouse:stack": "{stack}", "bakehouse:env": "{stack}", "bakehouse:managed-by": "pulumi"}


def provider_urn(stack: str) -> str:
    return f"urn:pulumi:{stack}::bakehouse::pulumi:providers:aws::{stack}-account"


def provider(stack: str, tags: Mapping[str, str] | None = None) -> Declared:
    tags = {k: v.format(stack=stack) for k, v in DEFAULT_TAGS.items()} if tags is None else dict(tags)
    return Declared(
        urn=provider_urn(stack),
        type="pulumi:providers:aws",
        name=f"{stack}-account",
        inputs={
            "region": "eu-west-1",
            "allowedAccountIds": ["444444444444"],
            "defaultTags": {"tags": tags},
            "assumeRoles": [{"roleArn": "arn:aws:iam::444444444444:role/BakehouseDeploy", "sessionName": stack}],
        },
        custom=True,
        provider=None,
        parent=None,
    )


def res(
    stack: str,
    type_token: str,
    name: str,
    inputs: Mapping[str, Any] | None = None,
    *,
    default_provider: bool = False,
    parent: str | None = None,
) -> Declared:
    return Declared(
        urn=f"urn:pulumi:{stack}::bakehouse::{type_token}::{name}",
        type=type_token,
        name=name,
        inputs=dict(inputs or {}),
        custom=True,
        provider=None if default_provider else f"{provider_urn(stack)}::{stack}-account-id",
        parent=parent,
    )


# Fixture stacks with these names stand for workloads: their runs declare the workload root component,
# which is how the pack recognises a workload stack (never by its name).
WORKLOAD_FIXTURE_STACKS = ("dev", "uat", "prod", "staging")


def workload_root(stack: str) -> Declared:
    return Declared(
        urn=f"urn:pulumi:{stack}::bakehouse::{WORKLOAD_ROOT_TYPE}::{stack}",
        type=WORKLOAD_ROOT_TYPE,
        name=stack,
        inputs={},
        custom=False,
        provider=None,
        parent=None,
    )


def run_of(stack: str, *resources: Declared, tags: Mapping[str, str] | None = None, workload: bool | None = None) -> StackRun:
    workload = stack in WORKLOAD_FIXTURE_STACKS if workload is None else workload
    return StackRun(stack, resources=[provider(stack, tags), *([workload_root(stack)] if workload else []), *resources])


def doc(*statements: Mapping[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def tls_policy(bucket_arn: str) -> str:
    return doc(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["s3:*"],
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )


def bucket_set(
    stack: str,
    name: str,
    *,
    algorithm: str = "aws:kms",
    key: str | None = "arn:aws:kms:eu-west-1:1:key/k",
    purpose: str = "data",
    versioning: str | None = "Enabled",
    block: bool | None = True,
    policy: str | None = "tls",
    fixed_name: str | None = None,
) -> list[Declared]:
    """A bucket and its companions the way SecureBucket declares them; each knob breaks one part."""
    bucket_id = f"{name}-id"
    found = [
        res(
            stack,
            "aws:s3/bucket:Bucket",
            name,
            {"tags": {"bakehouse:purpose": purpose}, **({"bucket": fixed_name} if fixed_name else {})},
        )
    ]
    default: dict[str, Any] = {"sseAlgorithm": algorithm}
    if key:
        default["kmsMasterKeyId"] = key
    found.append(
        res(
            stack,
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            f"{name}-encryption",
            {"bucket": bucket_id, "rules": [{"applyServerSideEncryptionByDefault": default}]},
        )
    )
    if versioning is not None:
        found.append(
            res(
                stack,
                "aws:s3/bucketVersioning:BucketVersioning",
                f"{name}-versioning",
                {"bucket": bucket_id, "versioningConfiguration": {"status": versioning}},
            )
        )
    if block is not None:
        flags = {f: True for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")}
        if not block:
            flags["restrictPublicBuckets"] = False
        found.append(
            res(
                stack,
                "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
                f"{name}-public-access",
                {"bucket": bucket_id, **flags},
            )
        )
    if policy is not None:
        text = tls_policy(f"arn:aws:s3:::{name}") if policy == "tls" else policy
        found.append(res(stack, "aws:s3/bucketPolicy:BucketPolicy", f"{name}-policy", {"bucket": bucket_id, "policy": text}))
    return found
