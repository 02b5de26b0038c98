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

from handlers.common import TAG_FAMILY, TAG_RAN_IN, BakehouseError, dict_to_tags, tags_to_dict

HISTORY_PARAMETER = "/bakehouse/images/{family}/history"  # as handlers/publish.py writes it
LATEST_PARAMETER = "/bakehouse/images/{family}/latest"
TAG_VULNERABLE = "bakehouse:vulnerable"
TAG_PROD_LAST_SEEN = "bakehouse:prod-last-seen"
TAG_REBUILD = "bakehouse:rebuild-execution"
# The factory's settings (components/image_factory.py writes them): the Pipeline's standing parameters.
SETTINGS_PARAMETER = "/bakehouse/factory/settings"
DEFAULT_BUNDLE_KEY = "provisioning/bundle.tar.gz"
# Family base -> the public parameter the Pipeline's BaseImageParameter allows for it.
BASE_IMAGE_PARAMETERS = {
    "al2023": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "ubuntu2404": "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
}
# EC2 refuses a deprecation time in the past; a minute ahead takes effect at once in practice.
DEPRECATION_LEAD = timedelta(minutes=1)


class RebuildNotPossible(BakehouseError):
    """The Pipeline cannot be started: its settings or the scripts bundle are missing or incomplete."""


def rebuild_parameters(ssm, s3, family: str, pipeline_role_arn: str,
                       settings_parameter: str = SETTINGS_PARAMETER) -> dict[str, list[str]]:
    """Everything the Pipeline requires: the factory's standing parameters, the family's base, and the
    scripts bundle as it is now (its object version and the commit it was built from)."""
    settings = json.loads(ssm.get_parameter(Name=settings_parameter)["Parameter"]["Value"])
    params = dict(settings.get("pipelineParameters") or {})
    base = (settings.get("families") or {}).get(family)
    if base not in BASE_IMAGE_PARAMETERS or "ScriptsBucket" not in params:
        raise RebuildNotPossible(f"{family}: {settings_parameter} names no base image or scripts bucket for it")
    bucket, key = params["ScriptsBucket"], params.get("ScriptsKey", DEFAULT_BUNDLE_KEY)
    try:
        bundle = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as err:
        raise RebuildNotPossible(f"{family}: scripts bundle s3://{bucket}/{key} unreadable "
                                 f"({err.response['Error']['Code']})") from err
    commit = (bundle.get("Metadata") or {}).get("commit")
    if not bundle.get("VersionId") or not commit:
        raise RebuildNotPossible(f"{family}: s3://{params['ScriptsBucket']} bundle has no version id or commit metadata")
    params.update(Family=family, BaseImageParameter=BASE_IMAGE_PARAMETERS[base], AutomationAssumeRole=pipeline_role_arn,
                  ScriptsVersionId=bundle["VersionId"], ScriptsCommit=commit)
    return {name: _ssm_values(value) for name, value in params.items()}


def _ssm_values(value: Any) -> list[str]:
    # StartAutomationExecution takes every parameter as a list of strings; maps travel as JSON.
    if isinstance(value, bool):
        return [str(value).lower()]
    if isinstance(value, list):
        return [v if isinstance(v, str) else json.dumps(v) for v in value]
    if isinstance(value, dict):
        return [json.dumps(value)]
    return [str(value)]


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


def quarantine(ec2, ssm, s3, sns, automation, *, image_id: str, tags: dict[str, str], cves: Iterable[str],
               topic_arn: str, threshold: str, pipeline_document: str, pipeline_role_arn: str,
               in_use: Iterable[str] = ()) -> Quarantine:
    family = tags.get(TAG_FAMILY)
    execution = tags.get(TAG_REBUILD)
    # Resolved before any side effect: a rebuild that cannot start fails the step with nothing half done.
    rebuild = rebuild_parameters(ssm, s3, family, pipeline_role_arn) if family and not execution else None
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
    if rebuild is not None:
        execution = automation.start_automation_execution(
            DocumentName=pipeline_document, Parameters=rebuild)["AutomationExecutionId"]
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
