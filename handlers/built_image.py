"""Which image Bakehouse-BuildImage reuses or has just built: the newest available, not vulnerable image
tagged with the family, base and commit, and with the rebuild token when one is given.

A forced rebuild (handlers/base_image_check.py) builds the same base and commit again to pick up OS
updates, so several images may share those tags; EC2 returns DescribeImages results in no documented
order, hence the newest by CreationDate is chosen here rather than `$.Images[0]` in the document. With a
token only the image built for that token counts, so a new token builds and a replay of it reuses.
"""

from __future__ import annotations

import re
from typing import Any

from .common import TAG_COMMIT, TAG_FAMILY, TAG_SOURCE_AMI, AwsClient, EventReader, MalformedEvent, client
from .contract import AMI_ID, FAMILY, TAG_VULNERABLE

TAG_REBUILD_TOKEN = "bakehouse:rebuild-token"
TOKEN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class NoBuiltImage(Exception):
    """Nothing to reuse: the build runs (in CheckForExistingImage, a non-critical step, that is the point)."""


def newest_built_image(ec2: AwsClient, family: str, base_ami: str, commit: str, rebuild_token: str = "") -> str:
    filters = [
        {"Name": f"tag:{TAG_FAMILY}", "Values": [family]},
        {"Name": f"tag:{TAG_SOURCE_AMI}", "Values": [base_ami]},
        {"Name": f"tag:{TAG_COMMIT}", "Values": [commit]},
        {"Name": f"tag:{TAG_VULNERABLE}", "Values": ["false"]},
        {"Name": "state", "Values": ["available"]},
    ]
    if rebuild_token:
        filters.append({"Name": f"tag:{TAG_REBUILD_TOKEN}", "Values": [rebuild_token]})
    images = [
        i for page in ec2.get_paginator("describe_images").paginate(Owners=["self"], Filters=filters) for i in page["Images"]
    ]
    if not images:
        raise NoBuiltImage(
            f"no available image of {family} from {base_ami} at {commit}"
            + (f" for rebuild token {rebuild_token}" if rebuild_token else "")
        )
    newest: str = max(images, key=lambda i: (i.get("CreationDate", ""), i["ImageId"]))["ImageId"]
    return newest


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """aws:executeScript entry. Event: Family, BaseImageId, ScriptsCommit, RebuildToken ('' = any)."""
    read = EventReader("built_image", event)
    family = read.string("Family", FAMILY)
    base = read.string("BaseImageId", AMI_ID)
    commit = read.string("ScriptsCommit", re.compile(r"[0-9a-f]{7,40}"))
    token = event.get("RebuildToken", "") if isinstance(event, dict) else ""
    if not isinstance(token, str) or (token and not TOKEN.fullmatch(token)):
        read.problems.append(f"RebuildToken is {token!r}, expected '' or a UUID")
    read.done()
    return {"ImageId": newest_built_image(client("ec2"), family, base, commit, token)}


__all__ = ["MalformedEvent", "NoBuiltImage", "TAG_REBUILD_TOKEN", "handler", "newest_built_image"]
