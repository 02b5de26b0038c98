"""The build stack's release settings and a recording SSM client, shared by the release tool's tests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.validate import validate_parameters

from handlers.contract import FACTORY_SETTINGS_PARAMETER

REGION = "eu-west-1"
BUCKET = "bakehouse-scripts-123456789012-eu-west-1"
APPROVER = "arn:aws:iam::123456789012:role/BakehouseImageApprover"
SETTINGS = {
    "families": {"al2023": "al2023", "ubuntu2404": "ubuntu2404"},
    "pipelineParameters": {
        "AutomationAssumeRole": "arn:aws:iam::123456789012:role/BakehouseFactoryAutomation",
        "SubnetId": "subnet-0123456789abcdef0",
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "InstanceProfileName": "BakehouseBuildInstance",
        "FactoryKmsKeyId": "arn:aws:kms:eu-west-1:123456789012:key/1111aaaa-2222-bbbb-3333-cccc4444dddd",
        "ScriptsBucket": BUCKET,
        "FindingsBucket": "bakehouse-findings-123456789012-eu-west-1",
        "SeverityThreshold": "HIGH",
        "ApproverTopicArn": "arn:aws:sns:eu-west-1:123456789012:bakehouse-image-approvers",
        "Regions": {"eu-west-1": "arn:aws:kms:eu-west-1:123456789012:key/k1"},
        "Accounts": [{"AccountId": "111111111111", "Env": "dev"}, {"AccountId": "222222222222", "Env": "prod"}],
        "MaxCatalogVersions": 3,
        "NotificationTopicArn": "arn:aws:sns:eu-west-1:123456789012:bakehouse-factory-notifications",
        "CatalogProductId": "prod-abcdefghijklm",
    },
}


class RecordingSsm:
    """moto's SSM for parameters; StartAutomationExecution (which moto lacks) recorded and checked
    against botocore's model of the API, so a malformed request fails as AWS would refuse it."""

    def __init__(self, ssm):
        self._ssm, self.started = ssm, []
        self.exceptions = ssm.exceptions

    def get_parameter(self, **kw):
        return self._ssm.get_parameter(**kw)

    def start_automation_execution(self, **kw):
        shape = self._ssm.meta.service_model.operation_model("StartAutomationExecution").input_shape
        validate_parameters(kw, shape)
        self.started.append(kw)
        return {"AutomationExecutionId": f"exec-{len(self.started)}"}


def seed_release_world(settings: Mapping[str, Any]) -> tuple[Any, Any, str]:
    """Inside mock_aws: the versioned scripts bucket, its KMS key, and the factory settings parameter
    (`settings` plus that key). Returns (s3, ssm, key ARN)."""
    s3, ssm, kms = (boto3.client(s, region_name=REGION) for s in ("s3", "ssm", "kms"))
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = kms.create_key(Description="scripts")["KeyMetadata"]["Arn"]
    ssm.put_parameter(Name=FACTORY_SETTINGS_PARAMETER, Type="String", Value=json.dumps({**settings, "scriptsKmsKeyId": key}))
    return s3, ssm, key
