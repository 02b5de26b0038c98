"""Every policy document of the org, security and build stacks (and a workload stack) stays within its
AWS quota at 3, 50, 200 and 500 workload envs: what names an account must not grow with their count.

Quotas, and how each service counts (checked against the AWS documentation pages named):
- IAM and AWS STS quotas: a role's inline policies together 10,240 characters, a managed policy 6,144,
  a role trust policy 2,048 (default; 4,096 at most on request) — IAM does not count whitespace.
- AWS Organizations quotas: an SCP 5,120 characters (whitespace excluded when minified; we count minified).
- Amazon S3 bucket policies: 20 KB; AWS KMS key policy: 32 KB; Amazon SNS topic policy ("Amazon SNS API
  permissions: Actions and resources reference", Policy quotas): 30 KB, 100 statements, 200 principals.
  These three keep the text as sent, so the test measures what Pulumi sends (bytes, whitespace included).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from tests import scale_estate
from tools.mockrun import StackRun, run_stack

# 3 and 50 envs run in the fast tier (make test); what needs a 200- or 500-env stack run (a few seconds of
# CPU each) is marked slow and runs in make test-slow and CI.
slow = pytest.mark.slow

ROLE_INLINE_CHARS = 10_240
MANAGED_POLICY_CHARS = 6_144
TRUST_POLICY_CHARS = 2_048
SCP_CHARS = 5_120
DECLARATIVE_CHARS = 10_000
BUCKET_POLICY_BYTES = 20 * 1024
KEY_POLICY_BYTES = 32 * 1024
TOPIC_POLICY_BYTES = 30 * 1024
TOPIC_POLICY_STATEMENTS = 100
TOPIC_POLICY_PRINCIPALS = 200


@cache
def run(stack: str, count: int) -> StackRun:
    return run_stack(stack, overrides=scale_estate.overrides(stack, count))


def _doc(value: Any) -> tuple[dict[str, Any], str]:
    text = value if isinstance(value, str) else json.dumps(value)
    return json.loads(text), text


def _minified(doc: dict[str, Any]) -> int:
    return len(json.dumps(doc, separators=(",", ":")))


def _principals(doc: dict[str, Any]) -> int:
    total = 0
    for stmt in doc.get("Statement", []):
        principal = stmt.get("Principal")
        if isinstance(principal, dict):
            for value in principal.values():
                total += len(value) if isinstance(value, list) else 1
        elif principal is not None:
            total += 1
    return total


def over_quota(stack_run: StackRun) -> Iterator[str]:
    """One line per document (or role) past its quota."""
    inline: dict[str, int] = defaultdict(int)
    for r in stack_run.resources:
        kind = r.type
        if kind == "aws:iam/rolePolicy:RolePolicy":
            inline[str(r.inputs.get("role"))] += _minified(_doc(r.inputs["policy"])[0])
        elif kind == "aws:iam/role:Role":
            for p in r.inputs.get("inlinePolicies") or []:
                if p.get("policy"):
                    inline[str(r.inputs.get("name") or r.name)] += _minified(_doc(p["policy"])[0])
            size = _minified(_doc(r.inputs["assumeRolePolicy"])[0])
            if size > TRUST_POLICY_CHARS:
                yield f"{r.name} trust policy: {size} > {TRUST_POLICY_CHARS} characters"
        elif kind == "aws:iam/policy:Policy":
            size = _minified(_doc(r.inputs["policy"])[0])
            if size > MANAGED_POLICY_CHARS:
                yield f"{r.name} managed policy: {size} > {MANAGED_POLICY_CHARS} characters"
        elif kind == "aws:organizations/policy:Policy":
            size = _minified(_doc(r.inputs["content"])[0])
            limit = SCP_CHARS if r.inputs.get("type", "SERVICE_CONTROL_POLICY") == "SERVICE_CONTROL_POLICY" else DECLARATIVE_CHARS
            if size > limit:
                yield f"{r.name} organization policy: {size} > {limit} characters"
        elif kind == "aws:s3/bucketPolicy:BucketPolicy":
            size = len(_doc(r.inputs["policy"])[1].encode())
            if size > BUCKET_POLICY_BYTES:
                yield f"{r.name} bucket policy: {size} > {BUCKET_POLICY_BYTES} bytes"
        elif kind == "aws:kms/key:Key" and r.inputs.get("policy"):
            size = len(_doc(r.inputs["policy"])[1].encode())
            if size > KEY_POLICY_BYTES:
                yield f"{r.name} key policy: {size} > {KEY_POLICY_BYTES} bytes"
        elif kind == "aws:sns/topicPolicy:TopicPolicy":
            doc, text = _doc(r.inputs["policy"])
            if len(text.encode()) > TOPIC_POLICY_BYTES:
                yield f"{r.name} topic policy: {len(text.encode())} > {TOPIC_POLICY_BYTES} bytes"
            if len(doc["Statement"]) > TOPIC_POLICY_STATEMENTS:
                yield f"{r.name} topic policy: {len(doc['Statement'])} > {TOPIC_POLICY_STATEMENTS} statements"
            if _principals(doc) > TOPIC_POLICY_PRINCIPALS:
                yield f"{r.name} topic policy: {_principals(doc)} > {TOPIC_POLICY_PRINCIPALS} principals"
    for role, size in inline.items():
        if size > ROLE_INLINE_CHARS:
            yield f"role {role} inline policies: {size} > {ROLE_INLINE_CHARS} characters"


@pytest.mark.parametrize("count", [pytest.param(n, marks=slow) if n > 50 else n for n in scale_estate.SIZES])
@pytest.mark.parametrize("stack", ["org", "security", "build"])
def test_every_document_stays_within_its_quota_however_many_workload_envs(stack, count):
    problems = list(over_quota(run(stack, count)))
    assert not problems, f"{stack} at {count} workload envs:\n" + "\n".join(problems)


@slow
def test_a_workload_stack_documents_stay_within_quota_in_an_estate_of_500_envs():
    problems = list(over_quota(run("dev", 500)))
    assert not problems, "\n".join(problems)


def test_the_generated_estate_is_what_the_stacks_see():
    # guards the size tests against passing on an estate the overrides failed to enlarge
    assert len(set(scale_estate.accounts(500).values())) == 503
    org = run("org", 50)
    assert len(org.of_type("aws:organizations/account:Account")) == 52  # security, build and 50 envs


def test_the_quota_check_catches_a_document_past_its_quota():
    from tools.mockrun import Declared

    fat = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "A", "Effect": "Allow", "Action": "s3:GetObject", "Resource": [f"arn:aws:s3:::b/{i:05d}" for i in range(600)]}
        ],
    }
    fake = StackRun(
        "x",
        resources=[
            Declared("u", "aws:iam/rolePolicy:RolePolicy", "p", {"role": "r", "policy": json.dumps(fat)}, True, None, None)
        ],
    )
    assert [p for p in over_quota(fake) if "role r inline policies" in p]


@slow
@pytest.mark.parametrize(
    "stack, resource, field",
    [
        # the three that stopped the estate first: at 15, 57 and about 90 envs
        ("build", "build-factory-automation-policy", "policy"),
        ("org", "org-organization-policy-bakehouse-workload-network", "content"),
        ("security", "security-archive-config-policy", "policy"),
    ],
)
def test_the_documents_that_named_each_account_are_the_same_size_at_3_and_500_envs(stack, resource, field):
    sizes = {count: _minified(_doc(run(stack, count).named(resource).inputs[field])[0]) for count in (3, 500)}
    assert sizes[3] == sizes[500], sizes


# Parameter Store: "Standard tier parameters support a maximum parameter value of 4096 characters" (the
# PutParameter ValidationException; "Advanced parameters", AWS Systems Manager User Guide: 8 KB).
STANDARD_PARAMETER_CHARS = 4_096
ADVANCED_PARAMETER_CHARS = 8_192


@pytest.mark.parametrize("count", [50, pytest.param(500, marks=slow)])
def test_the_factory_settings_parameter_stays_within_its_tier(count):
    [settings] = [p for p in run("build", count).of_type("aws:ssm/parameter:Parameter") if p.name.endswith("-settings")]
    value = settings.inputs["value"] if isinstance(settings.inputs["value"], str) else json.dumps(settings.inputs["value"])
    limit = STANDARD_PARAMETER_CHARS if settings.inputs.get("tier", "Standard") == "Standard" else ADVANCED_PARAMETER_CHARS
    assert len(value) <= limit, f"{len(value)} > {limit}"


def _settings_value(count: int) -> str:
    [settings] = [p for p in run("build", count).of_type("aws:ssm/parameter:Parameter") if p.name.endswith("-settings")]
    value = settings.inputs["value"]
    return value if isinstance(value, str) else json.dumps(value)


@slow
def test_the_factory_settings_parameter_is_the_same_size_at_3_and_500_envs():
    assert len(_settings_value(3)) == len(_settings_value(500))


@slow
def test_every_target_env_has_its_own_parameter_holding_its_account():
    def plain(value: Any) -> Any:  # account ids from config arrive as secrets in the mock run
        return value.get("value") if isinstance(value, dict) else value

    targets = {
        p.inputs["name"]: plain(p.inputs["value"])
        for p in run("build", 500).of_type("aws:ssm/parameter:Parameter")
        if p.inputs["name"].startswith("/bakehouse/factory/targets/")
    }
    accounts = scale_estate.accounts(500)
    assert len(targets) == 500 and all(
        targets[f"/bakehouse/factory/targets/{env}"] == accounts[env] for env in (n.rsplit("/", 1)[1] for n in targets)
    )


def _schedule_inputs(count: int) -> dict[str, str]:
    return {s.inputs["name"]: s.inputs["target"]["input"] for s in run("build", count).of_type("aws:scheduler/schedule:Schedule")}


@slow
def test_every_schedule_input_is_the_same_size_at_3_and_500_envs():
    small, large = _schedule_inputs(3), _schedule_inputs(500)
    assert set(small) == set(large) and {"bakehouse-rescan-images", "bakehouse-image-lifecycle"} <= set(small)
    assert {n: len(v) for n, v in small.items()} == {n: len(v) for n, v in large.items()}


@slow
def test_the_scheduled_automations_parameters_are_within_what_start_automation_execution_accepts():
    # The SSM API model (botocore's copy of it): AutomationParameterMap values are lists of at most 50
    # strings of at most 512 characters (SSM API reference, StartAutomationExecution).
    import botocore.session

    shape = (
        botocore.session.get_session()
        .get_service_model("ssm")
        .operation_model("StartAutomationExecution")
        .input_shape.members["Parameters"]
    )
    most, longest = shape.value.metadata["max"], shape.value.member.metadata["max"]
    for name, text in _schedule_inputs(500).items():
        params = json.loads(text).get("Parameters")
        for key, values in (params or {}).items():
            assert len(values) <= most, f"{name}.{key}: {len(values)} values > {most}"
            assert all(len(v) <= longest for v in values), f"{name}.{key}: a value over {longest} characters"
