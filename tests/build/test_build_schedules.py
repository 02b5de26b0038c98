"""The factory's schedules: daily rescan automation and the lifecycle function, as declared."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
import yaml

from components.build.factory_schedules import LIFECYCLE_MEMBERS, START_AUTOMATION_TARGET, automation_parameters
from handlers.lifecycle import LifecycleRequest
from tools.mockrun import PROJECT_DIR, cached_run

# Lambda Python runtimes AWS has not deprecated (python3.9 reached end of support in 2025).
SUPPORTED_RUNTIMES = {"python3.11", "python3.12", "python3.13"}
SECRET_LOOKING = re.compile(r"(?i)secret|password|passwd|token|private[_-]?key|credential|api[_-]?key")
FACTORY_KEY = "arn:aws:kms:eu-west-1:333333333333:key/build-factory-key-key"


def schedule(run, name):
    (found,) = [s for s in run.of_type("aws:scheduler/schedule:Schedule") if s.inputs["name"] == name]
    return found.inputs


def test_rescan_schedule_starts_the_rescan_document_as_the_automation_role(stack_run):
    rescan = schedule(stack_run("build"), "bakehouse-rescan-images")
    assert rescan["scheduleExpression"] == "rate(1 day)"
    assert rescan["target"]["arn"] == START_AUTOMATION_TARGET
    request = json.loads(rescan["target"]["input"])
    assert request["DocumentName"] == "Bakehouse-RescanImages"
    params = request["Parameters"]
    assert all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in params.values())
    assert params["AutomationAssumeRole"] == ["arn:aws:iam::333333333333:role/BakehouseFactoryAutomation"]
    if "BatchSize" in params:
        assert params["BatchSize"] == ["10"]
    assert rescan["target"]["roleArn"].endswith("role/build-roles-scheduler")


def test_rescan_schedule_supplies_every_required_parameter_of_the_rescan_document(stack_run):
    path = PROJECT_DIR / "automation" / "rescan_images.yaml"
    if not path.is_file():
        pytest.skip("automation/rescan_images.yaml not written yet (operations area)")
    declared = yaml.safe_load(path.read_text())["parameters"]
    params = json.loads(schedule(stack_run("build"), "bakehouse-rescan-images")["target"]["input"])["Parameters"]
    assert set(params) <= set(declared), set(params) - set(declared)
    required = {n for n, spec in declared.items() if "default" not in spec}
    assert required <= set(params), required - set(params)
    assert not [line for line in stack_run("build").logs if "rescan" in line]


def test_automation_parameters_send_declared_names_only_and_report_unfillable_ones():
    declared = {
        "AutomationAssumeRole": {"type": "String"},
        "BatchSize": {"type": "Integer", "default": 5},
        "Ids": {"type": "StringList"},
        "Mystery": {"type": "String"},
        "Optional": {"default": "x"},
    }
    known = {"AutomationAssumeRole": "arn:aws:iam::1:role/r", "BatchSize": 10, "Ids": ["a", "b"], "Extra": "e"}
    params, unfilled = automation_parameters(declared, known)
    assert params == {"AutomationAssumeRole": ["arn:aws:iam::1:role/r"], "BatchSize": ["10"], "Ids": ["a", "b"]}
    assert unfilled == ["Mystery"]
    everything, none_missing = automation_parameters(None, known)
    assert set(everything) == set(known) and none_missing == []


def test_lifecycle_schedule_sends_the_configured_policy_as_the_handler_parses_it(stack_run):
    run = stack_run("build")
    lifecycle = schedule(run, "bakehouse-image-lifecycle")
    assert lifecycle["scheduleExpression"] == "cron(0 3 * * ? *)"
    assert lifecycle["target"]["arn"].endswith("queue/build-schedules-lifecycle-queue")
    request = LifecycleRequest.parse(json.loads(lifecycle["target"]["input"]))
    assert request.copy_regions == ("eu-central-1", "us-east-1")
    assert request.families == ("al2023", "ubuntu2404")
    assert (
        request.policy.keep_newest,
        request.policy.keep_days,
        request.policy.grace_days,
        request.policy.prod_retention_years,
    ) == (3, 30, 14, 1)
    assert request.dry_run is False  # the handler defaults to a dry run; the config decides


@pytest.mark.parametrize("name", ["bakehouse-rescan-images", "bakehouse-image-lifecycle"])
def test_schedules_are_kms_encrypted_flexible_grouped_and_dead_lettered(stack_run, name):
    inputs = schedule(stack_run("build"), name)
    assert inputs["kmsKeyArn"] == FACTORY_KEY
    assert inputs["groupName"] == "bakehouse-factory"
    assert inputs["flexibleTimeWindow"]["mode"] == "FLEXIBLE"
    assert 1 <= inputs["flexibleTimeWindow"]["maximumWindowInMinutes"] <= 1440
    assert inputs["target"]["deadLetterConfig"]["arn"].endswith("queue/build-schedules-dead-letters")
    assert inputs["target"]["retryPolicy"]["maximumRetryAttempts"] >= 1


def test_schedule_expression_and_batch_size_follow_the_config():
    factory = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())["config"]["bakehouse:factory"]
    factory["rescan"] = {"schedule": "rate(12 hours)", "batchSize": 5}
    run = cached_run("build", overrides={"bakehouse:factory": factory})
    rescan = schedule(run, "bakehouse-rescan-images")
    assert rescan["scheduleExpression"] == "rate(12 hours)"
    params = json.loads(rescan["target"]["input"])["Parameters"]
    assert params.get("BatchSize", ["5"]) == ["5"]


def test_lifecycle_function_runs_a_supported_runtime_with_kms_and_its_own_log_group(stack_run):
    (fn,) = stack_run("build").of_type("aws:lambda/function:Function")
    inputs = fn.inputs
    assert inputs["runtime"] in SUPPORTED_RUNTIMES
    assert inputs["handler"] == "handlers.lifecycle.handler"
    assert inputs["kmsKeyArn"] == FACTORY_KEY
    assert inputs["role"].endswith("role/build-roles-lifecycle")
    assert inputs["loggingConfig"]["logGroup"] == "/aws/lambda/bakehouse-image-lifecycle"


def test_lifecycle_function_has_no_environment_to_leak(stack_run):
    (fn,) = stack_run("build").of_type("aws:lambda/function:Function")
    variables = (fn.inputs.get("environment") or {}).get("variables") or {}
    for name, value in variables.items():
        assert not SECRET_LOOKING.search(name) and not re.search(r"AKIA[0-9A-Z]{16}|-----BEGIN", value), name
    assert variables == {}  # the schedule's event carries the policy


def test_lifecycle_package_holds_the_handler_and_its_common_module_only(stack_run):
    (fn,) = stack_run("build").of_type("aws:lambda/function:Function")
    archive = Path(fn.inputs["code"].path)
    assert sorted(zipfile.ZipFile(archive).namelist()) == sorted(LIFECYCLE_MEMBERS)


def test_every_factory_schedule_queue_is_kms_encrypted(stack_run):
    queues = stack_run("build").of_type("aws:sqs/queue:Queue")
    assert queues and all(q.inputs["kmsMasterKeyId"] == FACTORY_KEY for q in queues)


def test_lifecycle_function_reserves_no_concurrency(stack_run):
    # A new account's concurrency pool is 10 and Lambda keeps a minimum unreserved, so any
    # reservation fails the first deploy (Lambda developer guide, "Configuring reserved concurrency").
    (fn,) = stack_run("build").of_type("aws:lambda/function:Function")
    assert fn.inputs.get("reservedConcurrentExecutions") in (None, -1)


def test_lifecycle_runs_one_at_a_time_through_a_fifo_queue_with_a_single_message_group(stack_run):
    run = stack_run("build")
    lifecycle = schedule(run, "bakehouse-image-lifecycle")
    assert lifecycle["target"]["sqsParameters"]["messageGroupId"]
    queue = run.named("build-schedules-lifecycle-queue").inputs
    assert queue["fifoQueue"] is True and queue["name"].endswith(".fifo")
    assert queue["contentBasedDeduplication"] is True  # Scheduler sends no deduplication id
    (fn,) = run.of_type("aws:lambda/function:Function")
    # A message still being worked on must not reappear (and start a second run) before the timeout.
    assert queue["visibilityTimeoutSeconds"] >= fn.inputs["timeout"]
    (mapping,) = run.of_type("aws:lambda/eventSourceMapping:EventSourceMapping")
    assert mapping.inputs["eventSourceArn"].endswith("queue/build-schedules-lifecycle-queue")
    assert mapping.inputs["functionName"] == fn.inputs["name"]
    assert mapping.inputs["batchSize"] == 1


def test_lifecycle_runs_that_keep_failing_end_in_a_fifo_dead_letter_queue(stack_run):
    run = stack_run("build")
    redrive = json.loads(run.named("build-schedules-lifecycle-queue").inputs["redrivePolicy"])
    dead = run.named("build-schedules-lifecycle-dead-letters").inputs
    assert dead["fifoQueue"] is True and dead["kmsMasterKeyId"] == FACTORY_KEY
    assert redrive["deadLetterTargetArn"].endswith("queue/build-schedules-lifecycle-dead-letters")
    assert 1 <= redrive["maxReceiveCount"] <= 5


# --- failures announced (issue 15.5) ------------------------------------------------------------
NOTIFICATIONS = "arn:aws:sns:eu-west-1:333333333333:bakehouse-factory-notifications"


def _matches(pattern: dict, event: dict) -> bool:
    """EventBridge matching for the shapes used here: value lists and {"prefix": ...}."""
    for key, want in pattern.items():
        got = event.get(key)
        if isinstance(want, dict):
            if not isinstance(got, dict) or not _matches(want, got):
                return False
            continue
        if not any((isinstance(w, dict) and isinstance(got, str) and got.startswith(w["prefix"])) or w == got for w in want):
            return False
    return True


def _failure_event(definition: str, status: str) -> dict:
    return {
        "source": "aws.ssm",
        "detail-type": "EC2 Automation Execution Status-change Notification",
        "detail": {"ExecutionId": "e-1", "Definition": definition, "Status": status},
    }


def test_every_bakehouse_automation_that_fails_times_out_or_is_cancelled_is_announced(stack_run):
    run = stack_run("build")
    [rule] = [
        r for r in run.of_type("aws:cloudwatch/eventRule:EventRule") if r.inputs.get("name") == "bakehouse-automation-failed"
    ]
    pattern = json.loads(rule.inputs["eventPattern"])
    for definition in ("Bakehouse-Pipeline", "Bakehouse-RescanImages", "Bakehouse-BuildImage", "Bakehouse-ApproveImage"):
        for status in ("Failed", "TimedOut", "Cancelled"):
            assert _matches(pattern, _failure_event(definition, status)), (definition, status)
        assert not _matches(pattern, _failure_event(definition, "Success"))
    assert not _matches(pattern, _failure_event("AWS-RunPatchBaseline", "Failed"))
    targets = [t for t in run.of_type("aws:cloudwatch/eventTarget:EventTarget") if t.inputs["rule"] == rule.inputs["name"]]
    [target] = targets
    assert target.inputs["arn"].endswith("factory-notifications")  # the mocks shape topic ARNs by resource name


def test_dead_letters_of_the_lifecycle_and_the_schedules_raise_alarms_on_the_notifications_topic(stack_run):
    alarms = {a.inputs["name"]: a.inputs for a in stack_run("build").of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    expected = {
        "bakehouse-factory-schedule-delivery-failed": "bakehouse-factory-schedules-dlq",
        "bakehouse-image-lifecycle-failed": "bakehouse-image-lifecycle-dlq.fifo",
    }
    for name, queue in expected.items():
        alarm = alarms[name]
        assert alarm["namespace"] == "AWS/SQS" and alarm["metricName"] == "ApproximateNumberOfMessagesVisible"
        assert alarm["dimensions"] == {"QueueName": queue}
        assert alarm["threshold"] == 0 and alarm["comparisonOperator"] == "GreaterThanThreshold"
        assert alarm["alarmActions"] == [NOTIFICATIONS]


def test_the_notifications_topic_admits_the_factory_alarms_and_the_failure_rule(stack_run):
    from tests.iam.evaluate import wildcard_match

    run = stack_run("build")
    [policy] = [
        json.loads(p.inputs["policy"]) for p in run.of_type("aws:sns/topicPolicy:TopicPolicy") if "notifications" in p.name
    ]
    [alarms] = [st for st in policy["Statement"] if st["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert alarms["Action"] == ["sns:Publish"] and alarms["Condition"]["StringEquals"] == {"aws:SourceAccount": "333333333333"}
    source = alarms["Condition"]["ArnLike"]["aws:SourceArn"]
    names = [a.inputs["name"] for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")]
    assert names and all(wildcard_match(source, f"arn:aws:cloudwatch:eu-west-1:333333333333:alarm:{n}") for n in names)
    assert not wildcard_match(source, "arn:aws:cloudwatch:eu-west-1:999999999999:alarm:bakehouse-x")
    assert any(st["Principal"] == {"Service": "events.amazonaws.com"} for st in policy["Statement"])


def test_topics_get_their_subscribers_from_config(stack_run):
    factory = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())["config"]["bakehouse:factory"]
    subs = stack_run("build").of_type("aws:sns/topicSubscription:TopicSubscription")
    # the mocks shape a topic's ARN from its resource name (build-factory-<topic>)
    got = {(s.inputs["topic"].rsplit("-", 1)[-1], s.inputs["protocol"], s.inputs["endpoint"]) for s in subs}
    topics = {"approvers": "approvers", "notifications": "notifications"}
    want = {(topics[t], e["protocol"], e["endpoint"]) for t, entries in factory["subscriptions"].items() for e in entries}
    assert want and want <= got


def test_the_rebuild_schedule_starts_the_base_image_check_as_the_automation_role(stack_run):
    run = stack_run("build")
    check = schedule(run, "bakehouse-check-base-images")
    configured = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())["config"]["bakehouse:factory"]
    assert check["scheduleExpression"] == configured.get("rebuildSchedule", "rate(1 day)")
    assert check["target"]["arn"] == START_AUTOMATION_TARGET
    request = json.loads(check["target"]["input"])
    assert request["DocumentName"] == "Bakehouse-CheckBaseImages"
    declared = yaml.safe_load((PROJECT_DIR / "automation" / "check_base_images.yaml").read_text())["parameters"]
    assert set(request["Parameters"]) == {n for n, spec in declared.items() if "default" not in spec}
    assert request["Parameters"]["AutomationAssumeRole"] == ["arn:aws:iam::333333333333:role/BakehouseFactoryAutomation"]
    assert check["kmsKeyArn"] == FACTORY_KEY and check["groupName"] == "bakehouse-factory"
    assert check["target"]["deadLetterConfig"]["arn"].endswith("queue/build-schedules-dead-letters")


def test_the_scheduler_may_start_the_rescan_and_the_base_image_check_and_nothing_else(stack_run):
    from tests.iam.evaluate import allowed

    (policy,) = [
        p for p in stack_run("build").of_type("aws:iam/rolePolicy:RolePolicy") if p.name == "build-schedules-scheduler-policy"
    ]
    doc = policy.inputs["policy"]
    base = "arn:aws:ssm:eu-west-1:333333333333:automation-definition/"
    assert allowed(doc, "ssm:StartAutomationExecution", f"{base}Bakehouse-CheckBaseImages:$DEFAULT")
    assert allowed(doc, "ssm:StartAutomationExecution", f"{base}Bakehouse-RescanImages:$DEFAULT")
    # the check decides which family needs the Pipeline; the clock never starts it blindly
    assert not allowed(doc, "ssm:StartAutomationExecution", f"{base}Bakehouse-Pipeline:$DEFAULT")


@pytest.mark.parametrize("value", ["rate(1 week)", "cron(0 3 * * *)", "", 7])
def test_a_rebuild_schedule_that_scheduler_would_refuse_is_refused_with_its_key(value):
    from estate.config import ConfigError

    factory = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())["config"]["bakehouse:factory"]
    run = cached_run("build", overrides={"bakehouse:factory": {**factory, "rebuildSchedule": value}}, raise_errors=False)
    assert isinstance(run.error, ConfigError)
    assert "bakehouse:factory.rebuildSchedule is" in str(run.error)
    assert "a recurring EventBridge Scheduler expression" in str(run.error)


def test_the_rebuild_schedule_follows_the_config():
    factory = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())["config"]["bakehouse:factory"]
    run = cached_run("build", overrides={"bakehouse:factory": {**factory, "rebuildSchedule": "rate(6 hours)"}})
    assert schedule(run, "bakehouse-check-base-images")["scheduleExpression"] == "rate(6 hours)"


def test_the_forced_rebuild_schedule_starts_the_check_with_the_ticks_time_weekly_by_default(stack_run):
    run = stack_run("build")
    forced = schedule(run, "bakehouse-forced-rebuild")
    configured = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())["config"]["bakehouse:factory"]
    assert forced["scheduleExpression"] == configured.get("forcedRebuildSchedule", "rate(7 days)")
    assert forced["target"]["arn"] == START_AUTOMATION_TARGET
    request = json.loads(forced["target"]["input"])
    assert request["DocumentName"] == "Bakehouse-CheckBaseImages"
    declared = yaml.safe_load((PROJECT_DIR / "automation" / "check_base_images.yaml").read_text())["parameters"]
    assert set(request["Parameters"]) <= set(declared)
    # Scheduler substitutes its context attribute; the same tick retried carries the same time.
    assert request["Parameters"]["ForcedRebuildAt"] == ["<aws.scheduler.scheduled-time>"]
    assert request["Parameters"]["AutomationAssumeRole"] == ["arn:aws:iam::333333333333:role/BakehouseFactoryAutomation"]
    assert forced["kmsKeyArn"] == FACTORY_KEY and forced["groupName"] == "bakehouse-factory"
    assert forced["target"]["deadLetterConfig"]["arn"].endswith("queue/build-schedules-dead-letters")


def test_a_forced_rebuild_schedule_set_off_declares_no_schedule():
    factory = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())["config"]["bakehouse:factory"]
    run = cached_run("build", overrides={"bakehouse:factory": {**factory, "forcedRebuildSchedule": "off"}})
    names = {s.inputs["name"] for s in run.of_type("aws:scheduler/schedule:Schedule")}
    assert "bakehouse-forced-rebuild" not in names and "bakehouse-check-base-images" in names


def test_the_forced_rebuild_schedule_follows_the_config():
    factory = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())["config"]["bakehouse:factory"]
    run = cached_run("build", overrides={"bakehouse:factory": {**factory, "forcedRebuildSchedule": "cron(0 3 ? * SUN *)"}})
    assert schedule(run, "bakehouse-forced-rebuild")["scheduleExpression"] == "cron(0 3 ? * SUN *)"


@pytest.mark.parametrize("value", ["rate(1 week)", "weekly", "", 7, None])
def test_a_forced_rebuild_schedule_that_scheduler_would_refuse_is_refused_with_its_key(value):
    from estate.config import ConfigError

    factory = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())["config"]["bakehouse:factory"]
    run = cached_run("build", overrides={"bakehouse:factory": {**factory, "forcedRebuildSchedule": value}}, raise_errors=False)
    assert isinstance(run.error, ConfigError)
    assert "bakehouse:factory.forcedRebuildSchedule is" in str(run.error)
    assert "a recurring EventBridge Scheduler expression" in str(run.error) and '"off"' in str(run.error)
