"""The approval gate of Bakehouse-ApproveImage, bound to the settings the build stack wrote.

`decide` reads `/bakehouse/factory/settings` (never the caller's parameters) and the image's tags:
an image whose approval is already recorded is not asked about again (a rerun after a later
failure), only the settings' dev-only auto-approval skips the human, everyone else waits for one
of the configured approvers. `record` writes the human approver aws:approve reports
(`ApproverDecisions`) onto the image, the record a rerun and the publish step read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .common import (
    AMI_ID,
    FACTORY_SETTINGS_PARAMETER,
    AwsClient,
    BakehouseError,
    EventReader,
    MalformedEvent,
    SettingsUnusable,
    client,
    factory_settings,
    tags_to_dict,
)

SETTINGS_PARAMETER = FACTORY_SETTINGS_PARAMETER
TAG_APPROVER = "bakehouse:approver"  # the principal who approved (or `auto-approval:<env>`)
TAG_APPROVAL_EXECUTION = "bakehouse:approval-execution"
AUTO_ENV = "dev"  # the only approval environment that may skip the human
ARN = r"arn:aws[a-z-]*:(iam|sts)::\d{12}:\S+"


class NoApproval(BakehouseError):
    """aws:approve reported no approving principal for the image."""


@dataclass(frozen=True)
class Approval:
    path: str  # Recorded | Auto | Human
    environment: str
    approvers: tuple[str, ...]
    topic_arn: str
    recorded_by: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "Path": self.path,
            "Environment": self.environment,
            "Approvers": list(self.approvers),
            "TopicArn": self.topic_arn,
            "RecordedBy": self.recorded_by,
        }


def approval_settings(ssm: AwsClient) -> Mapping[str, Any]:
    # missing or malformed settings raise SettingsUnusable: nothing is approved
    approval = factory_settings(ssm).get("approval")
    problems = []
    if not isinstance(approval, Mapping):
        raise SettingsUnusable(f"{SETTINGS_PARAMETER} has no approval object")
    approvers = approval.get("approvers")
    if not isinstance(approvers, list) or not approvers or not all(isinstance(a, str) and a for a in approvers):
        problems.append(f"approval.approvers is {approvers!r}, expected a non-empty list of ARNs")
    if approval.get("environment") not in ("dev", "uat", "prod"):
        problems.append(f"approval.environment is {approval.get('environment')!r}, expected dev, uat or prod")
    if not isinstance(approval.get("autoApprove"), bool):
        problems.append(f"approval.autoApprove is {approval.get('autoApprove')!r}, expected true or false")
    if not isinstance(approval.get("topicArn"), str) or not approval.get("topicArn"):
        problems.append(f"approval.topicArn is {approval.get('topicArn')!r}, expected an SNS topic ARN")
    if problems:
        raise SettingsUnusable(f"{SETTINGS_PARAMETER}: " + "; ".join(problems))
    return approval


def decide(image_id: str, ssm: AwsClient, ec2: AwsClient) -> Approval:
    settings = approval_settings(ssm)
    env = settings["environment"]
    tags = tags_to_dict(
        ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [image_id]}, {"Name": "key", "Values": [TAG_APPROVER]}])[
            "Tags"
        ]
    )
    recorded = tags.get(TAG_APPROVER, "")
    if recorded:
        path = "Recorded"
    elif settings["autoApprove"] and env == AUTO_ENV:
        path = "Auto"
    else:
        path = "Human"
    return Approval(path, env, tuple(settings["approvers"]), settings["topicArn"], recorded)


def approver_of(decisions: Any) -> str:
    """The principal of the first Approve decision in aws:approve's ApproverDecisions output."""
    if isinstance(decisions, str):
        try:
            decisions = json.loads(decisions)
        except json.JSONDecodeError as err:
            raise NoApproval(f"ApproverDecisions is not JSON: {decisions!r}") from err
    if isinstance(decisions, Mapping):
        decisions = [decisions]
    for decision in decisions if isinstance(decisions, list) else []:
        if isinstance(decision, str):
            try:
                decision = json.loads(decision)
            except json.JSONDecodeError:
                continue
        if isinstance(decision, Mapping) and str(decision.get("Decision", "")).lower() == "approve":
            who = decision.get("Approver")
            if isinstance(who, str) and who:
                return who
    raise NoApproval(f"ApproverDecisions names no approving principal: {decisions!r}")


def record(image_id: str, approver: str, execution_id: str, ec2: AwsClient) -> str:
    # EC2 tag values are at most 256 characters; an assumed-role ARN with its session name fits.
    ec2.create_tags(
        Resources=[image_id],
        Tags=[{"Key": TAG_APPROVER, "Value": approver[:256]}, {"Key": TAG_APPROVAL_EXECUTION, "Value": execution_id[:256]}],
    )
    return approver


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """aws:executeScript entry. Event: Action (Decide | Record), ImageId; Record also takes
    Decisions (aws:approve's ApproverDecisions) or Auto (the approval environment), and ExecutionId."""
    read = EventReader("approval", event)
    action = read.string("Action")
    image_id = read.string("ImageId", AMI_ID)
    read.done()
    if action == "Decide":
        return decide(image_id, client("ssm"), client("ec2")).as_dict()
    if action == "Record":
        execution = str(event.get("ExecutionId") or "unknown")
        auto = event.get("Auto")
        if auto:
            # Re-read: the auto path is taken only when the settings allow it, whatever reached here.
            decision = decide(image_id, client("ssm"), client("ec2"))
            if decision.path != "Auto":
                raise NoApproval(f"{image_id}: the settings do not auto-approve ({decision.environment})")
            who = f"auto-approval:{decision.environment}"
        else:
            who = approver_of(event.get("Decisions"))
        return {"ApprovedBy": record(image_id, who, execution, client("ec2"))}
    raise MalformedEvent("approval", [f"Action is {action!r}, expected Decide or Record"])
