"""AWS Config rules for what the estate promises, and the conformance-pack template that carries them.

Two packs: a baseline for every account, and the workload promises (no public IPs, golden images
only) that the build account, which launches Amazon's base images, cannot meet by design. Each account
deploys them itself, after its own recorder (components/lib/account_baseline.py): organization packs from
the security account failed in every account without a running recorder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import yaml

from estate.naming import APPROVED_IMAGE_TAG


@dataclass(frozen=True)
class ManagedRule:
    key: str  # CloudFormation logical id in the pack
    source: str  # AWS managed rule identifier
    promise: str
    parameters: Mapping[str, str] | None = None
    resource_types: tuple[str, ...] = ()


def baseline_rules() -> tuple[ManagedRule, ...]:
    return (
        ManagedRule(
            "EncryptedVolumes",
            "ENCRYPTED_VOLUMES",
            "EBS volumes attached to instances are encrypted",
            resource_types=("AWS::EC2::Volume",),
        ),
        ManagedRule("EbsEncryptionByDefault", "EC2_EBS_ENCRYPTION_BY_DEFAULT", "new volumes are encrypted by default"),
        ManagedRule(
            "Imdsv2Required", "EC2_IMDSV2_CHECK", "instances require IMDSv2 tokens", resource_types=("AWS::EC2::Instance",)
        ),
        ManagedRule(
            "S3AccountPublicAccessBlocked",
            "S3_ACCOUNT_LEVEL_PUBLIC_ACCESS_BLOCKS_PERIODIC",
            "the account blocks public S3 access",
            {"BlockPublicAcls": "true", "BlockPublicPolicy": "true", "IgnorePublicAcls": "true", "RestrictPublicBuckets": "true"},
        ),
        ManagedRule(
            "S3BucketPublicAccessProhibited",
            "S3_BUCKET_LEVEL_PUBLIC_ACCESS_PROHIBITED",
            "every bucket blocks public access",
            resource_types=("AWS::S3::Bucket",),
        ),
        ManagedRule("TrailEnabled", "MULTI_REGION_CLOUD_TRAIL_ENABLED", "a multi-region trail records the account"),
        ManagedRule("TrailValidated", "CLOUD_TRAIL_LOG_FILE_VALIDATION_ENABLED", "trail log files are validated"),
    )


def workload_rules() -> tuple[ManagedRule, ...]:
    return (
        ManagedRule(
            "NoPublicIpOnInstances",
            "EC2_INSTANCE_NO_PUBLIC_IP",
            "instances have no public IP",
            resource_types=("AWS::EC2::Instance",),
        ),
        ManagedRule(
            "NoPublicIpOnLaunch",
            "SUBNET_AUTO_ASSIGN_PUBLIC_IP_DISABLED",
            "subnets do not hand out public IPs",
            resource_types=("AWS::EC2::Subnet",),
        ),
        # Tags on a shared AMI are per account, so distribution tags each golden image in the
        # workload account; an instance on any other AMI predates the SCP or slipped past it.
        ManagedRule(
            "ApprovedImagesOnly",
            "APPROVED_AMIS_BY_TAG",
            "instances run golden images only",
            {"amisByTagKeyAndValue": ":".join(APPROVED_IMAGE_TAG)},
            ("AWS::EC2::Instance",),
        ),
        ManagedRule(
            "NoInternetGatewayAttached",
            "INTERNET_GATEWAY_AUTHORIZED_VPC_ONLY",
            "no VPC has an internet gateway",
            resource_types=("AWS::EC2::InternetGateway",),
        ),
    )


def pack_template(rules: tuple[ManagedRule, ...]) -> str:
    """A conformance pack template (the CloudFormation subset Config accepts) of managed rules."""
    resources = {}
    for rule in rules:
        props: dict = {
            "ConfigRuleName": f"bakehouse-{_kebab(rule.key)}",
            "Description": rule.promise,
            "Source": {"Owner": "AWS", "SourceIdentifier": rule.source},
        }
        if rule.parameters:
            props["InputParameters"] = dict(rule.parameters)
        if rule.resource_types:
            props["Scope"] = {"ComplianceResourceTypes": list(rule.resource_types)}
        resources[rule.key] = {"Type": "AWS::Config::ConfigRule", "Properties": props}
    return yaml.safe_dump({"Resources": resources}, sort_keys=False)


def _kebab(key: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in key).lstrip("-")
