"""A dead-letter queue and the alarm that says something landed in it: every account's schedules use them.

EventBridge Scheduler dead-letters only to a standard SQS queue in the schedule's account and region, and
sends with the schedule's execution role, which needs sqs:SendMessage on it (and, for a KMS-encrypted
queue, the key's use through SQS) (EventBridge Scheduler user guide, "Configuring a schedule's dead-letter
queue in EventBridge Scheduler").
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from .iam import statement

RETENTION_SECONDS = 14 * 24 * 3600  # SQS's longest: time to read what failed


def dead_letter_queue(
    name: str, queue_name: str, key_arn: pulumi.Input[str], opts: pulumi.ResourceOptions, *, fifo: bool = False
) -> aws.sqs.Queue:
    """A KMS-encrypted queue that keeps what it receives as long as SQS allows."""
    return aws.sqs.Queue(
        name,
        name=queue_name,
        fifo_queue=True if fifo else None,  # None: left out, as a standard queue declares it
        kms_master_key_id=key_arn,
        kms_data_key_reuse_period_seconds=300,
        message_retention_seconds=RETENTION_SECONDS,
        opts=opts,
    )


def dead_letter_alarm(
    name: str, alarm_name: str, queue: aws.sqs.Queue, topic_arn: str, what: str, opts: pulumi.ResourceOptions
) -> aws.cloudwatch.MetricAlarm:
    """Anything in a dead-letter queue is a run that never happened: say so on the topic."""
    # AWS/SQS ApproximateNumberOfMessagesVisible by QueueName (Amazon SQS developer guide,
    # "Available CloudWatch metrics for Amazon SQS").
    return aws.cloudwatch.MetricAlarm(
        name,
        name=alarm_name,
        alarm_description=what,
        namespace="AWS/SQS",
        metric_name="ApproximateNumberOfMessagesVisible",
        dimensions={"QueueName": queue.name},
        statistic="Maximum",
        period=300,
        evaluation_periods=1,
        threshold=0,
        comparison_operator="GreaterThanThreshold",
        treat_missing_data="notBreaching",
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
        opts=opts,
    )


def dead_letter_statements(queue_arn: pulumi.Input[str], key_arn: pulumi.Input[str], region: str) -> list[dict[str, Any]]:
    """A schedule's execution role: send to its dead-letter queue, encrypting with the queue's key through SQS."""
    return [
        statement("DeadLetters", ["sqs:SendMessage"], [queue_arn]),
        statement(
            "EncryptDeadLetters",
            ["kms:GenerateDataKey*", "kms:Decrypt"],
            [key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"sqs.{region}.amazonaws.com"}},
        ),
    ]
