"""The factory's target accounts come from /bakehouse/factory/targets/<env> (one parameter each), read by
path with pagination; a malformed one fails loudly, naming it."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from handlers.targets import TARGETS_PATH, MalformedTarget, read_targets

REGION = "eu-west-1"


@pytest.fixture
def ssm():
    with mock_aws():
        yield boto3.client("ssm", region_name=REGION)


def _put(ssm, env: str, value: str) -> None:
    ssm.put_parameter(Name=f"{TARGETS_PATH}/{env}", Value=value, Type="String")


def test_every_target_env_is_read_across_pages(ssm):
    expected = {f"w{i:04d}": f"{700000000000 + i}" for i in range(25)}  # GetParametersByPath pages by 10
    for env, account in expected.items():
        _put(ssm, env, account)
    ssm.put_parameter(Name="/bakehouse/factory/settings", Value="{}", Type="String")  # beside the path: not a target
    assert read_targets(ssm) == tuple(sorted(expected.items()))


def test_no_target_parameters_means_no_accounts(ssm):
    assert read_targets(ssm) == ()


@pytest.mark.parametrize(
    "env, value, named",
    [
        ("dev", "1234", f"{TARGETS_PATH}/dev is '1234'"),
        ("dev", "arn:aws:iam::111111111111:root", f"{TARGETS_PATH}/dev"),
        ("Dev_1", "111111111111", f"{TARGETS_PATH}/Dev_1: the env name"),
    ],
)
def test_a_malformed_target_parameter_fails_naming_it(ssm, env, value, named):
    _put(ssm, "uat", "222222222222")
    _put(ssm, env, value)
    with pytest.raises(MalformedTarget, match=named.replace("|", r"\|").replace("[", r"\[")):
        read_targets(ssm)


def test_one_account_named_by_two_envs_is_refused(ssm):
    _put(ssm, "dev", "111111111111")
    _put(ssm, "uat", "111111111111")
    with pytest.raises(MalformedTarget, match="111111111111 is the target of more than one env"):
        read_targets(ssm)


def test_the_handlers_read_the_path_the_build_stack_writes():
    from components.build.factory_targets import TARGETS_PATH as written

    assert TARGETS_PATH == written
