"""Evidence of the isolation playbook in the evidence bucket: the first observation, the manifest.

Both are written once per finding and instance: a replay finds them and leaves them (the bucket is
versioned and under object lock, and the first observation is the one that counts).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError


@dataclass
class Step:
    name: str
    changed: bool
    detail: dict[str, Any] = field(default_factory=dict)


def _object_exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as err:
        if err.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def record_state(s3, request: Any, instance: dict[str, Any]) -> Step:
    # The first observation is the evidence; a replay sees an already-altered instance, so it must
    # not overwrite (the bucket is versioned and under object lock anyway).
    key = request.prefix + "instance-state.json"
    if _object_exists(s3, request.evidence_bucket, key):
        return Step("record-state", False, {"key": key})
    body = json.dumps(instance, default=str, sort_keys=True, indent=2).encode()
    s3.put_object(Bucket=request.evidence_bucket, Key=key, Body=body, ContentType="application/json")
    return Step("record-state", True, {"key": key})


def _sha256(s3, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def publish_manifest(s3, sns, request: Any, observed: dict[str, Any]) -> Step:
    """Hash every evidence object, store the manifest beside them and send it to the security topic."""
    key = request.prefix + "manifest.json"
    if _object_exists(s3, request.evidence_bucket, key):
        existing = json.loads(s3.get_object(Bucket=request.evidence_bucket, Key=key)["Body"].read())
        return Step("publish-manifest", False, {"key": key, "objects": len(existing["objects"])})
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=request.evidence_bucket, Prefix=request.prefix):
        for obj in page.get("Contents", []):
            if obj["Key"] != key:
                objects.append({"key": obj["Key"], "size": obj["Size"],
                                "sha256": _sha256(s3, request.evidence_bucket, obj["Key"])})
    manifest = {
        "finding_id": request.finding_id,
        "instance_id": request.instance_id,
        "bucket": request.evidence_bucket,
        "objects": objects,
        "observed": observed,
    }
    body = json.dumps(manifest, sort_keys=True, indent=2, default=str)
    s3.put_object(Bucket=request.evidence_bucket, Key=key, Body=body.encode(), ContentType="application/json")
    sns.publish(
        TopicArn=request.topic_arn,
        Subject=f"Bakehouse isolated {request.instance_id}"[:100],
        Message=body,
    )
    return Step("publish-manifest", True, {"key": key, "objects": len(objects)})
