"""The e2e sessions share one botocore loader (tests/e2e/conftest.py): each service model is parsed once."""

from __future__ import annotations

import os

import boto3


def test_sessions_opened_in_an_e2e_run_share_one_model_loader_with_one_boto3_data_path():
    first, second = boto3.Session(region_name="eu-west-1"), boto3.Session(region_name="eu-west-1")
    assert first._loader is second._loader
    boto3_data = os.path.join(os.path.dirname(boto3.__file__), "data")
    assert first._loader.search_paths.count(boto3_data) == 1
    first.client("sts")
    assert second.client("sts").meta.service_model.service_name == "sts"
