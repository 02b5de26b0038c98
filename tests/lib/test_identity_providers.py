"""Which role each stack's provider assumes: the read-only preview role when `pulumi preview` runs
(a pull request's run included), the deploy role for `pulumi up`, or an explicit override."""

from __future__ import annotations

import pytest

from tools.mockrun import cached_run

ACCOUNTS = {"org": "111111111111", "security": "222222222222", "build": "333333333333", "dev": "444444444444"}


def _stack_provider(run):
    [provider] = [r for r in run.resources if r.is_provider and r.name == f"{run.stack}-account"]
    return provider


def _assumed(provider) -> list[str]:
    return [hop["roleArn"] for hop in provider.inputs["assumeRoles"]]


@pytest.mark.parametrize("stack", ["org", "dev"])
def test_preview_assumes_the_read_only_preview_role(stack):
    run = cached_run(stack, preview=True)
    assert _assumed(_stack_provider(run)) == [f"arn:aws:iam::{ACCOUNTS[stack]}:role/BakehousePreview"]


@pytest.mark.parametrize("stack", ["org", "dev"])
def test_update_assumes_the_deploy_role(stack, stack_run):
    assert _assumed(_stack_provider(stack_run(stack))) == [f"arn:aws:iam::{ACCOUNTS[stack]}:role/BakehouseDeploy"]


def test_config_may_name_another_role_in_the_stacks_account():
    admin = "arn:aws:iam::111111111111:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_0123"
    run = cached_run("org", overrides={"bakehouse:providerRoleArn": admin}, preview=True)
    assert _assumed(_stack_provider(run)) == [admin]


@pytest.mark.parametrize(
    "override", ["arn:aws:iam::999999999999:role/Admin", "BakehouseDeploy", "arn:aws:iam::444444444444:user/alice"]
)
def test_an_override_outside_the_stacks_account_is_refused_before_any_provider(override):
    run = cached_run("dev", overrides={"bakehouse:providerRoleArn": override}, raise_errors=False)
    assert f"bakehouse:providerRoleArn is '{override}'; allowed: an IAM role ARN in the stack's account 444444444444" in str(
        run.error
    )
    assert not [r for r in run.resources if r.is_provider]


@pytest.mark.parametrize("stack", ["security", "build", "dev"])
def test_every_provider_of_a_preview_reads_through_a_preview_role_regional_ones_included(stack):
    run = cached_run(stack, preview=True)
    providers = [r for r in run.resources if r.is_provider and r.inputs.get("assumeRoles")]
    assert len(providers) > 1  # the account provider and at least one regional or cross-account one
    for provider in providers:
        assert all(hop["roleArn"].split("/")[-1] == "BakehousePreview" for hop in provider.inputs["assumeRoles"]), (
            provider.name,
            _assumed(provider),
        )
