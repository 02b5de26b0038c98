"""The security topic always has someone listening: config refuses an empty or missing subscriber list
(issue 15.5), naming the stack, the key and the value, and declares nothing."""

from __future__ import annotations

import pytest
import yaml

from estate.config import ConfigError
from tools.mockrun import PROJECT_DIR, cached_run

SECTION = yaml.safe_load((PROJECT_DIR / "Pulumi.security.yaml").read_text())["config"]["bakehouse:security"]


@pytest.mark.parametrize("emails, shown", [([], "[]"), (None, "missing")])
def test_the_security_topic_refuses_an_empty_subscriber_list(emails, shown):
    section = {k: v for k, v in SECTION.items() if k != "alertEmails"}
    if emails is not None:
        section["alertEmails"] = emails
    run = cached_run("security", overrides={"bakehouse:security": section}, raise_errors=False)
    assert isinstance(run.error, ConfigError)
    assert f"stack security: Pulumi.security.yaml: bakehouse:security.alertEmails is {shown}; allowed: a non-empty list" in str(
        run.error
    )
    assert [r for r in run.resources if not r.is_provider] == []


def test_the_configured_subscribers_are_subscribed_to_the_security_topic(stack_run):
    subs = [s.inputs for s in stack_run("security").of_type("aws:sns/topicSubscription:TopicSubscription")]
    assert {(s["protocol"], s["endpoint"]) for s in subs} >= {("email", e) for e in SECTION["alertEmails"]}
    assert SECTION["alertEmails"]
