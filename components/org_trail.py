"""The organization trail: every account, every region, validated and KMS-encrypted, delivered to the
log-archive bucket in the security account and to a log group here that the CIS alarms read."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from estate.config import EstateConfig
from estate.naming import LOG_BUCKET_KINDS, ORGANIZATION_TRAIL, central_bucket, central_bucket_arn, central_key_alias

from .iam import document, statement

LOG_GROUP = "/bakehouse/cloudtrail/organization"


def trail_arn(estate: EstateConfig) -> str:
    return f"arn:aws:cloudtrail:{estate.home_region}:{estate.accounts.management}:trail/{ORGANIZATION_TRAIL}"


def log_group_arn(estate: EstateConfig) -> str:
    return f"arn:aws:logs:{estate.home_region}:{estate.accounts.management}:log-group:{LOG_GROUP}"


def trail_key_arn(estate: EstateConfig) -> str:
    # The key lives in the security account and is created after this stack's first run, so it is
    # addressed by its alias (CloudTrail accepts an alias ARN).
    return f"arn:aws:kms:{estate.home_region}:{estate.accounts.security}:{central_key_alias('trail')}"


def event_selectors(estate: EstateConfig) -> list[aws.cloudtrail.TrailAdvancedEventSelectorArgs]:
    field = aws.cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs
    log_objects = [f"{central_bucket_arn(estate, kind)}/" for kind in LOG_BUCKET_KINDS]
    return [
        aws.cloudtrail.TrailAdvancedEventSelectorArgs(
            name="Management events", field_selectors=[field(field="eventCategory", equals=["Management"])]),
        # Who read or wrote the audit record itself: data events on the log-archive buckets only
        # (all S3 data events across the estate would cost more than they tell).
        aws.cloudtrail.TrailAdvancedEventSelectorArgs(
            name="Log-archive object access", field_selectors=[
                field(field="eventCategory", equals=["Data"]),
                field(field="resources.type", equals=["AWS::S3::Object"]),
                field(field="resources.ARN", starts_withs=log_objects),
            ]),
        aws.cloudtrail.TrailAdvancedEventSelectorArgs(
            name="Lambda invocations", field_selectors=[
                field(field="eventCategory", equals=["Data"]),
                field(field="resources.type", equals=["AWS::Lambda::Function"]),
            ]),
    ]


@dataclass(frozen=True)
class OrgTrailArgs:
    estate: EstateConfig
    log_group_key_arn: pulumi.Input[str]  # management account key (its policy admits CloudWatch Logs)
    retention_days: int


class OrgTrail(pulumi.ComponentResource):
    def __init__(self, name: str, args: OrgTrailArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:org:OrgTrail", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        estate = args.estate
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=LOG_GROUP, retention_in_days=args.retention_days,
            kms_key_id=args.log_group_key_arn, opts=child)
        self.log_group_name = self.log_group.name

        trust = document(statement(
            "CloudTrailDelivers", ["sts:AssumeRole"], principals={"Service": "cloudtrail.amazonaws.com"},
            conditions={"StringEquals": {"aws:SourceArn": trail_arn(estate),
                                         "aws:SourceAccount": estate.accounts.management}}))
        self.role = aws.iam.Role(f"{name}-to-logs", assume_role_policy=trust,
                                 description="CloudTrail writes the organization trail to CloudWatch Logs",
                                 opts=child)
        delivery = aws.iam.RolePolicy(
            f"{name}-to-logs", role=self.role.id,
            policy=document(statement("WriteTrailStreams", ["logs:CreateLogStream", "logs:PutLogEvents"],
                                      [f"{log_group_arn(estate)}:log-stream:*"])),
            opts=child)

        self.trail = aws.cloudtrail.Trail(
            f"{name}-trail",
            name=ORGANIZATION_TRAIL,
            is_organization_trail=True,
            is_multi_region_trail=True,
            include_global_service_events=True,
            enable_log_file_validation=True,
            enable_logging=True,
            kms_key_id=trail_key_arn(estate),
            s3_bucket_name=central_bucket(estate, "trail"),
            cloud_watch_logs_group_arn=f"{log_group_arn(estate)}:*",
            cloud_watch_logs_role_arn=self.role.arn,
            advanced_event_selectors=event_selectors(estate),
            insight_selectors=[aws.cloudtrail.TrailInsightSelectorArgs(insight_type="ApiCallRateInsight"),
                               aws.cloudtrail.TrailInsightSelectorArgs(insight_type="ApiErrorRateInsight")],
            opts=child.merge(pulumi.ResourceOptions(depends_on=[delivery, self.log_group], protect=True)))
        self.register_outputs({"trail_arn": self.trail.arn, "log_group": self.log_group.name})
