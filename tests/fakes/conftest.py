"""Fixtures of the fakes' own tests: moto with the fast EC2 settings, and a golden AMI in it."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from tests.fakes.scenes import REGION
from tests.fakes.seed import FAST_EC2_ENV, golden_ami


@pytest.fixture
def aws(monkeypatch):
    for key, value in FAST_EC2_ENV.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


@pytest.fixture
def ami(aws):
    return golden_ami(boto3.client("ec2", region_name=REGION))
