"""Disposable fleets: a scheduled report, in each workload account, of the instances that outlived the
maximum instance lifetime or run an image that is not the environment's latest approved one
(/bakehouse/<env>/ami/<family>), announced on the alert topic. It only reports: Auto Scaling's
maximum instance lifetime replaces group members itself; what this finds is what escaped it
(stand-alone instances, groups without the setting, images distribution has since replaced).

    handler(event, context)   # EventBridge Scheduler -> Lambda; settings from the stack's environment
    plan(instances, approved, max_lifetime_seconds, now) -> FleetReport   # pure
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from handlers.common import RETRY_CONFIG, AwsClient, BakehouseError, MalformedEvent, tags_to_dict
from handlers.contract import TAG_FAMILY, env_ami_parameter

LAUNCHED_FROM_APP = ("bakehouse:launched-from", "app-template")  # components/workload/app_access.py's launch template tag
LIVE_STATES = ("pending", "running", "stopping", "stopped")
MAX_LISTED = 50  # SNS messages stop at 256 KB; the rest is counted, the Lambda's log has every line
MIN_LIFETIME, MAX_LIFETIME = 86400, 31536000  # what Auto Scaling accepts for MaxInstanceLifetime


class FleetReportFailed(BakehouseError):
    """The report could not be made or sent."""


@dataclass(frozen=True)
class Instance:
    instance_id: str
    image_id: str
    launched: dt.datetime
    family: str | None


@dataclass(frozen=True)
class Finding:
    instance_id: str
    reasons: tuple[str, ...]


@dataclass
class FleetReport:
    env: str
    checked: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return f"Bakehouse {self.env}: {len(self.findings)} instance(s) to replace"[:100]

    def message(self) -> str:
        lines = [f"{f.instance_id}: {'; '.join(f.reasons)}" for f in self.findings[:MAX_LISTED]]
        more = len(self.findings) - MAX_LISTED
        if more > 0:
            lines.append(f"... and {more} more (the fleet report's log lists every one)")
        return (
            f"{len(self.findings)} of {self.checked} instances in {self.env} should be replaced "
            "(Auto Scaling groups: start an instance refresh; others: relaunch from the template):\n" + "\n".join(lines)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "Env": self.env,
            "Checked": self.checked,
            "Findings": [{"InstanceId": f.instance_id, "Reasons": list(f.reasons)} for f in self.findings],
        }


@dataclass(frozen=True)
class Settings:
    env: str
    max_lifetime_seconds: int
    topic_arn: str
    app_family: str | None = None

    @classmethod
    def parse(cls, environ: Mapping[str, str]) -> Settings:
        problems = [f"environment lacks {k}" for k in ("FLEET_ENV", "MAX_LIFETIME_SECONDS", "TOPIC_ARN") if not environ.get(k)]
        lifetime = 0
        try:
            lifetime = int(environ.get("MAX_LIFETIME_SECONDS") or 0)
        except ValueError:
            problems.append(f"MAX_LIFETIME_SECONDS={environ['MAX_LIFETIME_SECONDS']!r} is not a number")
        if environ.get("MAX_LIFETIME_SECONDS") and not MIN_LIFETIME <= lifetime <= MAX_LIFETIME:
            problems.append(f"MAX_LIFETIME_SECONDS={lifetime} outside {MIN_LIFETIME}-{MAX_LIFETIME}")
        if problems:
            raise MalformedEvent("fleet report", problems)
        return cls(environ["FLEET_ENV"], lifetime, environ["TOPIC_ARN"], environ.get("APP_FAMILY") or None)


def plan(
    instances: Iterable[Instance], approved: Mapping[str, str], max_lifetime_seconds: int, now: dt.datetime, env: str
) -> FleetReport:
    """Which instances to replace and why; `approved` is family -> the env's latest approved image."""
    report = FleetReport(env=env, checked=0)
    approved_ids = set(approved.values())
    for inst in sorted(instances, key=lambda i: i.instance_id):
        report.checked += 1
        reasons = []
        age = now - inst.launched
        if age.total_seconds() > max_lifetime_seconds:
            reasons.append(
                f"running {age.days} days, longer than the {max_lifetime_seconds // 86400}-day lifetime "
                f"(launched {inst.launched:%Y-%m-%d})"
            )
        if inst.family and inst.family in approved:
            if inst.image_id != approved[inst.family]:
                reasons.append(f"image {inst.image_id} is not the latest approved {inst.family} image ({approved[inst.family]})")
        elif inst.image_id not in approved_ids:
            family = f"family {inst.family} has no approved image here" if inst.family else "no image family"
            reasons.append(f"image {inst.image_id} is not an approved image ({family})")
        if reasons:
            report.findings.append(Finding(inst.instance_id, tuple(reasons)))
    return report


def live_instances(ec2: AwsClient, app_family: str | None) -> list[Instance]:
    found = []
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "instance-state-name", "Values": list(LIVE_STATES)}]
    )
    for page in pages:
        for reservation in page["Reservations"]:
            for raw in reservation["Instances"]:
                tags = tags_to_dict(raw.get("Tags"))
                family = tags.get(TAG_FAMILY)
                if family is None and tags.get(LAUNCHED_FROM_APP[0]) == LAUNCHED_FROM_APP[1]:
                    family = app_family
                found.append(Instance(raw["InstanceId"], raw["ImageId"], raw["LaunchTime"], family))
    return found


def approved_images(ssm: AwsClient, env: str, families: Iterable[str]) -> dict[str, str]:
    names = sorted({env_ami_parameter(env, f) for f in families})
    approved: dict[str, str] = {}
    for start in range(0, len(names), 10):  # GetParameters takes at most 10 names
        for param in ssm.get_parameters(Names=names[start : start + 10])["Parameters"]:
            approved[param["Name"].rsplit("/", 1)[-1]] = param["Value"]
    return approved


def report(settings: Settings, *, ec2: AwsClient, ssm: AwsClient, sns: AwsClient, now: dt.datetime) -> FleetReport:
    instances = live_instances(ec2, settings.app_family)
    families = {i.family for i in instances if i.family}
    result = plan(instances, approved_images(ssm, settings.env, families), settings.max_lifetime_seconds, now, settings.env)
    if result.findings:
        try:
            sns.publish(TopicArn=settings.topic_arn, Subject=result.subject, Message=result.message())
        except Exception as err:  # noqa: BLE001 - the report must say where it could not be sent
            raise FleetReportFailed(f"fleet report for {settings.env}: publish to {settings.topic_arn}: {err}") from err
    for finding in result.findings:
        print(f"replace {finding.instance_id}: {'; '.join(finding.reasons)}")
    return result


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    import boto3

    settings = Settings.parse(os.environ)
    region = os.environ.get("AWS_REGION")
    topic_region = settings.topic_arn.split(":")[3]
    result = report(
        settings,
        ec2=boto3.client("ec2", region_name=region, config=RETRY_CONFIG),
        ssm=boto3.client("ssm", region_name=region, config=RETRY_CONFIG),
        sns=boto3.client("sns", region_name=topic_region, config=RETRY_CONFIG),
        now=dt.datetime.now(dt.UTC),
    )
    return result.as_dict()
