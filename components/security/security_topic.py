"""The security team's SNS topic: KMS-encrypted, reachable by CloudWatch alarms, EventBridge rules and
playbooks from the estate's accounts only (its name and ARN are fixed by estate.naming)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from estate.config import EstateConfig
from estate.naming import security_topic_arn, security_topic_name

from ..lib.iam import document, statement
from ..lib.kms_key import KmsKey, KmsKeyArgs, ServiceGrant

PUBLISHING_SERVICES = ("cloudwatch.amazonaws.com", "events.amazonaws.com")

# Security Hub in the home region sees every member's and every linked region's findings (GuardDuty,
# Inspector, Config, Access Analyzer...) through its aggregator, so one rule here covers the estate.
FINDINGS_PATTERN = {
    "source": ["aws.securityhub"],
    "detail-type": ["Security Hub Findings - Imported"],
    "detail": {
        "findings": {
            "Severity": {"Label": ["HIGH", "CRITICAL"]},
            "Workflow": {"Status": ["NEW"]},
            "RecordState": ["ACTIVE"],
        }
    },
}


@dataclass(frozen=True)
class SecurityTopicArgs:
    estate: EstateConfig
    deploy_role_arn: str
    subscriber_emails: Sequence[str] = ()


# The estate's accounts by organization, not one by one: a principal per account passed SNS's 200
# principals a topic policy at about 200 envs and KMS's 32 KB key policy at about 470 ("Amazon SNS API
# permissions: Actions and resources reference", Policy quotas). IAM User Guide, "AWS global condition
# context keys": aws:SourceOrgID (a service principal acting for a member account's alarm or rule) and
# aws:PrincipalOrgID (a playbook's role).
def publisher_sources(estate: EstateConfig) -> dict[str, dict[str, str]]:
    return {"StringEquals": {"aws:SourceOrgID": estate.organization_id}}


def playbooks_of_the_estate(estate: EstateConfig) -> dict[str, dict[str, str]]:
    return {"StringEquals": {"aws:PrincipalOrgID": estate.organization_id}}


def topic_policy_statements(estate: EstateConfig) -> list[dict]:
    arn = security_topic_arn(estate)
    return [
        statement(
            "AlarmsAndRulesFromTheEstate",
            ["sns:Publish"],
            [arn],
            principals={"Service": list(PUBLISHING_SERVICES)},
            conditions=publisher_sources(estate),
        ),
        statement(
            "PlaybooksFromTheEstate", ["sns:Publish"], [arn], principals={"AWS": "*"}, conditions=playbooks_of_the_estate(estate)
        ),
        statement(
            "DenyInsecureTransport",
            ["sns:Publish"],
            [arn],
            effect="Deny",
            principals="*",
            conditions={"Bool": {"aws:SecureTransport": "false"}},
        ),
    ]


class SecurityTopic(pulumi.ComponentResource):
    def __init__(self, name: str, args: SecurityTopicArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:security:SecurityTopic", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Publishing services encrypt messages with the topic's key, so they must be granted its use.
        self.key = KmsKey(
            f"{name}-key",
            KmsKeyArgs(
                description="Bakehouse security alerts topic",
                alias="bakehouse-security-alerts",
                admin_arns=[args.deploy_role_arn],
                services=[
                    ServiceGrant(
                        f"Publish{service.split('.')[0].capitalize()}",
                        service,
                        ("kms:GenerateDataKey*", "kms:Decrypt"),
                        publisher_sources(args.estate),
                    )
                    for service in PUBLISHING_SERVICES
                ],
                extra_statements=[
                    statement(
                        "PlaybooksPublishThroughSns",
                        ["kms:GenerateDataKey*", "kms:Decrypt"],
                        ["*"],
                        principals={"AWS": "*"},
                        conditions={
                            "StringEquals": {
                                "kms:ViaService": f"sns.{args.estate.home_region}.amazonaws.com",
                                **playbooks_of_the_estate(args.estate)["StringEquals"],
                            }
                        },
                    )
                ],
            ),
            opts=child,
        )
        self.topic = aws.sns.Topic(f"{name}-topic", name=security_topic_name(), kms_master_key_id=self.key.arn, opts=child)
        aws.sns.TopicPolicy(
            f"{name}-policy", arn=self.topic.arn, policy=document(*topic_policy_statements(args.estate)), opts=child
        )
        for email in args.subscriber_emails:
            aws.sns.TopicSubscription(
                f"{name}-email-{email.replace('@', '-at-')}", topic=self.topic.arn, protocol="email", endpoint=email, opts=child
            )
        self.findings_rule = aws.cloudwatch.EventRule(
            f"{name}-findings",
            name="bakehouse-high-severity-findings",
            description="New high and critical findings from every account and region, to the security topic",
            event_pattern=json.dumps(FINDINGS_PATTERN),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-findings", rule=self.findings_rule.name, arn=self.topic.arn, target_id="security-topic", opts=child
        )
        self.arn = self.topic.arn
        self.register_outputs({"arn": self.topic.arn})
