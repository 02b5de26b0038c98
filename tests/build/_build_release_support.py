"""The build stack's release settings and a seeded moto world, shared by the release tool's tests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import boto3

from handlers.contract import FACTORY_SETTINGS_PARAMETER
from tests.fakes.operations import deployed_pipeline_parameters

REGION = "eu-west-1"
BUCKET = "bakehouse-scripts-123456789012-eu-west-1"
APPROVER = "arn:aws:iam::123456789012:role/BakehouseImageApprover"
# What the build stack writes to its settings parameter (its real program under mocks), pointed at this
# test's bucket: a hand-typed copy went stale once already (it still had the Pipeline's retired Accounts).
# Memory capture is left to the tests that give their own pins (test_build_avml.py): the shipped sha256 is a
# placeholder the release refuses, and staging it would download AVML.
_DEPLOYED = {k: v for k, v in deployed_pipeline_parameters().items() if k != "memoryCapture"}
# The ids the mocks make up (subnet, security group, key, topic) are given AWS's shapes, which the
# Pipeline's allowedPatterns check; every other setting is the deployed one.
AWS_SHAPED_IDS = {
    "SubnetId": "subnet-0123456789abcdef0",
    "SecurityGroupIds": ["sg-0123456789abcdef0"],
    "FactoryKmsKeyId": "arn:aws:kms:eu-west-1:333333333333:key/1111aaaa-2222-bbbb-3333-cccc4444dddd",
    "NotificationTopicArn": "arn:aws:sns:eu-west-1:333333333333:bakehouse-factory-notifications",
}
SETTINGS = {
    **_DEPLOYED,
    "pipelineParameters": {**_DEPLOYED["pipelineParameters"], **AWS_SHAPED_IDS, "ScriptsBucket": BUCKET},
}


def seed_release_world(settings: Mapping[str, Any]) -> tuple[Any, Any, str]:
    """Inside mock_aws: the versioned scripts bucket, its KMS key, and the factory settings parameter
    (`settings` plus that key). Returns (s3, ssm, key ARN)."""
    s3, ssm, kms = (boto3.client(s, region_name=REGION) for s in ("s3", "ssm", "kms"))
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = kms.create_key(Description="scripts")["KeyMetadata"]["Arn"]
    ssm.put_parameter(Name=FACTORY_SETTINGS_PARAMETER, Type="String", Value=json.dumps({**settings, "scriptsKmsKeyId": key}))
    return s3, ssm, key
