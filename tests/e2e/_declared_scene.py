"""Shared by the end-to-end runs as declared roles: moto with IAM enforcement on, the stacks' declared roles
by name, and how an enforced denial reads."""

from __future__ import annotations

import pytest

from tests.e2e import _declared_roles as roles
from tests.fakes.seed import FAST_EC2_ENV

HOME = "eu-west-1"
ISOLATION_ROLE = "BakehouseIsolateInstanceAutomation"
FINDING = "6ec9f8a2b3c4d5e6f708192a3b4c5d6e"


@pytest.fixture
def moto(monkeypatch):
    from moto import mock_aws

    for key, value in FAST_EC2_ENV.items():
        monkeypatch.setenv(key, value)
    # moto reads ambient keys as an IAM user's; the suite's session token would make them a role's.
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def declared(stack_run):
    def get(stack: str, name: str) -> roles.DeclaredRole:
        return roles.declared_roles(stack_run(stack))[name]

    return get


def denied(err: BaseException | str, action: str) -> bool:
    return f"not authorized to perform: {action}" in str(err)
