"""Removes what a failed factory run created, found by the execution tag it carried from creation.

Build and validation instances, and the build's image, are tagged with the run's execution id in the
request that creates them (TagSpecifications), so a step that fails after creating something, even
one whose response never arrived, leaves a resource this finds. Nothing is looked up by a step's
output. Idempotent: a second run finds only terminated instances and no image, and does nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .common import TAG_BUILD_EXECUTION, AwsClient, EventReader, client
from .contract import TAG_VALIDATION_EXECUTION

# The tags a failure path may clean up by: images only for the build (validation registers none).
CLEANUP_TAGS = {TAG_BUILD_EXECUTION: True, TAG_VALIDATION_EXECUTION: False}
EXECUTION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Every state an instance still costs or runs in; shutting-down is already on its way out.
LIVE_STATES = ("pending", "running", "stopping", "stopped")


@dataclass(frozen=True)
class CleanupPlan:
    tag_key: str
    execution_id: str
    instances: tuple[str, ...]
    images: tuple[str, ...]
    snapshots: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "Tag": f"{self.tag_key}={self.execution_id}",
            "TerminatedInstances": list(self.instances),
            "DeregisteredImages": list(self.images),
            "DeletedSnapshots": list(self.snapshots),
        }


def plan(ec2: AwsClient, tag_key: str, execution_id: str) -> CleanupPlan:
    """What the run left behind: its live instances and (for a build) every image it registered."""
    by_tag = {"Name": f"tag:{tag_key}", "Values": [execution_id]}
    instances = [
        i["InstanceId"]
        for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[by_tag, {"Name": "instance-state-name", "Values": list(LIVE_STATES)}]
        )
        for r in page["Reservations"]
        for i in r["Instances"]
    ]
    images: list[str] = []
    snapshots: list[str] = []
    if CLEANUP_TAGS[tag_key]:
        for image in ec2.describe_images(Owners=["self"], Filters=[by_tag])["Images"]:
            images.append(image["ImageId"])
            snapshots += [
                m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", []) if m.get("Ebs", {}).get("SnapshotId")
            ]
    return CleanupPlan(tag_key, execution_id, tuple(sorted(instances)), tuple(sorted(images)), tuple(sorted(snapshots)))


def execute(cleanup: CleanupPlan, ec2: AwsClient) -> dict[str, Any]:
    """Terminates the instances, deregisters the images, then deletes their snapshots (a snapshot in
    use by a registered image cannot be deleted)."""
    if cleanup.instances:
        ec2.terminate_instances(InstanceIds=list(cleanup.instances))
    for image in cleanup.images:
        ec2.deregister_image(ImageId=image)
    for snapshot in cleanup.snapshots:
        ec2.delete_snapshot(SnapshotId=snapshot)
    return cleanup.as_dict()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """aws:executeScript entry. Event: Tag (bakehouse:build-execution | bakehouse:validation-execution),
    ExecutionId (the run's automation:EXECUTION_ID)."""
    read = EventReader("factory_cleanup", event)
    tag_key = read.string("Tag", re.compile("|".join(map(re.escape, CLEANUP_TAGS))))
    execution_id = read.string("ExecutionId", EXECUTION_ID)
    read.done()
    ec2 = client("ec2")
    return execute(plan(ec2, tag_key, execution_id), ec2)
