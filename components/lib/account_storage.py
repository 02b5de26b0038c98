"""What every account starts with: its customer-managed key and its server-access-log bucket."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from estate.config import StackConfig
from estate.naming import bucket_name

from .iam import statement
from .kms_key import DeployerUse, KmsKey, KmsKeyArgs, ServiceGrant
from .secure_bucket import SecureBucket, SecureBucketArgs


@dataclass(frozen=True)
class AccountStorage:
    key: KmsKey
    access_logs: SecureBucket


def logs_grant(cfg: StackConfig) -> ServiceGrant:
    """CloudWatch Logs may use the key only for this account's log groups (encryption context)."""
    return ServiceGrant(
        sid="CloudWatchLogsInThisAccount",
        service=f"logs.{cfg.region}.amazonaws.com",
        actions=("kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"),
        conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{cfg.region}:{cfg.account_id}:log-group:*"}},
    )


def account_storage(
    name: str,
    cfg: StackConfig,
    parent: pulumi.Resource,
    key_users: Sequence[pulumi.Input[str]] = (),
    key_services: Sequence[ServiceGrant] = (),
    key_statements: Sequence[Mapping[str, Any]] = (),  # grants that must name the account, with conditions
    # Services through which `pulumi up` writes data under this key as the deploy role: S3 (handlers
    # zips, the catalog template, document attachments) and SSM (SecureString parameters).
    deployer_via: tuple[str, ...] = ("s3", "ssm"),
) -> AccountStorage:
    child = pulumi.ResourceOptions(parent=parent)
    key = KmsKey(
        f"{name}-key",
        KmsKeyArgs(
            description=f"Bakehouse {cfg.stack}: data at rest in account {cfg.account_id}",
            alias=f"bakehouse-{cfg.stack}",
            admin_arns=[cfg.deploy_role_arn],
            user_arns=list(key_users),
            services=[logs_grant(cfg), *key_services],
            extra_statements=list(key_statements),
            deployer_use=DeployerUse(region=cfg.region, account_id=cfg.account_id, services=deployer_via)
            if deployer_via
            else None,
        ),
        opts=child,
    )
    logs_name = bucket_name("accesslogs", cfg.account_id, cfg.region)
    access_logs = SecureBucket(
        f"{name}-access-logs",
        SecureBucketArgs(
            purpose="access-logs",
            kms_key_arn=None,
            access_log_bucket=None,
            access_log_target=True,
            bucket_name=logs_name,
            extra_statements=lambda arn: [
                statement(
                    "S3ServerAccessLogDelivery",
                    ["s3:PutObject"],
                    [f"{arn}/*"],
                    principals={"Service": "logging.s3.amazonaws.com"},
                    conditions={"StringEquals": {"aws:SourceAccount": cfg.account_id}},
                )
            ],
        ),
        opts=child,
    )
    return AccountStorage(key=key, access_logs=access_logs)
