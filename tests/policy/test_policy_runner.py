"""The offline runner hands policies what CrossGuard would; tampering a real stack's record is caught."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

import tools.preview as preview
from policy.policies import POLICIES
from tests.policy.builders import bucket_set, res, run_of
from tools.mockrun import StackRun
from tools.policy_runner import judge, load_pack_config, policy_resources, property_dependencies

ROOT = Path(__file__).resolve().parents[2]


def _tampered(run: StackRun, type_token: str, change) -> StackRun:
    """A copy of `run` whose first resource of `type_token` has its inputs passed through `change`."""
    resources = list(run.resources)
    index = next(i for i, r in enumerate(resources) if r.type == type_token)
    resources[index] = dataclasses.replace(resources[index], inputs=change(copy.deepcopy(dict(resources[index].inputs))))
    return StackRun(run.stack, resources=resources)


def test_companions_are_linked_to_their_bucket_by_the_ids_the_mocks_hand_out():
    declared = bucket_set("org", "data")
    deps = property_dependencies(declared)
    bucket = declared[0].urn
    assert all(deps[r.urn] == {"bucket": [bucket]} for r in declared[1:])
    assert deps[bucket] == {}


def test_dependencies_recorded_by_the_run_win_over_inference():
    declared = bucket_set("org", "data")
    recorded = dataclasses.replace(declared[1])
    # a Declared that carries the engine's own record (should the mock runtime keep it one day)
    object.__setattr__(recorded, "property_dependencies", {"bucket": []})
    assert property_dependencies([declared[0], recorded])[recorded.urn] == {"bucket": []}


def test_stack_policies_see_parents_and_providers_as_crossguard_builds_them():
    parent = "urn:pulumi:org::bakehouse::bakehouse:lib:SecureBucket::data"
    declared = [dataclasses.replace(r, parent=parent) for r in bucket_set("org", "data")]
    component = dataclasses.replace(res("org", "bakehouse:lib:SecureBucket", "data"), urn=parent, custom=False, provider=None)
    run = run_of("org", component, *declared)
    providers = {r.urn: r for r in run.resources if r.is_provider}
    built = {r.urn: r for r in policy_resources(run.resources, providers)}
    bucket = built[declared[0].urn]
    assert bucket.parent is built[parent]
    assert bucket.provider.props["defaultTags"]["tags"]["bakehouse:stack"] == "org"
    assert built[declared[1].urn].property_dependencies["bucket"] == [bucket]
    assert built[declared[1].urn].dependencies == [bucket]


def test_a_resource_without_an_explicit_provider_gets_the_default_one():
    run = run_of("org", res("org", "aws:kms/key:Key", "ambient", {"enableKeyRotation": True}, default_provider=True))
    found = judge(run, pack_config={}).by_policy("default-tags")
    assert [str(v) for v in found] == [
        "default-tags: ambient: ambient is missing tags bakehouse:stack, bakehouse:env, bakehouse:managed-by "
        "(its provider sets no default tags)"
    ]


@pytest.mark.parametrize(
    "stack,policy,type_token,change",
    [
        (
            "security",
            "cloudtrail-multi-region-validated-kms",
            "aws:cloudtrail/trail:Trail",
            lambda i: {**i, "isMultiRegionTrail": False},
        ),
        ("security", "messaging-kms-encrypted", "aws:sns/topic:Topic", lambda i: {**i, "kmsMasterKeyId": "alias/aws/sns"}),
        (
            "build",
            "messaging-kms-encrypted",
            "aws:sqs/queue:Queue",
            lambda i: {k: v for k, v in i.items() if k != "kmsMasterKeyId"},
        ),
        ("build", "lambda-runtime-supported", "aws:lambda/function:Function", lambda i: {**i, "runtime": "python3.8"}),
        (
            "build",
            "ssm-document-not-public",
            "aws:ssm/document:Document",
            lambda i: {**i, "permissions": {"type": "Share", "accountIds": "All"}},
        ),
        (
            "build",
            "no-secrets-in-lambda-environment",
            "aws:lambda/function:Function",
            lambda i: {**i, "environment": {"variables": {"DB_PASSWORD": "hunter22"}}},
        ),
        (
            "dev",
            "workload-approved-ami",
            "aws:ec2/launchTemplate:LaunchTemplate",
            lambda i: {**i, "imageId": "ami-0123456789abcdef0"},
        ),
        (
            "dev",
            "ec2-imdsv2-required",
            "aws:ec2/launchTemplate:LaunchTemplate",
            lambda i: {**i, "metadataOptions": {**i["metadataOptions"], "httpTokens": "optional"}},
        ),
        (
            "dev",
            "ec2-storage-encrypted",
            "aws:ec2/launchTemplate:LaunchTemplate",
            lambda i: {
                **i,
                "blockDeviceMappings": [{**m, "ebs": {**m["ebs"], "encrypted": "false"}} for m in i["blockDeviceMappings"]],
            },
        ),
        (
            "dev",
            "no-world-ingress",
            "aws:ec2/securityGroup:SecurityGroup",
            lambda i: {**i, "ingress": [{"protocol": "tcp", "fromPort": 443.0, "toPort": 443.0, "cidrBlocks": ["0.0.0.0/0"]}]},
        ),
        ("dev", "kms-key-rotation", "aws:kms/key:Key", lambda i: {**i, "enableKeyRotation": False}),
        (
            "dev",
            "s3-bucket-versioned",
            "aws:s3/bucketVersioning:BucketVersioning",
            lambda i: {**i, "versioningConfiguration": {"status": "Suspended"}},
        ),
        (
            "dev",
            "s3-bucket-tls-only",
            "aws:s3/bucketPolicy:BucketPolicy",
            lambda i: {**i, "policy": json.dumps({"Version": "2012-10-17", "Statement": []})},
        ),
        ("dev", "default-tags", "pulumi:providers:aws", lambda i: {**i, "defaultTags": {"tags": {}}}),
    ],
)
def test_tampering_a_real_stack_record_is_caught(stack_run, stack, policy, type_token, change):
    # proves the real record reaches each policy in the shape it reads (camelCase, JSON documents)
    run = stack_run(stack)
    assert judge(run).by_policy(policy) == []
    assert judge(_tampered(run, type_token, change)).by_policy(policy) != []


def test_preview_prints_the_verdict_and_fails_on_a_mandatory_violation(monkeypatch, capsys):
    bad = run_of("org", res("org", "aws:kms/key:Key", "static", {"enableKeyRotation": False}))
    monkeypatch.setattr(preview, "run_stack", lambda stack: bad)
    monkeypatch.setenv("COLUMNS", "200")
    assert preview.main(["org"]) == 1
    out = capsys.readouterr().out
    assert "MANDATORY kms-key-rotation: static: KMS key static does not rotate" in out
    assert _summary_row(out, "org")[5:7] == ["FAIL", "1/0"]  # verdict, then mandatory/advisory


def test_preview_passes_a_clean_stack(monkeypatch, capsys):
    good = run_of("org", res("org", "aws:kms/key:Key", "rotating", {"enableKeyRotation": True, "deletionWindowInDays": 30}))
    monkeypatch.setattr(preview, "run_stack", lambda stack: good)
    monkeypatch.setenv("COLUMNS", "200")
    assert preview.main(["org"]) == 0
    assert _summary_row(capsys.readouterr().out, "org")[5:7] == ["pass", "0/0"]


def _summary_row(out: str, stack: str) -> list[str]:
    (row,) = [cells for cells in (line.split() for line in out.splitlines()) if cells[:1] == [stack] and len(cells) > 6]
    return row


def test_every_policy_says_what_it_checks_and_how_to_fix_it():
    for policy in POLICIES:
        assert policy.description and policy.remediation_steps, policy.name
        assert policy.enforcement_level is not None, policy.name
        if policy.enforcement_level.value == "advisory":
            assert "because" in policy.description, f"{policy.name}: an advisory says why it is one"


def test_pack_config_names_the_estates_build_account():
    accounts = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["bakehouse:accounts"]["value"]
    config = load_pack_config()
    assert set(config) <= {p.name for p in POLICIES}
    assert config["workload-approved-ami"]["buildAccountId"] == accounts["build"]
