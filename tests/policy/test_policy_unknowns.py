"""Values not yet known in preview never crash a policy, and never count as a violation."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pulumi_policy.proxy import (
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
)

from policy.support import stack_of
from tests.policy.builders import bucket_set, doc, res, run_of
from tests.policy.cases import CASES
from tools.mockrun import Declared
from tools.policy_runner import judge, load_pack_config


def _unknown_leaves(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unknown_leaves(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unknown_leaves(v) for v in value]
    if isinstance(value, bool):
        return UNKNOWN_BOOLEAN_VALUE
    if isinstance(value, int | float):
        return UNKNOWN_NUMBER_VALUE
    return UNKNOWN_STRING_VALUE


def _sentinel_for(value: Any) -> str:
    if isinstance(value, list):
        return UNKNOWN_ARRAY_VALUE
    if isinstance(value, dict):
        return UNKNOWN_OBJECT_VALUE
    return _unknown_leaves(value)


def _variants(resources: list[Declared]):
    """Each input unknown in turn, each input missing (None) in turn, then every leaf unknown at once."""
    for i, declared in enumerate(resources):
        for key, value in declared.inputs.items():
            for replacement in (_sentinel_for(value), None):
                changed = dataclasses.replace(declared, inputs={**declared.inputs, key: replacement})
                yield f"{declared.name}.{key}={replacement!r}", resources[:i] + [changed] + resources[i + 1 :]
    yield "all leaves unknown", [dataclasses.replace(d, inputs=_unknown_leaves(dict(d.inputs))) for d in resources]


ALL_CASES = [(name, i) for name, cases in CASES.items() for i in range(len(cases))]


@pytest.mark.parametrize("name,index", ALL_CASES)
def test_no_policy_crashes_or_leaves_an_unknown_unhandled(name, index):
    case = CASES[name][index]
    config = {**load_pack_config(), **case.config}
    for label, resources in _variants(case.resources):
        verdict = judge(run_of(case.stack, *resources), pack_config=config)
        # CrossGuard would report an escaped UnknownValueError as "can't run during preview"
        assert verdict.undecided == [], label


def test_unknown_provider_default_tags_are_not_a_violation():
    run = run_of("org", res("org", "aws:kms/key:Key", "k", {"enableKeyRotation": True}))
    run.resources[0] = dataclasses.replace(run.resources[0], inputs={"defaultTags": UNKNOWN_OBJECT_VALUE})
    assert judge(run, pack_config={}).by_policy("default-tags") == []


@pytest.mark.parametrize(
    "policy,resource",
    [
        (
            "ec2-imdsv2-required",
            res(
                "dev",
                "aws:ec2/instance:Instance",
                "i",
                {"rootBlockDevice": {"encrypted": True}, "metadataOptions": {"httpTokens": UNKNOWN_STRING_VALUE}},
            ),
        ),
        ("ec2-storage-encrypted", res("dev", "aws:ec2/instance:Instance", "i", {"rootBlockDevice": UNKNOWN_OBJECT_VALUE})),
        ("workload-approved-ami", res("dev", "aws:ec2/instance:Instance", "i", {"ami": UNKNOWN_STRING_VALUE})),
        ("iam-no-wildcards", res("dev", "aws:iam/rolePolicy:RolePolicy", "p", {"policy": UNKNOWN_STRING_VALUE})),
        (
            "no-world-ingress",
            res(
                "dev",
                "aws:ec2/securityGroup:SecurityGroup",
                "sg",
                {"ingress": [{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": UNKNOWN_ARRAY_VALUE}]},
            ),
        ),
        (
            "no-secrets-in-lambda-environment",
            res(
                "dev", "aws:lambda/function:Function", "f", {"environment": {"variables": {"DB_PASSWORD": UNKNOWN_STRING_VALUE}}}
            ),
        ),
        ("kms-key-rotation", res("dev", "aws:kms/key:Key", "k", {"enableKeyRotation": UNKNOWN_BOOLEAN_VALUE})),
        (
            "cloudtrail-multi-region-validated-kms",
            res(
                "org",
                "aws:cloudtrail/trail:Trail",
                "t",
                {"isMultiRegionTrail": True, "enableLogFileValidation": True, "kmsKeyId": UNKNOWN_STRING_VALUE},
            ),
        ),
        ("messaging-kms-encrypted", res("security", "aws:sns/topic:Topic", "t", {"kmsMasterKeyId": UNKNOWN_STRING_VALUE})),
    ],
)
def test_an_unknown_deciding_value_is_judged_later_not_flagged(policy, resource):
    verdict = judge(run_of(stack_of(resource.urn), resource), pack_config=load_pack_config())
    assert verdict.by_policy(policy) == []


def test_an_unknown_bucket_policy_is_not_a_tls_violation():
    resources = bucket_set("org", "autonamed", policy=UNKNOWN_STRING_VALUE)
    assert judge(run_of("org", *resources), pack_config={}).by_policy("s3-bucket-tls-only") == []


def test_the_same_bucket_policy_known_and_permissive_is_a_tls_violation():
    # the control for the test above: only the unknown-ness made it pass
    permissive = doc(
        {
            "Sid": "A",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::1:root"},
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::autonamed/*",
        }
    )
    resources = bucket_set("org", "autonamed", policy=permissive)
    assert [v.resource for v in judge(run_of("org", *resources), pack_config={}).by_policy("s3-bucket-tls-only")] == ["autonamed"]
