"""The e2e harness (tests/e2e/conftest.py): sessions share one botocore loader, so each service model is
parsed once, and a handler's clients without a session are reused while they would send the same way."""

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


def test_handler_clients_without_a_session_are_reused_per_service_and_endpoint(monkeypatch):
    from handlers import publish

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    first = publish.client("ssm", "eu-west-1")
    assert publish.client("ssm", "eu-west-1") is first
    assert publish.client("ssm", "eu-central-1") is not first
    session = boto3.Session(region_name="eu-west-1")
    assert publish.client("ssm", "eu-west-1", session) is not first
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:2")
    moved = publish.client("ssm", "eu-west-1")
    assert moved is not first and moved.meta.endpoint_url == "http://127.0.0.1:2"
