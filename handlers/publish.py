"""Publish an approved AMI: /bakehouse/images/<family>/latest, a versioned history, an approval tag.

History is the parameter /bakehouse/images/<family>/history, one parameter *version* per approval
(value = the AMI id). Parameter versions are what SSM already keeps immutable, timestamped and
attributed (LastModifiedUser), readable with get_parameter_history, and labelable - the operations
rescan labels a version to mark it quarantined - so no list has to be parsed and rewritten under a
4 KB value limit, and a concurrent writer cannot lose an entry. SSM keeps the last 100 versions.

Replay-safe: each of the three writes is skipped when already in place, so a retried or resumed
step changes nothing it already did; re-publishing the current image adds no history entry, while
approving an older image again is a new approval and is recorded as such.

Binding: only an image whose Inspector gate passed (bakehouse:inspector-verdict=PASS) is published;
`latest` only ever moves to a newer image (by creation date), so two approvals of one family that
race leave it on the newest whichever writes last (each re-reads after its write and corrects a
lost race); moving it back is the rescan quarantine's job. The approval tag is written last: it is
the record that publish finished, and distribution (handlers/distribute.py) refuses an image that
lacks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from handlers.common import AMI_ID, BakehouseError, EventReader, client, tags_to_dict
from handlers.contract import (
    FAMILY,
    IMAGE_HISTORY_PARAMETER,
    IMAGE_PARAMETER,
    TAG_APPROVED,
    TAG_APPROVED_BY,
    TAG_VERDICT,
    TAG_VULNERABLE,
)

# Names from handlers/contract.py; the marks that forbid publishing are TAG_VERDICT (a failed Inspector
# gate, written by handlers/inspector_summary.py) and TAG_VULNERABLE (a rescan's quarantine).


class ImageNotPublishable(BakehouseError):
    """The AMI does not exist, is not `available`, failed validation or is quarantined."""


@dataclass(frozen=True)
class PublishRequest:
    image_id: str
    family: str
    approved_by: str

    @classmethod
    def parse(cls, event: Any) -> PublishRequest:
        read = EventReader("publish", event)
        request = cls(
            image_id=read.string("ImageId", AMI_ID),
            family=read.string("Family", FAMILY),
            approved_by=read.string("ApprovedBy", default="automation"),
        )
        read.done()
        return request


@dataclass(frozen=True)
class PublishResult:
    image_id: str
    family: str
    latest_parameter: str
    history_parameter: str
    latest_version: int
    history_version: int
    changed: tuple[str, ...]  # which writes this run made: "tag", "history", "latest"

    def as_dict(self) -> dict[str, Any]:
        """The step's output; PascalCase like every SSM output selector ($.Payload.LatestParameter)."""
        return {
            "ImageId": self.image_id,
            "Family": self.family,
            "LatestParameter": self.latest_parameter,
            "HistoryParameter": self.history_parameter,
            "LatestVersion": self.latest_version,
            "HistoryVersion": self.history_version,
            "Changed": list(self.changed),
        }


def _current(ssm: Any, name: str) -> tuple[str | None, int]:
    try:
        parameter = ssm.get_parameter(Name=name)["Parameter"]
    except ClientError as err:
        if err.response["Error"]["Code"] == "ParameterNotFound":
            return None, 0
        raise
    return parameter["Value"], parameter["Version"]


def _point_at(ssm: Any, name: str, image_id: str, label: str, changed: list[str], description: str) -> int:
    """Write `image_id` to the parameter unless it already holds it (a replay adds no version);
    returns the version that holds it and records `label` in `changed` when it wrote."""
    value, version = _current(ssm, name)
    if value == image_id:
        return version
    written: int = ssm.put_parameter(
        Name=name, Value=image_id, Type="String", DataType="aws:ec2:image", Overwrite=True, Description=description
    )["Version"]
    changed.append(label)
    return written


def _created(ec2: Any, image_id: str | None) -> str:
    """The image's CreationDate (ISO 8601, so it sorts as text); '' for no image or one gone."""
    if not image_id:
        return ""
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as err:
        if err.response["Error"]["Code"].startswith("InvalidAMIID"):
            return ""
        raise
    return images[0].get("CreationDate", "") if images else ""


def _approved_at(ssm: Any, family: str, image_id: str) -> int:
    """The last history version that approved image_id (0 if none): the order of approvals."""
    return max((version for version, ami, _ in history(ssm, family) if ami == image_id), default=0)


def _point_latest(
    ssm: Any,
    ec2: Any,
    name: str,
    image_id: str,
    rank: tuple[str, int],
    family: str,
    changed: list[str],
    description: str,
    attempts: int = 5,
) -> int:
    """Point `latest` at image_id unless it names a newer image: newer by creation date, then (images
    created in the same second) by the later approval, then by id, so two publishers agree on one winner.
    SSM has no conditional put, so after writing, read again: a concurrent publisher of an older image
    that wrote after us is undone here."""
    for _ in range(attempts):
        value, version = _current(ssm, name)
        if value == image_id:
            return version
        if value is not None and (_created(ec2, value), _approved_at(ssm, family, value), value) > (*rank, image_id):
            return version  # a newer approval already holds latest; this one stays in the history only
        ssm.put_parameter(
            Name=name, Value=image_id, Type="String", DataType="aws:ec2:image", Overwrite=True, Description=description
        )
        if "latest" not in changed:
            changed.append("latest")
    raise PublishRaced(f"{name}: still contested after {attempts} writes of {image_id}")


class PublishRaced(BakehouseError):
    """`latest` kept changing under this publish; the message names the parameter."""


def publish(request: PublishRequest, ec2: Any, ssm: Any) -> PublishResult:
    """Append the AMI to the history, point `latest` at it unless a newer image holds it, then tag it
    approved (each only if needed; the tag last, as the record that publish finished)."""
    try:
        images = ec2.describe_images(ImageIds=[request.image_id])["Images"]
    except ClientError as err:
        if err.response["Error"]["Code"].startswith("InvalidAMIID"):
            raise ImageNotPublishable(f"{request.image_id}: no such image") from err
        raise
    if not images or images[0].get("State") != "available":
        state = images[0].get("State") if images else "missing"
        raise ImageNotPublishable(f"{request.image_id}: state is {state}, expected available")

    tags = tags_to_dict(images[0].get("Tags"))
    if tags.get(TAG_VERDICT) != "PASS":
        raise ImageNotPublishable(
            f"{request.image_id}: Inspector validation did not pass "
            f"({TAG_VERDICT}={tags.get(TAG_VERDICT, 'missing')}, expected PASS)"
        )
    if tags.get(TAG_VULNERABLE) == "true":
        raise ImageNotPublishable(f"{request.image_id}: quarantined by a rescan ({TAG_VULNERABLE}=true)")

    changed: list[str] = []
    history = IMAGE_HISTORY_PARAMETER.format(family=request.family)
    history_version = _point_at(
        ssm, history, request.image_id, "history", changed, f"Approved {request.family} images, one version per approval"
    )
    latest = IMAGE_PARAMETER.format(family=request.family)
    rank = (_created(ec2, request.image_id), _approved_at(ssm, request.family, request.image_id))
    latest_version = _point_latest(
        ssm, ec2, latest, request.image_id, rank, request.family, changed, f"Latest approved {request.family} image"
    )

    if tags.get(TAG_APPROVED) != "true":
        ec2.create_tags(
            Resources=[request.image_id],
            Tags=[{"Key": TAG_APPROVED, "Value": "true"}, {"Key": TAG_APPROVED_BY, "Value": request.approved_by}],
        )
        changed.append("tag")

    return PublishResult(request.image_id, request.family, latest, history, latest_version, history_version, tuple(changed))


def history(ssm: Any, family: str) -> list[tuple[int, str, tuple[str, ...]]]:
    """(version, AMI id, labels) of every approval still kept, oldest first."""
    name = IMAGE_HISTORY_PARAMETER.format(family=family)
    out = []
    try:
        for page in ssm.get_paginator("get_parameter_history").paginate(Name=name):
            out += [(p["Version"], p["Value"], tuple(p.get("Labels", ()))) for p in page["Parameters"]]
    except ClientError as err:
        if err.response["Error"]["Code"] != "ParameterNotFound":
            raise
    return sorted(out)


def handler(events: dict[str, Any], context: Any) -> dict[str, Any]:
    """SSM aws:executeScript entry point (InputPayload arrives as `events`).

    Event: ImageId, Family, ApprovedBy (optional). Output: ImageId, Family, LatestParameter,
    HistoryParameter, LatestVersion, HistoryVersion, Changed (the writes this run made).
    """
    request = PublishRequest.parse(events)
    return publish(request, ec2=client("ec2"), ssm=client("ssm")).as_dict()
