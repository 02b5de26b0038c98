"""A Packer pipeline run that fails or is stopped reaches the factory's notifications topic, as a failed
SSM automation does: nobody has to watch the CodePipeline console to learn that no image was built."""

from __future__ import annotations

import json

from components.build.packer_pipeline import PACKER_PIPELINE_FAILED_RULE, PIPELINE_PREFIX
from tests.iam.event_patterns import event_matches

ACCOUNT, REGION = "333333333333", "eu-west-1"


def _execution_event(pipeline: str, state: str) -> dict:
    # "CodePipeline Pipeline Execution State Change" (CodePipeline user guide, "Monitoring CodePipeline events")
    return {
        "version": "0",
        "id": "01234567-0123-0123-0123-012345678901",
        "detail-type": "CodePipeline Pipeline Execution State Change",
        "source": "aws.codepipeline",
        "account": ACCOUNT,
        "time": "2026-11-30T12:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:codepipeline:{REGION}:{ACCOUNT}:{pipeline}"],
        "detail": {"pipeline": pipeline, "execution-id": "e-1", "state": state, "version": 1},
    }


def _rule(run):
    (rule,) = [r for r in run.of_type("aws:cloudwatch/eventRule:EventRule") if r.inputs["name"] == PACKER_PIPELINE_FAILED_RULE]
    return rule


def test_a_failed_or_stopped_packer_run_matches_the_rule_and_a_successful_or_superseded_one_does_not(stack_run):
    run = stack_run("build")
    pattern = _rule(run).inputs["eventPattern"]
    pipeline = f"{PIPELINE_PREFIX}ubuntu2404"
    assert event_matches(pattern, _execution_event(pipeline, "FAILED"))
    assert event_matches(pattern, _execution_event(pipeline, "STOPPED"))
    assert not event_matches(pattern, _execution_event(pipeline, "SUCCEEDED"))
    assert not event_matches(pattern, _execution_event(pipeline, "SUPERSEDED"))  # a newer run carries on
    assert not event_matches(pattern, _execution_event("someone-elses-pipeline", "FAILED"))


def test_the_rule_targets_the_notifications_topic_whose_policy_admits_it(stack_run):
    run = stack_run("build")
    rule = _rule(run)
    (target,) = [
        t for t in run.of_type("aws:cloudwatch/eventTarget:EventTarget") if t.inputs["rule"] == PACKER_PIPELINE_FAILED_RULE
    ]
    # the topic a failed SSM automation reaches (rule bakehouse-automation-failed)
    (automation,) = [
        t for t in run.of_type("aws:cloudwatch/eventTarget:EventTarget") if t.inputs["rule"] == "bakehouse-automation-failed"
    ]
    assert target.inputs["arn"] == automation.inputs["arn"]
    (policy,) = [p for p in run.of_type("aws:sns/topicPolicy:TopicPolicy") if p.inputs["arn"] == target.inputs["arn"]]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    admitted = [
        s["Condition"]["ArnEquals"]["aws:SourceArn"]
        for s in statements
        if s.get("Principal") == {"Service": "events.amazonaws.com"}
    ]
    flat = [arn for entry in admitted for arn in (entry if isinstance(entry, list) else [entry])]
    assert f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{PACKER_PIPELINE_FAILED_RULE}" in flat
    assert rule.inputs.get("eventBusName", "default") == "default"  # the rule arn above is the default bus's
