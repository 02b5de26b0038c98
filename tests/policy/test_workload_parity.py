"""dev, uat and prod declare the same resource types; the committed manifest says which."""

from __future__ import annotations

import json

import pytest

import policy.stack as stack_rules
from tests.policy.builders import res, run_of
from tools.policy_runner import WORKLOAD_STACKS, judge, workload_types


def test_dev_uat_and_prod_declare_the_same_types(stack_run):
    per_stack = workload_types(stack_run(s) for s in WORKLOAD_STACKS)
    dev = set(per_stack["dev"])
    for stack in ("uat", "prod"):
        other = set(per_stack[stack])
        assert other == dev, f"only in dev: {sorted(dev - other)}; only in {stack}: {sorted(other - dev)}"


def test_committed_manifest_matches_the_workload_stacks(stack_run):
    expected = workload_types([stack_run("dev")])["dev"]
    committed = stack_rules.load_manifest()
    assert committed["types"] == expected, (
        "policy/workload_types.json is stale; run `python -m tools.policy_runner --write-workload-types`: "
        f"missing {sorted(set(expected) - set(committed['types']))}, extra {sorted(set(committed['types']) - set(expected))}"
    )


@pytest.fixture
def manifest(tmp_path, monkeypatch):
    path = tmp_path / "workload_types.json"
    path.write_text(
        json.dumps(
            {
                "stacks": ["dev", "uat", "prod"],
                "types": ["aws:kms/key:Key", "aws:s3/bucket:Bucket", "bakehouse:workload:Stack", "pulumi:providers:aws"],
            }
        )
    )
    monkeypatch.setattr(stack_rules, "MANIFEST", path)
    return path


def test_a_type_only_one_workload_declares_is_flagged_on_that_resource(manifest):
    run = run_of(
        "uat",
        res("uat", "aws:kms/key:Key", "key"),
        res("uat", "aws:s3/bucket:Bucket", "b"),
        res("uat", "aws:ec2/instance:Instance", "uat-only"),
    )
    found = judge(run, pack_config={}).by_policy("workload-stacks-identical")
    assert [(v.resource, v.level) for v in found] == [("uat-only", "mandatory")]
    assert "aws:ec2/instance:Instance" in found[0].message


def test_a_type_a_workload_lacks_is_flagged_on_the_stack(manifest):
    run = run_of("prod", res("prod", "aws:kms/key:Key", "key"))
    found = judge(run, pack_config={}).by_policy("workload-stacks-identical")
    assert [str(v) for v in found] == [
        "workload-stacks-identical: stack prod: workload stack prod declares no aws:s3/bucket:Bucket, "
        "which the other workload stacks do"
    ]


def test_matching_workloads_and_shared_stacks_pass(manifest):
    same = run_of("dev", res("dev", "aws:kms/key:Key", "key"), res("dev", "aws:s3/bucket:Bucket", "b"))
    shared = run_of("build", res("build", "aws:ec2/instance:Instance", "builder"))
    assert judge(same, pack_config={}).by_policy("workload-stacks-identical") == []
    assert judge(shared, pack_config={}).by_policy("workload-stacks-identical") == []
