"""Every stack judged as in a first `pulumi preview`: no id or ARN known yet, only the inputs the
program wrote and the dependencies the engine records. Nothing crashes, and still no violation."""

from __future__ import annotations

import pulumi
import pytest

from tools.mockrun import STACKS, EchoMocks, run_stack
from tools.policy_runner import judge


class NothingKnownYet(EchoMocks):
    """A resource reports no outputs at all, as in a preview before anything exists."""

    def new_resource(self, args):
        resource_id, outputs = super().new_resource(args)
        if args.typ.startswith("pulumi:providers:"):
            return resource_id, outputs
        return "", {}


@pytest.fixture
def preview_run():
    return lambda stack: run_stack(stack, mocks=NothingKnownYet(synthesize_arn=False), preview=True)


@pytest.mark.slow
@pytest.mark.parametrize("stack", STACKS)
def test_stack_passes_with_every_output_unknown(preview_run, stack):
    run = preview_run(stack)
    unknown = [r for r in run.resources if any(isinstance(v, pulumi.output.Unknown) for v in r.inputs.values())]
    assert unknown, "the preview run should leave some inputs unknown"
    verdict = judge(run)
    assert verdict.mandatory == [], "\n".join(str(v) for v in verdict.mandatory)
    assert verdict.undecided == []


@pytest.mark.slow
def test_without_recorded_dependencies_the_unknown_bucket_links_are_missed():
    # the control: the dependency record, not luck, is what joins buckets to their settings in preview
    run = run_stack("org", mocks=NothingKnownYet(synthesize_arn=False), preview=True)
    assert judge(run).by_policy("s3-bucket-versioned") == []
    for resource in run.resources:
        object.__setattr__(resource, "property_dependencies", {})
    assert judge(run).by_policy("s3-bucket-versioned") != []
