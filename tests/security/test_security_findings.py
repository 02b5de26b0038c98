"""The finding rule that pages the security team, matched against sample Security Hub events with a
small EventBridge pattern matcher (exact values, nested objects, arrays in the event match if any
element matches)."""

from __future__ import annotations

import json
from typing import Any

import pytest


def pattern_matches(pattern: dict[str, Any], event: Any) -> bool:
    for key, expected in pattern.items():
        values = event if isinstance(event, list) else [event]
        if not any(isinstance(v, dict) and key in v and _field_matches(expected, v[key]) for v in values):
            return False
    return True


def _field_matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, dict):
        return pattern_matches(expected, actual)
    candidates = actual if isinstance(actual, list) else [actual]
    if all(isinstance(c, dict) for c in candidates) and candidates:
        raise AssertionError("pattern gives values where the event has objects")
    return any(c in expected for c in candidates)


def finding(label: str = "HIGH", status: str = "NEW", state: str = "ACTIVE", source: str = "aws.securityhub") -> dict[str, Any]:
    return {
        "source": source,
        "detail-type": "Security Hub Findings - Imported",
        "account": "222222222222",
        "detail": {
            "findings": [
                {
                    "ProductName": "GuardDuty",
                    "AwsAccountId": "444444444444",
                    "Severity": {"Label": label},
                    "Workflow": {"Status": status},
                    "RecordState": state,
                }
            ]
        },
    }


@pytest.fixture(scope="module")
def rule(stack_run):
    run = stack_run("security")
    (rule,) = run.of_type("aws:cloudwatch/eventRule:EventRule")
    (target,) = run.of_type("aws:cloudwatch/eventTarget:EventTarget")
    return rule, target


def test_new_high_and_critical_findings_reach_the_security_topic(rule):
    declared, target = rule
    pattern = json.loads(declared.inputs["eventPattern"])
    for label in ("HIGH", "CRITICAL"):
        assert pattern_matches(pattern, finding(label))
    assert target.inputs["arn"].endswith("security-alerts-topic")
    assert target.inputs["rule"] == declared.inputs["name"]


@pytest.mark.parametrize(
    "event",
    [finding("MEDIUM"), finding("LOW"), finding(status="RESOLVED"), finding(state="ARCHIVED"), finding(source="aws.guardduty")],
)
def test_quiet_findings_do_not_page(rule, event):
    assert not pattern_matches(json.loads(rule[0].inputs["eventPattern"]), event)
