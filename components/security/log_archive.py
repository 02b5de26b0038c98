"""The log archive: one KMS key and one object-locked bucket per log kind, each admitting only the
estate's own deliveries.

Bucket names come from estate.naming (other stacks deliver there); key ids do not leave this stack,
because writers send no key header and the bucket's default encryption applies the kind's key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from estate.config import EstateConfig
from estate.naming import LOG_BUCKET_KINDS, central_bucket, central_key_alias

from ..lib.iam import statement
from ..lib.kms_key import KmsKey, KmsKeyArgs, ServiceGrant
from ..lib.secure_bucket import Lifecycle, ObjectLock, SecureBucket, SecureBucketArgs
from .org_trail import trail_arn

# Incident evidence is written by the isolate playbook in workload accounts under this prefix.
EVIDENCE_PREFIX = "incidents/"


@dataclass(frozen=True)
class LogArchiveArgs:
    estate: EstateConfig
    region: str
    deploy_role_arn: str
    access_log_bucket: pulumi.Input[str]
    object_lock: ObjectLock
    lifecycle: Lifecycle


# Who writes is named by organization, not account by account: a principal or an ARN per account passed
# S3's 20 KB bucket policy quota at about 90 envs (config) and KMS's 32 KB key policy at about 400.
# IAM User Guide, "AWS global condition context keys": aws:PrincipalOrgID for IAM principals, and
# aws:SourceOrgID for a service principal acting for a resource of a member account (AWS Control Tower
# guide, "Amazon S3 bucket policy in the audit account", requires it of Config and CloudTrail deliveries).
def _from_the_organization(estate: EstateConfig) -> dict[str, dict[str, str]]:
    return {"StringEquals": {"aws:SourceOrgID": estate.organization_id}}


def _workload_principals(estate: EstateConfig) -> tuple[str, dict[str, dict[str, Any]]]:
    """Any principal of the organization's accounts but the core ones (management, security, build): the
    workload accounts, at any count. Principal "*" with a fixed aws:PrincipalOrgID is not public to S3."""
    core = [estate.accounts.management, estate.accounts.security, estate.accounts.build]
    return "*", {
        "StringEquals": {"aws:PrincipalOrgID": estate.organization_id},
        "StringNotEquals": {"aws:PrincipalAccount": core},
    }


# --- key policies: who may encrypt into each kind's key ---------------------------------------------
def key_grants(estate: EstateConfig, kind: str) -> list[ServiceGrant]:
    if kind == "trail":
        trail = trail_arn(estate)
        return [
            ServiceGrant(
                "CloudTrailEncryptsOrganizationTrail",
                "cloudtrail.amazonaws.com",
                ("kms:GenerateDataKey*",),
                {
                    "StringEquals": {"aws:SourceArn": trail},
                    "StringLike": {
                        "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:*:{estate.accounts.management}:trail/*"
                    },
                },
            ),
            ServiceGrant(
                "CloudTrailDescribesKey",
                "cloudtrail.amazonaws.com",
                ("kms:DescribeKey",),
                {"StringEquals": {"aws:SourceArn": trail}},
            ),
        ]
    if kind == "config":
        return [
            ServiceGrant(
                "ConfigDelivers", "config.amazonaws.com", ("kms:GenerateDataKey", "kms:Decrypt"), _from_the_organization(estate)
            )
        ]
    if kind == "flowlogs":
        return [
            ServiceGrant(
                "FlowLogDelivery",
                "delivery.logs.amazonaws.com",
                ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"),
                _from_the_organization(estate),
            )
        ]
    return []


def key_extra_statements(estate: EstateConfig, region: str, kind: str) -> list[dict[str, Any]]:
    security = estate.accounts.security
    statements = [
        # Reading the archive (Athena, investigators) happens in this account and only through S3.
        statement(
            "ReadThroughS3InSecurityAccount",
            ["kms:Decrypt", "kms:DescribeKey"],
            ["*"],
            principals={"AWS": f"arn:aws:iam::{security}:root"},
            conditions={"StringEquals": {"kms:CallerAccount": security, "kms:ViaService": f"s3.{region}.amazonaws.com"}},
        ),
    ]
    if kind in ("evidence", "sessions"):
        # Playbooks and Session Manager in workload accounts write with their own roles.
        anyone, workloads = _workload_principals(estate)
        statements.append(
            statement(
                "WorkloadWritersThroughS3",
                ["kms:GenerateDataKey*", "kms:Encrypt", "kms:Decrypt"],
                ["*"],
                principals={"AWS": anyone},
                conditions={
                    **workloads,
                    "StringEquals": {**workloads["StringEquals"], "kms:ViaService": f"s3.{region}.amazonaws.com"},
                },
            )
        )
    if kind == "evidence":
        # The isolation playbook copies the instance's snapshots re-encrypted under this key, from the
        # workload account and only through EBS (EC2 user guide: copying snapshots with a key of another
        # account needs these on the destination key; grants only for AWS resources).
        anyone, workloads = _workload_principals(estate)
        through_ec2 = {
            **workloads,
            "StringEquals": {**workloads["StringEquals"], "kms:ViaService": f"ec2.{region}.amazonaws.com"},
        }
        statements.append(
            statement(
                "WorkloadSnapshotCopiesThroughEc2",
                ["kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*", "kms:Decrypt"],
                ["*"],
                principals={"AWS": anyone},
                conditions=through_ec2,
            )
        )
        statements.append(
            statement(
                "WorkloadSnapshotCopyGrantsForEbs",
                ["kms:CreateGrant"],
                ["*"],
                principals={"AWS": anyone},
                conditions={**through_ec2, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
    return statements


# --- bucket policies: which deliveries each bucket admits -------------------------------------------
def delivery_statements(estate: EstateConfig, kind: str) -> Callable[[str], Sequence[Mapping[str, Any]]]:
    org = estate.organization_id

    def trail(arn: str) -> list[dict[str, Any]]:
        source = {"StringEquals": {"aws:SourceArn": trail_arn(estate)}}
        return [
            statement(
                "CloudTrailAclCheck",
                ["s3:GetBucketAcl"],
                [arn],
                principals={"Service": "cloudtrail.amazonaws.com"},
                conditions=source,
            ),
            statement(
                "CloudTrailDelivers",
                ["s3:PutObject"],
                [f"{arn}/AWSLogs/{estate.accounts.management}/*", f"{arn}/AWSLogs/{org}/*"],
                principals={"Service": "cloudtrail.amazonaws.com"},
                conditions={"StringEquals": {"aws:SourceArn": trail_arn(estate), "s3:x-amz-acl": "bucket-owner-full-control"}},
            ),
        ]

    def config(arn: str) -> list[dict[str, Any]]:
        source = _from_the_organization(estate)
        return [
            statement(
                "ConfigAclCheck",
                ["s3:GetBucketAcl", "s3:ListBucket"],
                [arn],
                principals={"Service": "config.amazonaws.com"},
                conditions=source,
            ),
            # Delivery channels may set a key prefix (the workload baseline uses "config/"), which
            # Config puts before AWSLogs/<account>/; Config writes the account segment itself.
            statement(
                "ConfigDelivers",
                ["s3:PutObject"],
                [f"{arn}/AWSLogs/*/Config/*", f"{arn}/*/AWSLogs/*/Config/*"],
                principals={"Service": "config.amazonaws.com"},
                conditions={"StringEquals": {**source["StringEquals"], "s3:x-amz-acl": "bucket-owner-full-control"}},
            ),
        ]

    def flowlogs(arn: str) -> list[dict[str, Any]]:
        source = _from_the_organization(estate)
        return [
            statement(
                "FlowLogAclCheck",
                ["s3:GetBucketAcl", "s3:ListBucket"],
                [arn],
                principals={"Service": "delivery.logs.amazonaws.com"},
                conditions=source,
            ),
            statement(
                "FlowLogDelivers",
                ["s3:PutObject"],
                [f"{arn}/AWSLogs/*"],
                principals={"Service": "delivery.logs.amazonaws.com"},
                conditions={"StringEquals": {**source["StringEquals"], "s3:x-amz-acl": "bucket-owner-full-control"}},
            ),
        ]

    def evidence(arn: str) -> list[dict[str, Any]]:
        anyone, workloads = _workload_principals(estate)
        return [
            statement(
                "PlaybooksWriteEvidence",
                ["s3:PutObject", "s3:GetObject"],
                [f"{arn}/{EVIDENCE_PREFIX}*"],
                principals={"AWS": anyone},
                conditions=workloads,
            ),
            statement(
                "PlaybooksListEvidence",
                ["s3:ListBucket"],
                [arn],
                principals={"AWS": anyone},
                conditions={**workloads, "StringLike": {"s3:prefix": f"{EVIDENCE_PREFIX}*"}},
            ),
        ]

    def sessions(arn: str) -> list[dict[str, Any]]:
        # Each account writes only under its own id, so one account cannot overwrite another's record.
        anyone, workloads = _workload_principals(estate)
        return [
            statement(
                "SessionLogsPerAccount",
                ["s3:PutObject"],
                [f"{arn}/${{aws:PrincipalAccount}}/*"],
                principals={"AWS": anyone},
                conditions=workloads,
            ),
            # Session Manager refuses to log to a bucket whose encryption it cannot read.
            statement(
                "SessionEncryptionCheck",
                ["s3:GetEncryptionConfiguration"],
                [arn],
                principals={"AWS": anyone},
                conditions=workloads,
            ),
        ]

    return {"trail": trail, "config": config, "flowlogs": flowlogs, "evidence": evidence, "sessions": sessions}[kind]


class LogArchive(pulumi.ComponentResource):
    """Outputs: `keys` and `buckets`, both keyed by log kind."""

    def __init__(self, name: str, args: LogArchiveArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:security:LogArchive", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.keys: dict[str, KmsKey] = {}
        self.buckets: dict[str, SecureBucket] = {}
        for kind in LOG_BUCKET_KINDS:
            self.keys[kind] = KmsKey(
                f"{name}-{kind}-key",
                KmsKeyArgs(
                    description=f"Bakehouse log archive: {kind}",
                    alias=central_key_alias(kind).removeprefix("alias/"),
                    admin_arns=[args.deploy_role_arn],
                    services=key_grants(args.estate, kind),
                    extra_statements=key_extra_statements(args.estate, args.region, kind),
                ),
                opts=child,
            )
            self.buckets[kind] = SecureBucket(
                f"{name}-{kind}",
                SecureBucketArgs(
                    purpose=f"log-archive-{kind}",
                    kms_key_arn=self.keys[kind].arn,
                    access_log_bucket=args.access_log_bucket,
                    bucket_name=central_bucket(args.estate, kind),
                    # AWS Config cannot deliver to an object-locked bucket (AWS::Config::DeliveryChannel
                    # reference); versioning and the protect-security SCP guard the config bucket.
                    object_lock=None if kind == "config" else args.object_lock,
                    lifecycle=args.lifecycle,
                    extra_statements=delivery_statements(args.estate, kind),
                ),
                opts=child,
            )
        self.register_outputs(
            {
                "bucket_names": {kind: b.name for kind, b in self.buckets.items()},
                "key_arns": {kind: k.arn for kind, k in self.keys.items()},
            }
        )
