"""Rebuild a family when AWS publishes a new base image (the build stack's periodic rebuild check).

AWS publishes each base's latest AMI id in a public SSM parameter (Amazon Linux: "Query for the
latest Amazon Linux AMI IDs using Systems Manager Parameter Store"; Canonical: "Find Ubuntu images
on AWS", /aws/service/canonical/...). Amazon Linux 2023 also announces new AMIs on SNS topic
arn:aws:sns:us-east-1:137112412989:amazon-linux-2023-ami-updates, but Ubuntu documents no topic, so
one scheduled check serves every family: the parameter's id is compared with the base the family's
published image was built from (its bakehouse:source-ami tag, the factory's record), and the
Pipeline starts only when they differ. A start with the same base and commit would gain nothing:
Bakehouse-BuildImage reuses the image those built.

The build step updates the OS packages (packer/scripts/00-os-update.sh), so an image of an unchanged
base still goes stale: the build stack's forced-rebuild schedule (bakehouse:factory
forcedRebuildSchedule) runs this check with its scheduled time (Scheduler's
<aws.scheduler.scheduled-time> context attribute, "Adding context attributes in EventBridge
Scheduler"), and every published family is started with a rebuild token derived from that time:
Bakehouse-BuildImage records the token on the image and reuses only an image built for it, so a new
tick builds anew while a retried delivery of the same tick reuses it.

`plan` (or `plan_forced`) reads, `execute` starts; the start's client token is derived from the family,
the base and the day (a forced start: the family and its rebuild token), so a check repeated the same
day, or a tick delivered twice, starts nothing twice.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from botocore.exceptions import ClientError

from .common import TAG_SOURCE_AMI, AwsClient, EventReader, client, parameter_value, tags_to_dict
from .contract import IMAGE_PARAMETER as LATEST_PARAMETER
from .contract import ROLE_ARN
from .rescan_feedback import (
    BASE_IMAGE_PARAMETERS,
    SETTINGS_PARAMETER,
    RebuildNotPossible,
    rebuild_parameters,
)

PIPELINE_DOCUMENT = "Bakehouse-Pipeline"
# Scheduler's <aws.scheduler.scheduled-time>, e.g. 2022-03-22T18:59:43Z.
SCHEDULED_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")
TOKEN_NAMESPACE = uuid.UUID("5d8c1f0e-3b7a-4c2e-9f61-0b4a7e2d9c35")


@dataclass(frozen=True)
class FamilyCheck:
    family: str
    current_base: str
    recorded_base: str | None  # None: nothing published for the family yet
    start: bool
    reason: str
    rebuild_token: str = ""  # a forced rebuild's token; "" lets BuildImage reuse any image of base and commit


def recorded_base(ssm: AwsClient, ec2: AwsClient, family: str) -> str | None:
    """The base AMI the family's published image was built from, or None when nothing is published."""
    latest = parameter_value(ssm, LATEST_PARAMETER.format(family=family))
    if latest is None:
        return None
    images = ec2.describe_images(ImageIds=[latest])["Images"]
    return tags_to_dict(images[0].get("Tags")).get(TAG_SOURCE_AMI) if images else None


def plan(ssm: AwsClient, ec2: AwsClient) -> list[FamilyCheck]:
    """One check per family the Pipeline builds (Packer families are released by their own pipeline)."""
    settings = json.loads(ssm.get_parameter(Name=SETTINGS_PARAMETER)["Parameter"]["Value"])
    engines = settings.get("engines") or {}
    checks = []
    for family, base in sorted((settings.get("families") or {}).items()):
        if engines.get(family, "ssm") != "ssm" or base not in BASE_IMAGE_PARAMETERS:
            continue
        current = ssm.get_parameter(Name=BASE_IMAGE_PARAMETERS[base])["Parameter"]["Value"]
        recorded = recorded_base(ssm, ec2, family)
        if recorded is None:
            # The first image comes from a release (tools/release.py), not from a base change.
            start, reason = False, "nothing published yet"
        elif recorded != current:
            start, reason = True, f"base changed from {recorded} to {current}"
        else:
            start, reason = False, "base unchanged"
        checks.append(FamilyCheck(family, current, recorded, start, reason))
    return checks


def rebuild_token(scheduled_at: str) -> str:
    """One token per forced-rebuild tick, the same for every family and every delivery of that tick."""
    return str(uuid.uuid5(TOKEN_NAMESPACE, f"forced-rebuild/{scheduled_at}"))


def plan_forced(ssm: AwsClient, ec2: AwsClient, scheduled_at: str) -> list[FamilyCheck]:
    """Every published family the Pipeline builds starts again, whatever its base: the OS updates the
    build applies are the point. A family never published still waits for its release."""
    token = rebuild_token(scheduled_at)
    return [
        FamilyCheck(
            c.family,
            c.current_base,
            c.recorded_base,
            c.recorded_base is not None,
            f"forced rebuild at {scheduled_at}" if c.recorded_base is not None else c.reason,
            token if c.recorded_base is not None else "",
        )
        for c in plan(ssm, ec2)
    ]


def client_token(family: str, base: str, day: date) -> str:
    # StartAutomationExecution's ClientToken must be a UUID; the same family, base and day give the same one.
    return str(uuid.uuid5(TOKEN_NAMESPACE, f"{family}/{base}/{day.isoformat()}"))


def execute(
    checks: list[FamilyCheck], ssm: AwsClient, s3: AwsClient, automation: AwsClient, role_arn: str, day: date
) -> dict[str, Any]:
    """Starts the Pipeline for every family whose check says so; a family that cannot start is reported
    (and the run fails after trying the others), never skipped silently."""
    started: dict[str, str] = {}
    failed: dict[str, str] = {}
    for check in (c for c in checks if c.start):
        try:
            params = rebuild_parameters(ssm, s3, check.family, role_arn)
            token = client_token(check.family, check.current_base, day)
            if check.rebuild_token:
                params["RebuildToken"] = [check.rebuild_token]
                token = str(uuid.uuid5(TOKEN_NAMESPACE, f"{check.family}/{check.rebuild_token}"))
            started[check.family] = automation.start_automation_execution(
                DocumentName=PIPELINE_DOCUMENT, Parameters=params, ClientToken=token
            )["AutomationExecutionId"]
        except (RebuildNotPossible, ClientError) as err:
            failed[check.family] = str(err)
    result = {
        "Started": started,
        "Failed": failed,
        "Checks": {
            c.family: {
                "current": c.current_base,
                "recorded": c.recorded_base,
                "reason": c.reason,
                **({"rebuildToken": c.rebuild_token} if c.rebuild_token else {}),
            }
            for c in checks
        },
    }
    if failed:
        raise RebuildNotPossible(f"could not start the Pipeline for {', '.join(sorted(failed))}: {json.dumps(result)}")
    return result


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """aws:executeScript entry. Event: PipelineRoleArn (the role the Pipeline runs as) and ForcedRebuildAt
    (the forced-rebuild schedule's scheduled time; '' for the base-image check)."""
    read = EventReader("base_image_check", event)
    role_arn = read.string("PipelineRoleArn", ROLE_ARN)
    forced_at = event.get("ForcedRebuildAt", "") if isinstance(event, dict) else ""
    if not isinstance(forced_at, str) or (forced_at and not SCHEDULED_TIME.fullmatch(forced_at)):
        read.problems.append(f"ForcedRebuildAt is {forced_at!r}, expected '' or a time like 2026-11-30T03:00:00Z")
    read.done()
    ssm, ec2 = client("ssm"), client("ec2")
    checks = plan_forced(ssm, ec2, forced_at) if forced_at else plan(ssm, ec2)
    return execute(checks, ssm, client("s3"), ssm, role_arn, datetime.now(UTC).date())
