"""Every policy catches its known-bad resources, passes its known-good ones, and names what it flags."""

from __future__ import annotations

import pytest

from policy.policies import POLICIES
from tests.policy.builders import bucket_set, res, run_of
from tests.policy.cases import CASES, Case
from tools.policy_runner import judge, load_pack_config


def _verdict(case: Case):
    # the committed pack config (what the workflow passes), with the case's own settings on top
    return judge(run_of(case.stack, *case.resources), pack_config={**load_pack_config(), **case.config})


@pytest.mark.parametrize("name,index", [(n, i) for n, cases in CASES.items() for i in range(len(cases))])
def test_policy_flags_exactly_the_known_bad_resources(name, index):
    case = CASES[name][index]
    found = _verdict(case).by_policy(name)
    assert {v.resource for v in found} == case.flagged, [str(v) for v in found]
    for violation in found:
        assert str(violation).startswith(f"{name}: {violation.resource}: ")
        assert violation.resource in violation.message  # the message itself names the resource


def test_every_policy_has_a_known_bad_and_a_known_good_fixture():
    names = {p.name for p in POLICIES}
    covered_bad = {n for n, cases in CASES.items() if any(c.flagged for c in cases)}
    covered_good = {n for n, cases in CASES.items() if any(not c.flagged for c in cases)}
    # the workload type parity policy has its own fixtures in test_workload_parity.py
    names.discard("workload-stacks-identical")
    assert names - covered_bad == set()
    assert names - covered_good == set()


def test_advisory_policies_land_in_the_advisory_list_only():
    case = CASES["kms-key-deletion-window"][0]
    verdict = _verdict(case)
    assert any(v.policy == "kms-key-deletion-window" for v in verdict.advisory)
    assert not any(v.policy == "kms-key-deletion-window" for v in verdict.mandatory)


def test_pack_config_can_lower_a_policy_to_advisory():
    case = CASES["kms-key-rotation"][0]
    verdict = judge(run_of(case.stack, *case.resources), pack_config={"kms-key-rotation": "advisory"})
    assert not any(v.policy == "kms-key-rotation" for v in verdict.mandatory)
    assert {v.resource for v in verdict.advisory if v.policy == "kms-key-rotation"} == {"static", "unset"}


def test_bucket_companions_are_linked_by_literal_name_when_no_dependency_is_recorded():
    named = [r for r in bucket_set("org", "named", fixed_name="bakehouse-named-1") if r.type == "aws:s3/bucket:Bucket"]
    companions = [
        res(
            "org",
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            "enc",
            {"bucket": "bakehouse-named-1", "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
        ),
    ]
    verdict = judge(run_of("org", *named, *companions), pack_config={})
    assert [v.resource for v in verdict.by_policy("s3-bucket-kms-encryption")] == ["named"]
    assert "AES256" in verdict.by_policy("s3-bucket-kms-encryption")[0].message


def test_a_stack_is_judged_as_a_workload_by_its_root_component_not_its_name():
    def nat(stack):
        return res(stack, "aws:ec2/natGateway:NatGateway", "proxy-nat")

    build = judge(run_of("build", nat("build")), pack_config={})
    named_dev_without_root = judge(run_of("dev", nat("dev"), workload=False), pack_config={})
    new_env = judge(run_of("sandbox", nat("sandbox"), workload=True), pack_config={})
    assert build.by_policy("workload-no-internet-path") == []
    assert named_dev_without_root.by_policy("workload-no-internet-path") == []
    assert [v.resource for v in new_env.by_policy("workload-no-internet-path")] == ["proxy-nat"]
