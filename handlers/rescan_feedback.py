"""The rescan's CVE feedback loop and prod marking: what follows from a scan verdict or a sighting.

- quarantine: tell the security topic first (which CVEs, where the image is in use); then take the
  image out of every pointer - /bakehouse/images/<family>/latest and each workload env's
  /bakehouse/<env>/ami/<family> move back to the last good image of the family (the newest history
  version that is neither this image nor quarantined nor gone), or are deleted when there is none,
  so nothing resolves to it; the family's catalog rule is pinned to the last good image (or to an id
  no image has), in every regional catalog the settings name too (to that region's copy of it); each
  workload account's view of the shared image is tagged bakehouse:quarantined
  (the tag the approved-images SCP denies launches by: tags the owner puts on a shared AMI are not
  seen by the accounts it is shared with, so the tag goes on each account's own view); the history
  version is labelled. The rebuild is best effort: its failure is announced on the topic and
  reported in the outcome, never raised. The vulnerable tag comes last.
- retire_replaced: a quarantined AMI is deprecated once its family's `latest` points elsewhere.
- mark_prod: AMIs seen running in the prod account carry bakehouse:ran-in=prod, which the lifecycle
  honours for the retention period, counted from bakehouse:prod-last-seen.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from handlers.common import (
    FACTORY_SETTINGS_PARAMETER,
    TAG_FAMILY,
    TAG_RAN_IN,
    AwsClient,
    BakehouseError,
    dict_to_tags,
    tags_to_dict,
)
from handlers.contract import ENV_AMI_PARAMETER, TAG_PROD_LAST_SEEN, TAG_QUARANTINED, TAG_VULNERABLE
from handlers.contract import IMAGE_HISTORY_PARAMETER as HISTORY_PARAMETER
from handlers.contract import IMAGE_PARAMETER as LATEST_PARAMETER
from handlers.contract import TAG_REBUILD_EXECUTION as TAG_REBUILD

# An id no image has: a catalog rule pinned to it admits no launch (catalog/template-constraint.json).
NO_IMAGE = "ami-00000000000000000"
# The factory's settings (components/build/image_factory.py writes them): the Pipeline's standing parameters.
SETTINGS_PARAMETER = FACTORY_SETTINGS_PARAMETER
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


def rebuild_parameters(
    ssm: AwsClient, s3: AwsClient, family: str, pipeline_role_arn: str, settings_parameter: str = SETTINGS_PARAMETER
) -> dict[str, list[str]]:
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
        raise RebuildNotPossible(
            f"{family}: scripts bundle s3://{bucket}/{key} unreadable ({err.response['Error']['Code']})"
        ) from err
    commit = (bundle.get("Metadata") or {}).get("commit")
    if not bundle.get("VersionId") or not commit:
        raise RebuildNotPossible(f"{family}: s3://{params['ScriptsBucket']} bundle has no version id or commit metadata")
    params.update(
        Family=family,
        BaseImageParameter=BASE_IMAGE_PARAMETERS[base],
        AutomationAssumeRole=pipeline_role_arn,
        ScriptsVersionId=bundle["VersionId"],
        ScriptsCommit=commit,
    )
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
    fallback: str | None = None  # the last good image every pointer now names; None: launches blocked
    moved: tuple[str, ...] = ()  # the parameters that named the image and were moved or deleted
    rebuild_error: str | None = None


@dataclass(frozen=True)
class Workload:
    """A workload account's clients for quarantine: its env name, EC2 (tags its view of the shared
    image) and SSM (its /bakehouse/<env>/ami/<family> parameter)."""

    env: str
    ec2: Any
    ssm: Any


def quarantine_label(image_id: str) -> str:
    # A label sits on one version at a time per parameter, hence one label per AMI.
    return f"quarantined-{image_id}"


def _history_versions(ssm: AwsClient, family: str) -> list[dict[str, Any]]:
    try:
        return [
            p
            for page in ssm.get_paginator("get_parameter_history").paginate(Name=HISTORY_PARAMETER.format(family=family))
            for p in page["Parameters"]
        ]
    except ClientError as err:
        if err.response["Error"]["Code"] == "ParameterNotFound":
            return []
        raise


def _image_state(ec2: AwsClient, image_id: str) -> dict[str, str] | None:
    """The image's tags when it still exists and is available, else None."""
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as err:
        if err.response["Error"]["Code"].startswith("InvalidAMIID"):
            return None
        raise
    if not images or images[0].get("State") != "available":
        return None
    return tags_to_dict(images[0].get("Tags"))


def last_good(ec2: AwsClient, ssm: AwsClient, family: str, image_id: str) -> str | None:
    """The newest approval of the family that is not this image, not quarantined and still launchable."""
    for version in sorted(_history_versions(ssm, family), key=lambda v: v["Version"], reverse=True):
        candidate = version["Value"]
        if candidate == image_id or any(label.startswith("quarantined-") for label in version.get("Labels", [])):
            continue
        tags = _image_state(ec2, candidate)
        if tags is not None and tags.get(TAG_VULNERABLE) != "true":
            clean: str = candidate
            return clean
    return None


def _repoint(ssm: AwsClient, name: str, image_id: str, fallback: str | None) -> bool:
    """Move the parameter off image_id (to fallback, or delete it); False if it names something else."""
    try:
        value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as err:
        if err.response["Error"]["Code"] == "ParameterNotFound":
            return False
        raise
    if value != image_id:
        return False
    if fallback is None:
        ssm.delete_parameter(Name=name)  # nothing resolves the parameter: launches by it fail
    else:
        ssm.put_parameter(Name=name, Value=fallback, Type="String", DataType="aws:ec2:image", Overwrite=True)
    return True


def _settings(ssm: AwsClient, settings_parameter: str = SETTINGS_PARAMETER) -> dict[str, Any]:
    try:
        settings: dict[str, Any] = json.loads(ssm.get_parameter(Name=settings_parameter)["Parameter"]["Value"])
        return settings
    except (ClientError, ValueError, TypeError):
        return {}


def repin_regional_catalogs(
    ssm: AwsClient,
    family: str,
    fallback: str | None,
    clients: tuple[Callable[[str | None], Any], Callable[[str], Any]] | None = None,
) -> dict[str, str]:
    """Pin the family's rule in each regional catalog the settings' CatalogRegions name (the build stack
    writes them when bakehouse:factory.catalogRegionalPortfolios is on) to that region's copy of
    fallback; raises CatalogIncomplete naming every region that could not be pinned (a rerun retries)."""
    from handlers import catalog

    problems: list[str] = []
    regional = catalog.regional_catalogs((_settings(ssm).get("pipelineParameters") or {}).get("CatalogRegions"), problems)
    if problems:
        raise catalog.CatalogIncomplete(
            f"{SETTINGS_PARAMETER}: catalog rule of {family} not pinned in any region: " + "; ".join(problems)
        )
    if not regional:
        return {}
    sc_for, ec2_for = clients or catalog.regional_clients()
    return catalog.pin_family_in_regions(regional, family, fallback, sc_for, ec2_for)


def quarantine(
    ec2: AwsClient,
    ssm: AwsClient,
    s3: AwsClient,
    sns: AwsClient,
    automation: AwsClient,
    *,
    image_id: str,
    tags: dict[str, str],
    cves: Iterable[str],
    topic_arn: str,
    threshold: str,
    pipeline_document: str,
    pipeline_role_arn: str,
    in_use: Iterable[str] = (),
    workloads: Iterable[Workload] = (),
    repin_catalog: Callable[[str, str | None], Any] | None = None,
) -> Quarantine:
    """repin_catalog(family, fallback) pins the family's catalog rule to fallback (None: to no image)."""
    family = tags.get(TAG_FAMILY)
    cve_list = tuple(sorted(set(cves)))
    # The security topic hears first: whatever fails after this, the people who act know.
    sns.publish(
        TopicArn=topic_arn,
        Subject=f"Bakehouse: {image_id} is vulnerable"[:100],
        Message=json.dumps(
            {"image_id": image_id, "family": family, "threshold": threshold, "cves": list(cve_list), "in_use": sorted(in_use)},
            indent=1,
        ),
    )
    fallback, moved = None, []
    if family:
        fallback = last_good(ec2, ssm, family, image_id)
        if _repoint(ssm, LATEST_PARAMETER.format(family=family), image_id, fallback):
            moved.append(LATEST_PARAMETER.format(family=family))
    for workload in workloads:
        if family and _repoint(workload.ssm, ENV_AMI_PARAMETER.format(env=workload.env, family=family), image_id, fallback):
            moved.append(ENV_AMI_PARAMETER.format(env=workload.env, family=family))
        # The account's own view of the shared image: the approved-images SCP refuses launches of it.
        try:
            workload.ec2.create_tags(Resources=[image_id], Tags=dict_to_tags({TAG_QUARANTINED: "true"}))
        except ClientError as err:
            if not err.response["Error"]["Code"].startswith("InvalidAMIID"):
                raise  # not shared with this account: it cannot launch the image anyway
    if family and repin_catalog is not None:
        repin_catalog(family, fallback)
        repin_regional_catalogs(ssm, family, fallback)
    label = quarantine_label(image_id)
    if family:
        for version in _history_versions(ssm, family):
            if version["Value"] == image_id and label not in version.get("Labels", []):
                ssm.label_parameter_version(
                    Name=HISTORY_PARAMETER.format(family=family), ParameterVersion=version["Version"], Labels=[label]
                )
    execution, rebuild_error = tags.get(TAG_REBUILD), None
    if family and not execution:
        try:
            execution = automation.start_automation_execution(
                DocumentName=pipeline_document, Parameters=rebuild_parameters(ssm, s3, family, pipeline_role_arn)
            )["AutomationExecutionId"]
            # Tagged at once, so a retry after a later failure does not start a second rebuild.
            ec2.create_tags(Resources=[image_id], Tags=dict_to_tags({TAG_REBUILD: execution}))
        except (BakehouseError, ClientError, ValueError, KeyError, TypeError) as err:
            rebuild_error = f"{type(err).__name__}: {err}"
            sns.publish(
                TopicArn=topic_arn,
                Subject=f"Bakehouse: rebuild of {family} did not start"[:100],
                Message=json.dumps(
                    {"image_id": image_id, "family": family, "error": rebuild_error, "fallback": fallback}, indent=1
                ),
            )
    # Last: the vulnerable tag takes the AMI out of future rescans, so it must follow everything else.
    ec2.create_tags(Resources=[image_id], Tags=dict_to_tags({TAG_VULNERABLE: "true"}))
    return Quarantine(image_id, family, cve_list, execution, fallback, tuple(moved), rebuild_error)


def _vulnerable_images(ec2: AwsClient) -> Iterator[dict[str, Any]]:
    pages = ec2.get_paginator("describe_images").paginate(
        Owners=["self"], Filters=[{"Name": f"tag:{TAG_VULNERABLE}", "Values": ["true"]}]
    )
    for page in pages:
        yield from page["Images"]


def retire_replaced(ec2: AwsClient, ssm: AwsClient, now: datetime) -> list[str]:
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


def mark_prod(ec2: AwsClient, image_id: str, tags: dict[str, str], today: str) -> bool:
    if tags.get(TAG_RAN_IN) == "prod" and tags.get(TAG_PROD_LAST_SEEN) == today:
        return False
    ec2.create_tags(Resources=[image_id], Tags=dict_to_tags({TAG_RAN_IN: "prod", TAG_PROD_LAST_SEEN: today}))
    return True
