"""Evidence of the isolation playbook: the first observation, the volume snapshots and their copies
for the security account, the manifest.

Each is written once per finding and instance: a replay finds them and leaves them (the bucket is
versioned and under object lock, and the first observation is the one that counts).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from handlers.common import AwsClient, BakehouseError, dict_to_tags
from handlers.contract import TAG_COPY_OF, TAG_FINDING, TAG_INSTANCE

STATE_RECORD = "instance-state.json"
MANIFEST = "manifest.json"


@dataclass
class Step:
    name: str
    changed: bool
    detail: dict[str, Any] = field(default_factory=dict)
    failed: bool = False


class EvidenceCopyPending(BakehouseError):
    def __init__(self, pending: list[str]):
        super().__init__(f"snapshots {', '.join(pending)} are not complete yet; a later run copies and shares them")


def _object_exists(s3: AwsClient, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as err:
        if err.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def record_state(s3: AwsClient, request: Any, instance: dict[str, Any]) -> Step:
    # The first observation is the evidence; a replay sees an already-altered instance, so it must
    # not overwrite (the bucket is versioned and under object lock anyway).
    key = request.prefix + STATE_RECORD
    if _object_exists(s3, request.evidence_bucket, key):
        return Step("record-state", False, {"key": key})
    body = json.dumps(instance, default=str, sort_keys=True, indent=2).encode()
    s3.put_object(Bucket=request.evidence_bucket, Key=key, Body=body, ContentType="application/json")
    return Step("record-state", True, {"key": key})


def _evidence_snapshots(ec2: AwsClient, request: Any) -> list[dict[str, Any]]:
    return [
        s
        for page in ec2.get_paginator("describe_snapshots").paginate(
            OwnerIds=["self"],
            Filters=[
                {"Name": f"tag:{TAG_FINDING}", "Values": [request.finding_id]},
                {"Name": f"tag:{TAG_INSTANCE}", "Values": [request.instance_id]},
            ],
        )
        for s in page["Snapshots"]
    ]


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def snapshot_volumes(ec2: AwsClient, request: Any, instance: dict[str, Any]) -> Step:
    volumes = [m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings", []) if "Ebs" in m]
    existing = {s["VolumeId"]: s["SnapshotId"] for s in _evidence_snapshots(ec2, request) if TAG_COPY_OF not in _tags(s)}
    taken, snapshots = [], {}
    for volume_id in volumes:
        if volume_id in existing:
            snapshots[volume_id] = existing[volume_id]
            continue
        snapshot = ec2.create_snapshot(
            VolumeId=volume_id,
            Description=f"Bakehouse evidence: {request.instance_id} {volume_id} finding {request.finding_id}"[:255],
            TagSpecifications=[
                {
                    "ResourceType": "snapshot",
                    "Tags": dict_to_tags({TAG_FINDING: request.finding_id, TAG_INSTANCE: request.instance_id}),
                }
            ],
        )
        snapshots[volume_id] = snapshot["SnapshotId"]
        taken.append(snapshot["SnapshotId"])
    return Step("snapshot-volumes", bool(taken), {"snapshots": snapshots})


def _key_region(key_arn: str) -> str:
    return key_arn.split(":")[3]


def share_snapshots(clients: Any, request: Any, sleep: Callable[[float], None], wait_seconds: float = 480) -> Step:
    """Each evidence snapshot copied under the security account's evidence key (in that key's region)
    and the copy shared with the security account, which copies it into its own custody: the workload
    account's key and admins can no longer hold the evidence hostage.

    EBS copies only completed snapshots, so this waits for them up to `wait_seconds`, then fails
    naming the pending ones; a later run (the document retries the step) picks up where it stopped."""
    if not (request.security_account_id and request.evidence_key_arn):
        return Step("share-snapshots", False, {"reason": "no security account or evidence key configured"})
    region = _key_region(request.evidence_key_arn)
    ec2 = clients.ec2_for(request.region)
    deadline = time.monotonic() + wait_seconds
    originals = [s for s in _evidence_snapshots(ec2, request) if TAG_COPY_OF not in _tags(s)]
    copies_ec2 = clients.ec2_for(region)
    copies = {_tags(s)[TAG_COPY_OF]: s for s in _evidence_snapshots(copies_ec2, request) if TAG_COPY_OF in _tags(s)}
    changed, pending, shared = False, [], {}
    for original in originals:
        snapshot_id = original["SnapshotId"]
        if snapshot_id not in copies:
            while original["State"] != "completed" and time.monotonic() < deadline:
                sleep(15)
                original = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
            if original["State"] != "completed":
                pending.append(snapshot_id)
                continue
            copy_id = copies_ec2.copy_snapshot(
                SourceSnapshotId=snapshot_id,
                SourceRegion=request.region,
                Encrypted=True,
                KmsKeyId=request.evidence_key_arn,
                Description=f"Bakehouse evidence copy of {snapshot_id} ({request.instance_id}, {request.finding_id})"[:255],
                TagSpecifications=[
                    {
                        "ResourceType": "snapshot",
                        "Tags": dict_to_tags(
                            {TAG_FINDING: request.finding_id, TAG_INSTANCE: request.instance_id, TAG_COPY_OF: snapshot_id}
                        ),
                    }
                ],
            )["SnapshotId"]
            copies[snapshot_id] = copies_ec2.describe_snapshots(SnapshotIds=[copy_id])["Snapshots"][0]
            changed = True
        copy = copies[snapshot_id]
        while copy["State"] != "completed" and time.monotonic() < deadline:
            sleep(15)
            copy = copies_ec2.describe_snapshots(SnapshotIds=[copy["SnapshotId"]])["Snapshots"][0]
        if copy["State"] != "completed":
            pending.append(copy["SnapshotId"])
            continue
        permissions = copies_ec2.describe_snapshot_attribute(SnapshotId=copy["SnapshotId"], Attribute="createVolumePermission")[
            "CreateVolumePermissions"
        ]
        if request.security_account_id not in [p.get("UserId") for p in permissions]:
            copies_ec2.modify_snapshot_attribute(
                SnapshotId=copy["SnapshotId"],
                Attribute="createVolumePermission",
                OperationType="add",
                UserIds=[request.security_account_id],
            )
            changed = True
        shared[snapshot_id] = copy["SnapshotId"]
    if pending:
        raise EvidenceCopyPending(pending)
    return Step("share-snapshots", changed, {"region": region, "copies": shared, "shared_with": request.security_account_id})


def _sha256(s3: AwsClient, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def publish_manifest(s3: AwsClient, sns: AwsClient, request: Any, observed: dict[str, Any]) -> Step:
    """Hash every evidence object, store the manifest beside them and send it to the security topic.
    The manifest names the state record, the memory image and the snapshots (originals and the copies
    shared with the security account) whether or not each exists: a missing one is evidence too."""
    key = request.prefix + MANIFEST
    if _object_exists(s3, request.evidence_bucket, key):
        existing = json.loads(s3.get_object(Bucket=request.evidence_bucket, Key=key)["Body"].read())
        return Step("publish-manifest", False, {"key": key, "objects": len(existing["objects"])})
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=request.evidence_bucket, Prefix=request.prefix):
        for obj in page.get("Contents", []):
            if obj["Key"] != key:
                objects.append(
                    {"key": obj["Key"], "size": obj["Size"], "sha256": _sha256(s3, request.evidence_bucket, obj["Key"])}
                )
    keys = {o["key"] for o in objects}
    memory = f"{request.prefix}memory.lime.compressed"
    manifest = {
        "finding_id": request.finding_id,
        "instance_id": request.instance_id,
        "instance_arn": request.instance_arn,
        "bucket": request.evidence_bucket,
        "state_record": request.prefix + STATE_RECORD if request.prefix + STATE_RECORD in keys else None,
        "memory_image": memory if memory in keys else None,
        "snapshots": observed.get("snapshots", {}),
        "evidence_copies": observed.get("evidence_copies", {}),
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
