"""An S3 bucket that is private, encrypted, versioned and TLS-only by construction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from .iam import document, statement

LockMode = Literal["GOVERNANCE", "COMPLIANCE"]


@dataclass(frozen=True)
class ObjectLock:
    mode: LockMode
    days: int

    def __post_init__(self) -> None:
        if self.mode not in ("GOVERNANCE", "COMPLIANCE"):
            raise ValueError(f"object lock mode {self.mode!r}; allowed: GOVERNANCE, COMPLIANCE")
        if not 1 <= self.days <= 36500:
            raise ValueError(f"object lock days {self.days}; allowed 1-36500")


@dataclass(frozen=True)
class Lifecycle:
    glacier_after_days: int | None = None
    expire_after_days: int | None = None
    noncurrent_expire_after_days: int = 90


@dataclass(frozen=True)
class SecureBucketArgs:
    purpose: str  # tagged as bakehouse:purpose; the policy pack reads it
    kms_key_arn: pulumi.Input[str] | None
    # Name of the server-access-log bucket; None only for that bucket itself.
    access_log_bucket: pulumi.Input[str] | None
    bucket_name: str | None = None  # fixed name for buckets other stacks address; else autonamed
    object_lock: ObjectLock | None = None
    lifecycle: Lifecycle | None = None
    # Statements appended to the TLS/encryption guards (e.g. service delivery grants), given the
    # bucket's ARN because most of them must name it.
    extra_statements: Callable[[str], Sequence[Mapping[str, Any]]] | None = None
    # S3 server access logging delivers only to buckets encrypted with SSE-S3, never SSE-KMS,
    # so the access-log bucket alone uses AES256 (the policy pack admits it by purpose).
    access_log_target: bool = False

    def __post_init__(self) -> None:
        if self.access_log_target:
            if self.kms_key_arn is not None:
                raise ValueError("the access-log bucket must use SSE-S3: S3 log delivery cannot write SSE-KMS")
        elif self.kms_key_arn is None:
            raise ValueError(f"bucket {self.purpose}: a customer-managed KMS key is required")
        if self.access_log_bucket is None and not self.access_log_target:
            raise ValueError(f"bucket {self.purpose}: an access_log_bucket is required")


def bucket_policy_statements(bucket_arn: str, args: SecureBucketArgs) -> list[dict[str, Any]]:
    objects = f"{bucket_arn}/*"
    statements = [
        statement(
            "DenyInsecureTransport",
            ["s3:*"],
            [bucket_arn, objects],
            effect="Deny",
            principals="*",
            conditions={"Bool": {"aws:SecureTransport": "false"}},
        ),
        statement(
            "DenyOutdatedTls",
            ["s3:*"],
            [bucket_arn, objects],
            effect="Deny",
            principals="*",
            conditions={"NumericLessThan": {"s3:TlsVersion": "1.2"}},
        ),
    ]
    if not args.access_log_target:
        # Default encryption applies when no header is sent; these deny only an explicit request for
        # another algorithm or another key (a blanket StringNotEquals would deny header-less uploads).
        statements += [
            statement(
                "DenyWrongEncryptionAlgorithm",
                ["s3:PutObject"],
                [objects],
                effect="Deny",
                principals="*",
                conditions={
                    "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
                    "Null": {"s3:x-amz-server-side-encryption": "false"},
                },
            ),
            statement(
                "DenyOtherKmsKey",
                ["s3:PutObject"],
                [objects],
                effect="Deny",
                principals="*",
                conditions={
                    "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": args.kms_key_arn},
                    "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
                },
            ),
        ]
    extra = args.extra_statements(bucket_arn) if args.extra_statements else ()
    return statements + [dict(s) for s in extra]


class SecureBucket(pulumi.ComponentResource):
    """KMS-encrypted (bucket key on), versioned, ACLs disabled, public access blocked, TLS only,
    access-logged, and optionally under object lock and a lifecycle."""

    def __init__(self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:lib:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(
            f"{name}",
            bucket=args.bucket_name,
            object_lock_enabled=args.object_lock is not None or None,
            force_destroy=False,
            tags={"bakehouse:purpose": args.purpose},
            opts=child.merge(pulumi.ResourceOptions(protect=args.object_lock is not None)),
        )
        self.name = self.bucket.bucket
        self.arn = self.bucket.arn
        bucket_id = self.bucket.id

        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket_id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        self.public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        if args.access_log_target:
            rule = aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"
                )
            )
        else:
            rule = aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="aws:kms", kms_master_key_id=args.kms_key_arn
                ),
                bucket_key_enabled=True,
            )
        aws.s3.BucketServerSideEncryptionConfiguration(f"{name}-encryption", bucket=bucket_id, rules=[rule], opts=child)
        self.versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket_id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        if args.access_log_bucket is not None:
            aws.s3.BucketLogging(
                f"{name}-access-logging",
                bucket=bucket_id,
                target_bucket=args.access_log_bucket,
                target_prefix=f"{name}/",
                opts=child,
            )
        if args.object_lock is not None:
            aws.s3.BucketObjectLockConfiguration(
                f"{name}-object-lock",
                bucket=bucket_id,
                rule=aws.s3.BucketObjectLockConfigurationRuleArgs(
                    default_retention=aws.s3.BucketObjectLockConfigurationRuleDefaultRetentionArgs(
                        mode=args.object_lock.mode, days=args.object_lock.days
                    )
                ),
                opts=child.merge(pulumi.ResourceOptions(depends_on=[self.versioning])),
            )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket_id,
            rules=_lifecycle_rules(args.lifecycle or Lifecycle()),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[self.versioning])),
        )
        # A fixed name gives an ARN known at preview, so the policy pack can read the whole policy.
        arn = pulumi.Output.from_input(f"arn:aws:s3:::{args.bucket_name}" if args.bucket_name else self.bucket.arn)
        self.policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket_id,
            policy=arn.apply(lambda a: document(*bucket_policy_statements(a, args))),
            # A policy applied before the block exists could be public for a moment.
            opts=child.merge(pulumi.ResourceOptions(depends_on=[self.public_access_block])),
        )
        self.register_outputs({"name": self.name, "arn": self.arn})


def _lifecycle_rules(lifecycle: Lifecycle) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    transitions = []
    if lifecycle.glacier_after_days is not None:
        transitions.append(
            aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(days=lifecycle.glacier_after_days, storage_class="GLACIER")
        )
    expiration = None
    if lifecycle.expire_after_days is not None:
        expiration = aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=lifecycle.expire_after_days)
    return [
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="retention",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
            transitions=transitions or None,
            expiration=expiration,
            noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=lifecycle.noncurrent_expire_after_days
            ),
            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=7
            ),
        )
    ]
