"""The factory's clocks: the image rescan (an SSM Automation) and the image lifecycle (a Lambda).

EventBridge Scheduler starts both. The rescan goes through Scheduler's universal target for the
SSM API, so no glue function sits between the clock and the document. Lifecycle runs go through a
FIFO queue with one message group: Lambda's SQS poller hands a group one batch at a time, so two
runs never overlap, without reserved concurrency (which a new account's pool cannot give).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import yaml

from estate.config import StackConfig
from estate.naming import IMAGE_SCANNER_ROLE, automation_document_name, role_arn

from ..lib.dead_letters import dead_letter_alarm, dead_letter_queue
from ..lib.handler_package import package
from ..lib.iam import document, statement
from ..lib.org_paths import ou_path_patterns
from .factory_config import FactoryConfig

PROJECT_DIR = Path(__file__).resolve().parents[2]
RESCAN_STEM = "rescan_images"
# Starts Bakehouse-Pipeline for the families whose base AMI AWS has replaced (handlers/base_image_check.py).
BASE_CHECK_STEM = "check_base_images"
# Scheduler puts the tick's time in the target input ("Adding context attributes in EventBridge
# Scheduler"): the same on every retry of one tick, so the forced rebuild's token and starts repeat.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
START_AUTOMATION_TARGET = "arn:aws:scheduler:::aws-sdk:ssm:startAutomationExecution"
LIFECYCLE_FUNCTION = "bakehouse-image-lifecycle"
LIFECYCLE_MEMBERS = (
    "handlers/__init__.py",
    "handlers/common.py",
    "handlers/contract.py",
    "handlers/lifecycle.py",
    "handlers/targets.py",
)
LAMBDA_RUNTIME = "python3.12"
LIFECYCLE_TIMEOUT = 900
# One group: FIFO event sources invoke at most one function per message group at a time (Lambda
# developer guide, "Configuring scaling behavior for SQS event source mappings").
LIFECYCLE_MESSAGE_GROUP = "image-lifecycle"
# Lambda's guidance for SQS sources: visibility timeout at least six times the function timeout, so a
# run still in progress is never handed out again.
LIFECYCLE_VISIBILITY_SECONDS = 6 * LIFECYCLE_TIMEOUT
LIFECYCLE_MAX_RECEIVES = 3
FLEXIBLE_WINDOW_MINUTES = 60  # spreads the daily runs; neither job is time-critical
NOTIFICATIONS_TOPIC = "bakehouse-factory-notifications"  # components/build/image_factory.py names it


def automation_parameters(declared: Mapping[str, Any] | None, known: Mapping[str, Any]) -> tuple[dict, list[str]]:
    """StartAutomationExecution parameters (each a list of strings) for a document's declared parameters.

    Returns them with the names of required parameters (no default) that nothing here can supply. With
    no declaration (the document not written yet) every known value is sent.
    """
    names = list(known) if declared is None else [n for n in declared if n in known]
    params = {n: _as_strings(known[n]) for n in names}
    unfilled = [
        n for n, spec in (declared or {}).items() if n not in known and not (isinstance(spec, Mapping) and "default" in spec)
    ]
    return params, unfilled


def _as_strings(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [v if isinstance(v, pulumi.Output) else str(v) for v in value]
    if isinstance(value, Mapping):
        return [pulumi.Output.json_dumps(dict(value))]
    return [value if isinstance(value, pulumi.Output) else str(value)]


def document_parameters(path: Path) -> Mapping[str, Any] | None:
    return (yaml.safe_load(path.read_text()) or {}).get("parameters", {}) if path.is_file() else None


def lifecycle_event(factory: FactoryConfig) -> dict[str, Any]:
    """The event handlers/lifecycle.py parses (LifecycleRequest): the retention policy from config."""
    lc = factory.lifecycle
    # No account list: the handler reads every env's /bakehouse/<env>/ami/* pins through the accounts it
    # finds under /bakehouse/factory/targets, so the input is the same size for 3 envs or 500.
    return {
        "CopyRegions": list(factory.regions),
        "Families": [f.name for f in factory.families],
        "KeepNewest": lc.keep,
        "KeepDays": lc.keep_days,
        "GraceDays": lc.grace_days,
        "ProdRetentionYears": lc.prod_retention_years,
        "DryRun": lc.dry_run,
    }


def scheduler_statements(
    cfg: StackConfig,
    *,
    automation_role_arn: str,
    lifecycle_queue_arn: pulumi.Input[str] | None,
    queue_arn: pulumi.Input[str],
    key_arn: pulumi.Input[str],
) -> list[dict[str, Any]]:
    region, account = cfg.region, cfg.account_id
    rescan = automation_document_name(RESCAN_STEM)
    return [
        # The rescan and the base-image check; never the Pipeline itself: the check decides which family needs it.
        statement(
            "StartRescanAndBaseImageCheckOnly",
            ["ssm:StartAutomationExecution"],
            [
                f"arn:aws:ssm:{region}:{account}:automation-definition/{rescan}:*",
                f"arn:aws:ssm:{region}:{account}:automation-definition/{automation_document_name(BASE_CHECK_STEM)}:*",
            ],
        ),
        statement(
            "PassAutomationRoleToSsm",
            ["iam:PassRole"],
            [automation_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}},
        ),
        *([statement("QueueLifecycleRuns", ["sqs:SendMessage"], [lifecycle_queue_arn])] if lifecycle_queue_arn else []),
        statement("DeadLetters", ["sqs:SendMessage"], [queue_arn]),
        statement(
            "DecryptSchedules",
            ["kms:Decrypt"],
            [key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"scheduler.{region}.amazonaws.com"}},
        ),
        statement(
            "EncryptQueuedMessages",
            ["kms:GenerateDataKey*", "kms:Decrypt"],
            [key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}},
        ),
    ]


def lifecycle_statements(
    cfg: StackConfig, factory: FactoryConfig, *, key_arn: pulumi.Input[str], queue_arn: pulumi.Input[str]
) -> list[dict[str, Any]]:
    """What the lifecycle function needs; `queue_arn` is the FIFO queue its runs arrive on."""
    region, account = cfg.region, cfg.account_id
    regions = (region, *factory.regions)
    images = [f"arn:aws:ec2:{r}::{kind}/*" for r in regions for kind in ("image", "snapshot")]
    return [
        # Describe calls have no resource-level permissions; the region condition is the only scope.
        statement(
            "DescribeImages",
            ["ec2:DescribeImages", "ec2:DescribeSnapshots"],
            ["*"],
            conditions={"StringEquals": {"aws:RequestedRegion": list(regions)}},
        ),
        statement("ReadImageAttributes", ["ec2:DescribeImageAttribute"], [i for i in images if ":image/" in i]),
        statement(
            "RetireFactoryImagesOnly",
            ["ec2:EnableImageDeprecation", "ec2:DisableImageDeprecation", "ec2:DeregisterImage", "ec2:CreateTags"],
            [i for i in images if ":image/" in i],
            conditions={"Null": {"ec2:ResourceTag/bakehouse:family": "false"}},
        ),
        # Snapshots carry no copy of their image's tags; the factory's regions of this account are the scope.
        statement("DeleteRetiredSnapshots", ["ec2:DeleteSnapshot"], [i for i in images if ":snapshot/" in i]),
        # The workload accounts' image scanner role, to read which images their envs still name; only in the
        # workload OUs (aws:ResourceOrgPaths), so the statement does not grow with the number of accounts.
        statement(
            "ReadWorkloadPins",
            ["sts:AssumeRole"],
            [role_arn("*", IMAGE_SCANNER_ROLE)],
            conditions={
                "ForAnyValue:StringLike": {
                    "aws:ResourceOrgPaths": ou_path_patterns(cfg.estate.organization_id, factory.workload_ous)
                }
            },
        ),
        statement(
            "ReadImageRegistry",
            ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:GetParameterHistory"],
            [
                f"arn:aws:ssm:{region}:{account}:parameter/bakehouse/images/*",
                f"arn:aws:ssm:{region}:{account}:parameter/bakehouse/factory/*",
            ],
        ),
        statement(
            "OwnLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{LIFECYCLE_FUNCTION}:*"],
        ),
        # The event source mapping polls with the function's role.
        statement(
            "ConsumeLifecycleRuns",
            ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"],
            [queue_arn],
        ),
        statement(
            "DecryptLifecycleRuns",
            ["kms:Decrypt"],
            [key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}},
        ),
    ]


@dataclass(frozen=True)
class FactorySchedulesArgs:
    cfg: StackConfig
    factory: FactoryConfig
    key_arn: pulumi.Input[str]  # the factory key (schedules, queue, function, logs)
    scheduler_role: aws.iam.Role
    lifecycle_role: aws.iam.Role
    role_arns: Mapping[str, str]
    rescan_values: Mapping[str, Any]  # what the rescan document may be given, by parameter name
    rescan_document: Path = PROJECT_DIR / "automation" / f"{RESCAN_STEM}.yaml"
    depends_on: Sequence[pulumi.Resource] = ()  # the rescan document must exist before its schedule


class FactorySchedules(pulumi.ComponentResource):
    def __init__(self, name: str, args: FactorySchedulesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:build:FactorySchedules", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cfg, factory = args.cfg, args.factory

        self.dead_letters = dead_letter_queue(f"{name}-dead-letters", "bakehouse-factory-schedules-dlq", args.key_arn, child)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-lifecycle-logs",
            name=f"/aws/lambda/{LIFECYCLE_FUNCTION}",
            retention_in_days=365,
            kms_key_id=args.key_arn,
            opts=child,
        )
        # A FIFO queue's dead-letter queue must be FIFO too.
        self.lifecycle_dead_letters = dead_letter_queue(
            f"{name}-lifecycle-dead-letters", f"{LIFECYCLE_FUNCTION}-dlq.fifo", args.key_arn, child, fifo=True
        )
        self.lifecycle_queue = aws.sqs.Queue(
            f"{name}-lifecycle-queue",
            name=f"{LIFECYCLE_FUNCTION}.fifo",
            fifo_queue=True,
            # Scheduler's SQS target sets a message group but no deduplication id.
            content_based_deduplication=True,
            kms_master_key_id=args.key_arn,
            kms_data_key_reuse_period_seconds=300,
            visibility_timeout_seconds=LIFECYCLE_VISIBILITY_SECONDS,
            message_retention_seconds=24 * 3600,
            redrive_policy=pulumi.Output.json_dumps(
                {"deadLetterTargetArn": self.lifecycle_dead_letters.arn, "maxReceiveCount": LIFECYCLE_MAX_RECEIVES}
            ),
            opts=child,
        )
        topic_arn = f"arn:aws:sns:{cfg.region}:{cfg.account_id}:{NOTIFICATIONS_TOPIC}"
        self.alarms = {
            "schedules": dead_letter_alarm(
                f"{name}-schedules-dlq-alarm",
                "bakehouse-factory-schedule-delivery-failed",
                self.dead_letters,
                topic_arn,
                "EventBridge Scheduler could not start a factory run (rescan or lifecycle) after retries",
                child,
            ),
            "lifecycle": dead_letter_alarm(
                f"{name}-lifecycle-dlq-alarm",
                "bakehouse-image-lifecycle-failed",
                self.lifecycle_dead_letters,
                topic_arn,
                "An image lifecycle run failed on every attempt and was dead-lettered",
                child,
            ),
        }
        lifecycle_policy = aws.iam.RolePolicy(
            f"{name}-lifecycle-policy",
            role=args.lifecycle_role.name,
            policy=document(*lifecycle_statements(cfg, factory, key_arn=args.key_arn, queue_arn=self.lifecycle_queue.arn)),
            opts=child,
        )

        self.lifecycle: aws.lambda_.Function | None = None
        missing = [m for m in LIFECYCLE_MEMBERS if not (PROJECT_DIR / m).is_file()]
        if missing:
            # The handler is the operations area's; until it lands no function is declared, and that is said.
            pulumi.log.warn(f"missing artifact {', '.join(missing)}: no lifecycle function or schedule declared", self)
        else:
            self.lifecycle = self._lifecycle_function(name, args, log_group, child)
            # CreateEventSourceMapping checks that the role may read the queue: the policy comes first.
            aws.lambda_.EventSourceMapping(
                f"{name}-lifecycle-trigger",
                event_source_arn=self.lifecycle_queue.arn,
                function_name=self.lifecycle.name,
                batch_size=1,
                enabled=True,
                opts=child.merge(pulumi.ResourceOptions(depends_on=[lifecycle_policy])),
            )

        aws.iam.RolePolicy(
            f"{name}-scheduler-policy",
            role=args.scheduler_role.name,
            policy=document(
                *scheduler_statements(
                    cfg,
                    automation_role_arn=args.role_arns["automation"],
                    lifecycle_queue_arn=self.lifecycle_queue.arn if self.lifecycle else None,
                    queue_arn=self.dead_letters.arn,
                    key_arn=args.key_arn,
                )
            ),
            opts=child,
        )

        self.group = aws.scheduler.ScheduleGroup(f"{name}-group", name="bakehouse-factory", opts=child)
        window = aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="FLEXIBLE", maximum_window_in_minutes=FLEXIBLE_WINDOW_MINUTES)
        retry = aws.scheduler.ScheduleTargetRetryPolicyArgs(maximum_event_age_in_seconds=3600, maximum_retry_attempts=3)
        dlq = aws.scheduler.ScheduleTargetDeadLetterConfigArgs(arn=self.dead_letters.arn)
        declared = document_parameters(args.rescan_document)
        rescan_params, unfilled = automation_parameters(declared, args.rescan_values)
        if declared is None:
            pulumi.log.warn(
                f"missing artifact {args.rescan_document}: the rescan schedule sends every known "
                "parameter until the document declares its own",
                self,
            )
        if unfilled:
            pulumi.log.warn(
                f"{args.rescan_document.name} requires {', '.join(unfilled)}, which the build stack "
                "cannot supply: scheduled rescans would fail",
                self,
            )
        after_roles = child.merge(pulumi.ResourceOptions(depends_on=list(args.depends_on)))

        def schedule(
            resource: str,
            schedule_name: str,
            description: str,
            expression: str,
            target_arn: pulumi.Input[str],
            target_input: pulumi.Input[str],
            opts: pulumi.ResourceOptions,
            **target: Any,
        ) -> aws.scheduler.Schedule:
            # Every factory schedule: UTC, the flexible window, encrypted with the factory key, the scheduler
            # role, three retries within an hour, then the dead-letter queue.
            return aws.scheduler.Schedule(
                f"{name}-{resource}",
                name=schedule_name,
                group_name=self.group.name,
                description=description,
                schedule_expression=expression,
                schedule_expression_timezone="UTC",
                flexible_time_window=window,
                kms_key_arn=args.key_arn,
                state="ENABLED",
                target=aws.scheduler.ScheduleTargetArgs(
                    arn=target_arn,
                    role_arn=args.scheduler_role.arn,
                    input=target_input,
                    retry_policy=retry,
                    dead_letter_config=dlq,
                    **target,
                ),
                opts=opts,
            )

        def start_automation(stem: str, parameters: Any) -> pulumi.Output[str]:
            return pulumi.Output.json_dumps({"DocumentName": automation_document_name(stem), "Parameters": parameters})

        automation_role = [args.role_arns["automation"]]
        self.rescan = schedule(
            "rescan",
            "bakehouse-rescan-images",
            "Rescan every published and in-use golden image for new CVEs",
            factory.rescan.schedule,
            START_AUTOMATION_TARGET,
            start_automation(RESCAN_STEM, rescan_params),
            after_roles,
        )
        self.base_image_check = schedule(
            "check-base-images",
            "bakehouse-check-base-images",
            "Rebuild every family whose base AMI AWS has replaced since its image was built",
            factory.rebuild_schedule,
            START_AUTOMATION_TARGET,
            start_automation(BASE_CHECK_STEM, {"AutomationAssumeRole": automation_role}),
            after_roles,
        )
        forced = factory.forced_rebuild_schedule
        self.forced_rebuild = (
            None
            if forced is None
            else schedule(
                "forced-rebuild",
                "bakehouse-forced-rebuild",
                "Rebuild every published family on its unchanged base, picking up OS updates",
                forced,
                START_AUTOMATION_TARGET,
                start_automation(BASE_CHECK_STEM, {"AutomationAssumeRole": automation_role, "ForcedRebuildAt": [SCHEDULED_TIME]}),
                after_roles,
            )
        )
        self.lifecycle_schedule = (
            None
            if self.lifecycle is None
            else schedule(
                "lifecycle-schedule",
                "bakehouse-image-lifecycle",
                "Deprecate and retire golden images past their keep window",
                factory.lifecycle.schedule,
                self.lifecycle_queue.arn,
                json.dumps(lifecycle_event(factory), sort_keys=True),
                child,
                sqs_parameters=aws.scheduler.ScheduleTargetSqsParametersArgs(message_group_id=LIFECYCLE_MESSAGE_GROUP),
            )
        )
        self.register_outputs(
            {
                "rescan_schedule": self.rescan.name,
                "lifecycle_function": self.lifecycle.name if self.lifecycle else None,
                "dead_letter_queue": self.dead_letters.arn,
                "lifecycle_queue": self.lifecycle_queue.arn,
            }
        )

    def _lifecycle_function(
        self, name: str, args: FactorySchedulesArgs, log_group: aws.cloudwatch.LogGroup, child: pulumi.ResourceOptions
    ) -> aws.lambda_.Function:
        code = package(PROJECT_DIR, LIFECYCLE_MEMBERS, "lifecycle")
        return aws.lambda_.Function(
            f"{name}-lifecycle",
            name=LIFECYCLE_FUNCTION,
            role=args.lifecycle_role.arn,
            runtime=LAMBDA_RUNTIME,
            handler="handlers.lifecycle.handler",
            code=pulumi.FileArchive(str(code.path)),
            source_code_hash=code.sha256_b64,
            architectures=["arm64"],
            memory_size=256,
            timeout=LIFECYCLE_TIMEOUT,
            # No reserved concurrency: runs are serialized by the FIFO queue's single message group
            # (two concurrent retirements could both decide on the same image). Failed runs are
            # retried by SQS and end in the queue's dead-letter queue.
            kms_key_arn=args.key_arn,
            # No environment: the schedule's event carries the policy, so nothing here could leak.
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=log_group.name),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[log_group])),
        )
