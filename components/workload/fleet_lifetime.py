"""Disposable fleets in a workload account: the maximum instance lifetime every group should set, and a
scheduled report (EventBridge Scheduler -> Lambda handlers/fleet_report.py -> the security topic) of
the instances that outlived it or run an image that is no longer the env's latest approved one.

Auto Scaling accepts MaxInstanceLifetime of 0 (none) or 86,400 s (one day) up to 31,536,000 s (365 days)
(EC2 Auto Scaling user guide, "Replace Auto Scaling instances based on maximum instance lifetime";
AWS::AutoScaling::AutoScalingGroup MaxInstanceLifetime). The config is in days, so it always fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from estate import models
from estate.aws_rules import RECURRING_SCHEDULE, is_recurring_schedule
from estate.config import Problems, require_keys

from ..lib.dead_letters import dead_letter_alarm, dead_letter_queue, dead_letter_statements
from ..lib.handler_package import package
from ..lib.iam import document, statement
from .break_glass import topic_key_statement

PROJECT_DIR = Path(__file__).resolve().parents[2]
KEY = "workload.fleet"
DEFAULT_LIFETIME_DAYS = 7
DEFAULT_SCHEDULE = "cron(0 6 * * ? *)"  # daily, before the working day in the home region
FUNCTION_NAME = "bakehouse-fleet-report"
ROLE_NAME = "BakehouseFleetReport"
SCHEDULER_ROLE_NAME = "BakehouseFleetReportSchedule"
DEAD_LETTER_QUEUE = "bakehouse-fleet-report-dlq"
DELIVERY_ALARM = "bakehouse-fleet-report-delivery-failed"
MEMBERS = ("handlers/__init__.py", "handlers/common.py", "handlers/contract.py", "handlers/fleet_report.py")
LAMBDA_RUNTIME = "python3.12"


@dataclass(frozen=True)
class FleetSettings:
    max_instance_lifetime_days: int = DEFAULT_LIFETIME_DAYS
    report_schedule: str = DEFAULT_SCHEDULE

    @property
    def max_instance_lifetime_seconds(self) -> int:
        return self.max_instance_lifetime_days * 86400


def fleet_settings(workload_section: Any, problems: Problems) -> FleetSettings:
    """`bakehouse:workload.fleet` ({maxInstanceLifetimeDays, reportSchedule}); absent: 7 days, daily."""
    raw = workload_section.get("fleet", {}) if isinstance(workload_section, Mapping) else {}
    if not isinstance(raw, Mapping):
        problems.add(f"bakehouse:{KEY}", raw, "an object {maxInstanceLifetimeDays, reportSchedule}")
        return FleetSettings()
    require_keys(raw, KEY, problems)
    days = raw.get("maxInstanceLifetimeDays", DEFAULT_LIFETIME_DAYS)
    low, high = models.bounds(models.Fleet, "max_instance_lifetime_days")
    ok = isinstance(days, int) and not isinstance(days, bool) and low <= days <= high
    problems.check(
        ok,
        f"bakehouse:{KEY}.maxInstanceLifetimeDays",
        days,
        f"whole days from {low} to {high} (Auto Scaling's 86,400-31,536,000 s)",
    )
    schedule = raw.get("reportSchedule", DEFAULT_SCHEDULE)
    good_schedule = is_recurring_schedule(schedule)
    problems.check(
        good_schedule,
        f"bakehouse:{KEY}.reportSchedule",
        schedule,
        f"a recurring EventBridge Scheduler expression: {RECURRING_SCHEDULE}",
    )
    return FleetSettings(days if ok else DEFAULT_LIFETIME_DAYS, schedule if good_schedule else DEFAULT_SCHEDULE)


def report_statements(
    *, env: str, region: str, account_id: str, topic_arn: str, security_account_id: str, home_region: str
) -> list[dict[str, Any]]:
    return [
        # DescribeInstances takes no resource ARN (service authorization reference, Amazon EC2); region scope.
        statement(
            "ListInstances", ["ec2:DescribeInstances"], ["*"], conditions={"StringEquals": {"aws:RequestedRegion": region}}
        ),
        statement(
            "ReadApprovedImages", ["ssm:GetParameters"], [f"arn:aws:ssm:{region}:{account_id}:parameter/bakehouse/{env}/ami/*"]
        ),
        statement("AnnounceOnSecurityTopic", ["sns:Publish"], [topic_arn]),
        topic_key_statement(security_account_id, home_region),
        statement(
            "OwnLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [f"arn:aws:logs:{region}:{account_id}:log-group:/aws/lambda/{FUNCTION_NAME}:*"],
        ),
    ]


def dead_letter_key_statement(account_id: str, region: str) -> dict[str, Any]:
    """The account key's grant to the schedule's role, for its dead-letter queue: SQS encrypts each message
    with a data key the sender must be allowed to generate. The key exists before the role, and a key policy
    naming a role that does not exist is rejected, so it names the account and narrows to the role's ARN."""
    return statement(
        "FleetReportScheduleDeadLettersThroughSqs",
        ["kms:GenerateDataKey*", "kms:Decrypt"],
        ["*"],
        principals={"AWS": f"arn:aws:iam::{account_id}:root"},
        conditions={
            "ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{account_id}:role/{SCHEDULER_ROLE_NAME}"},
            "StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com", "kms:CallerAccount": account_id},
        },
    )


@dataclass(frozen=True)
class FleetReportArgs:
    env: str
    account_id: str
    region: str
    home_region: str
    security_account_id: str
    topic_arn: str
    kms_key_arn: pulumi.Input[str]
    settings: FleetSettings
    app_family: str


class FleetReport(pulumi.ComponentResource):
    """The scheduled fleet report of one workload account."""

    def __init__(self, name: str, args: FleetReportArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:workload:FleetReport", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account, region = args.account_id, args.region
        function_arn = f"arn:aws:lambda:{region}:{account}:function:{FUNCTION_NAME}"
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=f"/aws/lambda/{FUNCTION_NAME}", kms_key_id=args.kms_key_arn, retention_in_days=365, opts=child
        )
        role = aws.iam.Role(
            f"{name}-role",
            name=ROLE_NAME,
            max_session_duration=3600,
            description="Lambda: the fleet report (lists and announces instances to replace)",
            assume_role_policy=document(
                statement(
                    "TrustLambdaInThisAccount",
                    ["sts:AssumeRole"],
                    principals={"Service": "lambda.amazonaws.com"},
                    conditions={"StringEquals": {"aws:SourceAccount": account}},
                )
            ),
            opts=child,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.name,
            policy=document(
                *report_statements(
                    env=args.env,
                    region=region,
                    account_id=account,
                    topic_arn=args.topic_arn,
                    security_account_id=args.security_account_id,
                    home_region=args.home_region,
                )
            ),
            opts=child,
        )
        code = package(PROJECT_DIR, MEMBERS, "fleet-report")
        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=FUNCTION_NAME,
            role=role.arn,
            runtime=LAMBDA_RUNTIME,
            handler="handlers.fleet_report.handler",
            code=pulumi.FileArchive(str(code.path)),
            source_code_hash=code.sha256_b64,
            architectures=["arm64"],
            memory_size=256,
            timeout=300,
            # The decisions (env, lifetime, where to announce) are the stack's, never the schedule's input.
            environment=aws.lambda_.FunctionEnvironmentArgs(
                variables={
                    "FLEET_ENV": args.env,
                    "MAX_LIFETIME_SECONDS": str(args.settings.max_instance_lifetime_seconds),
                    "TOPIC_ARN": args.topic_arn,
                    "APP_FAMILY": args.app_family,
                }
            ),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=log_group.name),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[log_group, policy])),
        )

        # A run Scheduler could not start (throttled, the function gone, no permission) lands here after the
        # retries, and the alarm tells the security topic; without it the report just stops arriving.
        self.dead_letters = dead_letter_queue(f"{name}-dead-letters", DEAD_LETTER_QUEUE, args.kms_key_arn, child)
        self.alarm = dead_letter_alarm(
            f"{name}-dlq-alarm",
            DELIVERY_ALARM,
            self.dead_letters,
            args.topic_arn,
            f"EventBridge Scheduler could not start the {args.env} fleet report after retries",
            child,
        )
        scheduler_role = aws.iam.Role(
            f"{name}-scheduler-role",
            name=SCHEDULER_ROLE_NAME,
            max_session_duration=3600,
            description="EventBridge Scheduler: invokes the fleet report",
            assume_role_policy=document(
                statement(
                    "TrustSchedulerInThisAccount",
                    ["sts:AssumeRole"],
                    principals={"Service": "scheduler.amazonaws.com"},
                    conditions={"StringEquals": {"aws:SourceAccount": account}},
                )
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-scheduler-policy",
            role=scheduler_role.name,
            policy=document(
                statement("InvokeFleetReportOnly", ["lambda:InvokeFunction"], [function_arn, f"{function_arn}:*"]),
                *dead_letter_statements(self.dead_letters.arn, args.kms_key_arn, region),
            ),
            opts=child,
        )
        self.schedule = aws.scheduler.Schedule(
            f"{name}-schedule",
            name="bakehouse-fleet-report",
            description=f"List {args.env} instances past {args.settings.max_instance_lifetime_days} days "
            "or off the latest approved image",
            schedule_expression=args.settings.report_schedule,
            schedule_expression_timezone="UTC",
            flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="FLEXIBLE", maximum_window_in_minutes=60),
            # The input is an empty object: nothing to encrypt with the account key, so no key use to grant.
            state="ENABLED",
            target=aws.scheduler.ScheduleTargetArgs(
                arn=self.function.arn,
                role_arn=scheduler_role.arn,
                input="{}",
                # Retries with backoff until 3 attempts or an hour, then the dead-letter queue (EventBridge
                # Scheduler API reference, "RetryPolicy": 60-86,400 s, 0-185 attempts).
                retry_policy=aws.scheduler.ScheduleTargetRetryPolicyArgs(
                    maximum_event_age_in_seconds=3600, maximum_retry_attempts=3
                ),
                dead_letter_config=aws.scheduler.ScheduleTargetDeadLetterConfigArgs(arn=self.dead_letters.arn),
            ),
            opts=child,
        )
        self.register_outputs(
            {
                "function": self.function.name,
                "schedule": self.schedule.name,
                "dead_letter_queue": self.dead_letters.arn,
                "max_instance_lifetime_seconds": args.settings.max_instance_lifetime_seconds,
            }
        )
