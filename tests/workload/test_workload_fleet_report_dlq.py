"""The fleet report's schedule dead-letters what it could not deliver, and says so on the security topic.

EventBridge Scheduler user guide, "Configuring a schedule's dead-letter queue in EventBridge Scheduler": a
standard SQS queue in the schedule's account and region, sent to with the execution role (sqs:SendMessage,
and the key's use for an encrypted queue).
"""

from __future__ import annotations

import json

import pytest

from components.workload.fleet_lifetime import DEAD_LETTER_QUEUE, SCHEDULER_ROLE_NAME, dead_letter_key_statement
from tests.iam.evaluate import allowed
from tests.iam.key_policy import Caller
from tests.iam.key_policy import evaluate as key_evaluate
from tools.mockrun import cached_run

ACCOUNT, REGION = "444444444444", "eu-west-1"  # Pulumi.dev.yaml
SCHEDULER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/{SCHEDULER_ROLE_NAME}"
VIA_SQS = {"kms:ViaService": f"sqs.{REGION}.amazonaws.com"}


def _schedule(run) -> dict:
    [schedule] = [
        s.inputs for s in run.of_type("aws:scheduler/schedule:Schedule") if s.inputs["name"] == "bakehouse-fleet-report"
    ]
    return schedule


def _queue(run):
    [queue] = [q for q in run.of_type("aws:sqs/queue:Queue") if q.inputs["name"] == DEAD_LETTER_QUEUE]
    return queue


def _queue_arn(run) -> str:
    # the mocks shape an ARN as arn:aws:<service>:<region>:<account>:<kind>/<resource name>
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:queue/{_queue(run).name}"


def _scheduler_policy(run) -> str:
    [policy] = [p for p in run.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("fleet-scheduler-policy")]
    return policy.inputs["policy"]


def _account_key(run):
    [key] = [k for k in run.of_type("aws:kms/key:Key") if k.name == "dev-key-key"]
    return key


@pytest.fixture(scope="module")
def run():
    return cached_run("dev")


def test_fleet_report_schedule_dead_letters_to_a_standard_queue_in_its_own_account_and_region(run):
    target = _schedule(run)["target"]
    dlq = target["deadLetterConfig"]["arn"]
    assert dlq == _queue_arn(run)
    _, _, service, region, account, _ = dlq.split(":", 5)
    assert (service, region, account) == ("sqs", REGION, ACCOUNT)
    assert target["arn"].split(":")[3:5] == [REGION, ACCOUNT]
    # Scheduler refuses a FIFO queue as a dead-letter queue
    assert not _queue(run).inputs.get("fifoQueue")
    assert target["retryPolicy"] == {"maximumRetryAttempts": 3, "maximumEventAgeInSeconds": 3600}


def test_fleet_report_scheduler_role_may_send_to_its_dead_letter_queue_and_no_other(run):
    doc, queue = _scheduler_policy(run), _queue_arn(run)
    assert allowed(doc, "sqs:SendMessage", queue)
    assert not allowed(doc, "sqs:SendMessage", f"arn:aws:sqs:{REGION}:{ACCOUNT}:queue/some-other-queue")
    assert not allowed(doc, "sqs:ReceiveMessage", queue)
    assert not allowed(doc, "sqs:DeleteMessage", queue)


def test_fleet_report_dead_letter_queue_is_encrypted_with_the_account_key_the_scheduler_role_may_use_through_sqs(run):
    key_arn = _account_key(run)
    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_arn.name}"
    assert _queue(run).inputs["kmsMasterKeyId"] == key
    doc = _scheduler_policy(run)
    assert allowed(doc, "kms:GenerateDataKey", key, VIA_SQS)
    assert not allowed(doc, "kms:GenerateDataKey", key)  # only through SQS, never directly
    assert not allowed(doc, "kms:GenerateDataKey", key, {"kms:ViaService": f"s3.{REGION}.amazonaws.com"})


def test_the_dead_letter_key_statement_admits_the_scheduler_role_through_sqs_only():
    policy = {"Version": "2012-10-17", "Statement": [dead_letter_key_statement(ACCOUNT, REGION)]}
    role = Caller(SCHEDULER_ROLE)
    assert key_evaluate(policy, role, "kms:GenerateDataKey", VIA_SQS, key_account=ACCOUNT).allowed_with_iam
    assert not key_evaluate(policy, role, "kms:GenerateDataKey", key_account=ACCOUNT).allowed_with_iam
    other = Caller(f"arn:aws:iam::{ACCOUNT}:role/SomeOtherRole")
    assert not key_evaluate(policy, other, "kms:GenerateDataKey", VIA_SQS, key_account=ACCOUNT).allowed_with_iam


def test_the_account_key_policy_admits_the_fleet_report_scheduler_role_through_sqs(run):
    policy = json.loads(_account_key(run).inputs["policy"])
    verdict = key_evaluate(policy, Caller(SCHEDULER_ROLE), "kms:GenerateDataKey", VIA_SQS, key_account=ACCOUNT)
    assert verdict.allowed_with_iam, verdict


def test_fleet_report_dead_letters_raise_an_alarm_on_the_security_topic(run):
    alarms = [a.inputs for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")]
    [alarm] = [a for a in alarms if a.get("dimensions") == {"QueueName": DEAD_LETTER_QUEUE}]
    assert alarm["namespace"] == "AWS/SQS" and alarm["metricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["threshold"] == 0 and alarm["comparisonOperator"] == "GreaterThanThreshold"
    # the topic the workload's other alarms (break-glass use, isolation) are sent to
    alarm_topics = {t.inputs["arn"] for t in run.of_type("aws:cloudwatch/eventTarget:EventTarget") if ":sns:" in t.inputs["arn"]}
    assert alarm_topics == {f"arn:aws:sns:{REGION}:222222222222:bakehouse-security"}
    assert alarm["alarmActions"] == sorted(alarm_topics) and alarm["okActions"] == sorted(alarm_topics)
