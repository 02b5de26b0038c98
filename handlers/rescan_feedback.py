"""The rescan's CVE feedback loop and prod marking: what follows from a scan verdict or a sighting.

- quarantine: label the AMI's version in /bakehouse/images/<family>/history (SSM keeps versions
  immutable; a label marks one without rewriting anything), tell the security topic which CVEs,
  start the factory Pipeline once to rebuild the family from the latest base, tag the AMI vulnerable.
- retire_replaced: a quarantined AMI is deprecated once its family's `latest` points elsewhere.
- mark_prod: AMIs seen running in the prod account carry bakehouse:ran-in=prod, which the lifecycle
  honours for the retention period, counted from bakehouse:prod-last-seen.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from handlers.common import TAG_FAMILY, TAG_RAN_IN, dict_to_tags, tags_to_dict

HISTORY_PARAMETER = "/bakehouse/images/{family}/history"  # as handlers/publish.py writes it
LATEST_PARAMETER = "/bakehouse/images/{family}/latest"
TAG_VULNERABLE = "bakehouse:vulnerable"
TAG_PROD_LAST_SEEN = "bakehouse:prod-last-seen"
TAG_REBUILD = "bakehouse:rebuild-execution"
# EC2 refuses a deprecation time in the past; a minute ahead takes effect at once in practice.
DEPRECATION_LEAD = timedelta(minutes=1)


@dataclass(frozen=True)
class Quarantine:
    image_id: str
    family: str | None
    cves: tuple[str, ...]
    rebuild_execution: str | None


def quarantine_label(image_id: str) -> str:
    # A label sits on one version at a time per parameter, hence one label per AMI.
    return f"quarantined-{image_id}"


def _history_versions(ssm, family: str) -> list[dict[str, Any]]:
    try:
        return [p for page in ssm.get_paginator("get_parameter_history").paginate(
            Name=HISTORY_PARAMETER.format(family=family)) for p in page["Parameters"]]
    except ClientError as err:
        if err.response["Error"]["Code"] == "ParameterNotFound":
            return []
        raise


def quarantine(ec2, ssm, sns, automation, *, image_id: str, tags: dict[str, str], cves: Iterable[str],
               topic_arn: str, threshold: str, pipeline_document: str, pipeline_role_arn: str,
               in_use: Iterable[str] = ()) -> Quarantine:
    family = tags.get(TAG_FAMILY)
    label = quarantine_label(image_id)
    if family:
        for version in _history_versions(ssm, family):
            if version["Value"] == image_id and label not in version.get("Labels", []):
                ssm.label_parameter_version(Name=HISTORY_PARAMETER.format(family=family),
                                            ParameterVersion=version["Version"], Labels=[label])
    cve_list = tuple(sorted(set(cves)))
    sns.publish(TopicArn=topic_arn, Subject=f"Bakehouse: {image_id} is vulnerable"[:100],
                Message=json.dumps({"image_id": image_id, "family": family, "threshold": threshold,
                                    "cves": list(cve_list), "in_use": sorted(in_use)}, indent=1))
    new_tags = {TAG_VULNERABLE: "true"}
    execution = tags.get(TAG_REBUILD)
    if family and not execution:
        execution = automation.start_automation_execution(
            DocumentName=pipeline_document,
            Parameters={"Family": [family], "AutomationAssumeRole": [pipeline_role_arn]},
        )["AutomationExecutionId"]
        # Tagged at once, so a retry after a later failure does not start a second rebuild.
        ec2.create_tags(Resources=[image_id], Tags=dict_to_tags({TAG_REBUILD: execution}))
    # Last: the vulnerable tag takes the AMI out of future rescans, so it must follow everything else.
    ec2.create_tags(Resources=[image_id], Tags=dict_to_tags(new_tags))
    return Quarantine(image_id, family, cve_list, execution)


def _vulnerable_images(ec2) -> Iterator[dict[str, Any]]:
    pages = ec2.get_paginator("describe_images").paginate(
        Owners=["self"], Filters=[{"Name": f"tag:{TAG_VULNERABLE}", "Values": ["true"]}])
    for page in pages:
        yield from page["Images"]


def retire_replaced(ec2, ssm, now: datetime) -> list[str]:
    """Deprecate quarantined AMIs whose family has published a replacement since."""
    deprecated = []
    for image in _vulnerable_images(ec2):
        family = tags_to_dict(image.get("Tags")).get(TAG_FAMILY)
        if image.get("DeprecationTime") or not family:
            continue
        try:
            latest = ssm.get_parameter(Name=LATEST_PARAMETER.format(family=family))["Parameter"]["Value"]
        except ClientError as err:
            if err.response["Error"]["Code"] != "ParameterNotFound":
                raise
            continue
        if latest != image["ImageId"]:
            ec2.enable_image_deprecation(ImageId=image["ImageId"], DeprecateAt=now + DEPRECATION_LEAD)
            deprecated.append(image["ImageId"])
    return deprecated


def mark_prod(ec2, image_id: str, tags: dict[str, str], today: str) -> bool:
    if tags.get(TAG_RAN_IN) == "prod" and tags.get(TAG_PROD_LAST_SEEN) == today:
        return False
    ec2.create_tags(Resources=[image_id], Tags=dict_to_tags({TAG_RAN_IN: "prod", TAG_PROD_LAST_SEEN: today}))
    return True
