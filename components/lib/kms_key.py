"""A customer-managed KMS key whose policy names who may administer it, use it, and which services."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from .iam import document, statement

ADMIN_ACTIONS = (
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
)
# What a recreated deploy role needs to take its key back with `pulumi up --refresh`: read the key as
# refresh does, then put the policy (which names the new role again). Nothing that uses, disables,
# deletes or grants the key.
RECOVERY_ACTIONS = ("kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags", "kms:PutKeyPolicy")
_ROLE_ARN = re.compile(r"arn:aws:iam::\d{12}:role/[\w+=,.@/-]+")
USE_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey")


@dataclass(frozen=True)
class ServiceGrant:
    """A service principal allowed to use the key, with the conditions that scope it."""

    sid: str
    service: str
    actions: tuple[str, ...] = ("kms:GenerateDataKey*", "kms:Decrypt", "kms:DescribeKey")
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


# What each service asks KMS for, as the caller, when the deploy role writes through it. kms:ViaService
# holds only when the service makes the request on the caller's behalf (KMS developer guide,
# "kms:ViaService"); kms:CallerAccount pins it to the role's own account.
DEPLOYER_SERVICE_ACTIONS: Mapping[str, tuple[str, ...]] = {
    # PutObject under SSE-KMS asks for a data key; SSM Automation reading a document's attachment back,
    # and multipart uploads, decrypt (Amazon S3 user guide, "Using SSE-KMS": permissions).
    "s3": ("kms:GenerateDataKey", "kms:Decrypt"),
    # SecureString PutParameter: standard tier encrypts the value directly, advanced tier wraps it in a
    # data key; the provider reads the value back with decryption (Systems Manager user guide, "How
    # Parameter Store uses AWS KMS").
    "ssm": ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"),
}


@dataclass(frozen=True)
class DeployerUse:
    """The deploy role may use the key for data only through these services, in this region and account."""

    region: str
    account_id: str
    services: tuple[str, ...] = ("s3", "ssm")

    def __post_init__(self) -> None:
        for service in self.services:
            if service not in DEPLOYER_SERVICE_ACTIONS:
                raise ValueError(
                    f"deployer use through {service!r} is not modelled; allowed: {', '.join(sorted(DEPLOYER_SERVICE_ACTIONS))}"
                )


def deployer_statements(deployers: Sequence[pulumi.Input[str]], use: DeployerUse) -> list[dict[str, Any]]:
    return [
        statement(
            f"DeployerWritesThrough{service.capitalize()}",
            DEPLOYER_SERVICE_ACTIONS[service],
            ["*"],
            principals={"AWS": list(deployers)},
            conditions={
                "StringEquals": {"kms:ViaService": f"{service}.{use.region}.amazonaws.com", "kms:CallerAccount": use.account_id}
            },
        )
        for service in use.services
    ]


@dataclass(frozen=True)
class KmsKeyArgs:
    description: str
    alias: str  # without the alias/ prefix
    admin_arns: Sequence[str]  # the deploy role: manages; uses data keys only as deployer_use allows
    user_arns: Sequence[pulumi.Input[str]] = ()
    services: Sequence[ServiceGrant] = ()
    extra_statements: Sequence[Mapping[str, Any]] = ()
    deletion_window_days: int = 30
    # The administrators' own data-key use (uploads, SecureStrings `pulumi up` writes); None: none at all.
    deployer_use: DeployerUse | None = None

    def __post_init__(self) -> None:
        if not self.admin_arns:
            raise ValueError(f"KMS key {self.alias}: at least one administrator ARN is required")
        for arn in self.admin_arns:
            if not (isinstance(arn, str) and _ROLE_ARN.fullmatch(arn)):
                raise ValueError(
                    f"KMS key {self.alias}: administrator {arn!r} must be a role ARN known when the "
                    "program runs (arn:aws:iam::<account>:role/<name>), so the key keeps a recovery path"
                )
        if not 7 <= self.deletion_window_days <= 30:
            raise ValueError(f"KMS key {self.alias}: deletion window {self.deletion_window_days}; allowed 7-30 days")


def recovery_statements(admin_arns: Sequence[str]) -> list[dict[str, Any]]:
    """The second, constrained administrator: the administrators' account, for their ARNs only.

    KMS stores a role principal as the role's unique id, so if the deploy role is deleted and
    recreated the KeyAdministration statement matches nothing and, without another administrator,
    the key is unmanageable until AWS Support steps in (KMS developer guide, "Default key policy":
    "Allows access to the AWS account and enables IAM policies"). Naming the account principal
    delegates to IAM, and the aws:PrincipalArn condition compares the caller's role ARN at request
    time, so the recreated role (same ARN, and an IAM policy allowing kms:PutKeyPolicy) can read the
    key and put the policy back, and no other principal of the account can. PutKeyPolicy's lockout
    safety check then passes: the policy it puts names the caller as administrator again.
    Recreating the deploy role itself is reserved to the bootstrap by the organization SCPs.
    """
    by_account: dict[str, list[str]] = {}
    for arn in admin_arns:
        by_account.setdefault(arn.split(":")[4], []).append(arn)
    return [
        statement(
            "KeyAdministrationRecovery" + ("" if len(by_account) == 1 else account),
            RECOVERY_ACTIONS,
            ["*"],
            principals={"AWS": f"arn:aws:iam::{account}:root"},
            conditions={"ArnEquals": {"aws:PrincipalArn": arns}},
        )
        for account, arns in sorted(by_account.items())
    ]


def key_policy(args: KmsKeyArgs) -> pulumi.Output[str]:
    statements = [
        statement("KeyAdministration", ADMIN_ACTIONS, ["*"], principals={"AWS": list(args.admin_arns)}),
        *recovery_statements(args.admin_arns),
    ]
    if args.deployer_use is not None:
        statements.extend(deployer_statements(args.admin_arns, args.deployer_use))
    if args.user_arns:
        statements.append(statement("KeyUse", USE_ACTIONS, ["*"], principals={"AWS": list(args.user_arns)}))
    for grant in args.services:
        statements.append(
            statement(grant.sid, grant.actions, ["*"], principals={"Service": grant.service}, conditions=grant.conditions or None)
        )
    statements.extend(args.extra_statements)
    # In a key policy "*" means this key; no broader resource exists there.
    return document(*statements)


class KmsKey(pulumi.ComponentResource):
    """Rotation on, a named alias, and a key policy with no account-wide wildcard grant."""

    def __init__(self, name: str, args: KmsKeyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:lib:KmsKey", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.key = aws.kms.Key(
            f"{name}-key",
            description=args.description,
            enable_key_rotation=True,
            rotation_period_in_days=365,
            deletion_window_in_days=args.deletion_window_days,
            policy=key_policy(args),
            opts=child,
        )
        self.alias = aws.kms.Alias(f"{name}-alias", name=f"alias/{args.alias}", target_key_id=self.key.key_id, opts=child)
        self.arn = self.key.arn
        self.key_id = self.key.key_id
        self.register_outputs({"arn": self.arn, "alias": self.alias.name})
