"""What EC2 Auto Scaling needs to launch the app from the factory's encrypted images: its
service-linked role, existing before the account key names it, and a grant on each of the build
account's image keys, made from this account.

A service-linked role gets nothing from IAM delegation and its policy cannot be edited, so a key
policy naming the account does not admit it: the account key names the role itself, and the image
keys (another account's) are reached through grants. EC2 Auto Scaling user guide, "Required AWS KMS
key policy for use with encrypted volumes" (cross-account: the grant is created from the account that
owns the Auto Scaling group, with the key ARN).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from ..build.factory_keys import AUTOSCALING_GRANT_OPERATIONS, AUTOSCALING_ROLE_PATH
from ..lib.iam import statement

AUTOSCALING_SERVICE = "autoscaling.amazonaws.com"
# What the role does with the account key for EBS: the user guide's two statements.
EBS_USE_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey")


def autoscaling_role_arn(account_id: str) -> str:
    return f"arn:aws:iam::{account_id}:role/{AUTOSCALING_ROLE_PATH}"


def account_key_statements(role_arn: pulumi.Input[str]) -> list[dict[str, Any]]:
    """The account key's statements for the Auto Scaling role: use for EBS, grants only for AWS resources."""
    return [
        statement("AutoScalingRoleEbsUse", EBS_USE_ACTIONS, ["*"], principals={"AWS": role_arn}),
        statement(
            "AutoScalingRoleEbsGrants",
            ["kms:CreateGrant"],
            ["*"],
            principals={"AWS": role_arn},
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
    ]


@dataclass(frozen=True)
class AutoScalingAccessArgs:
    account_id: str
    home_region: str
    image_keys: Mapping[str, str]  # region -> build account key ARN (bakehouse:workload.imageKeys)
    # region -> provider for this account there; the home region uses the stack's own provider.
    providers: Mapping[str, pulumi.ProviderResource] = field(default_factory=dict)


class AutoScalingAccess(pulumi.ComponentResource):
    def __init__(self, name: str, args: AutoScalingAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:workload:AutoScalingAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # AWS creates it with the first Auto Scaling group; created here so the key can name it first.
        # An account that already has one: `pulumi import aws:iam/serviceLinkedRole:ServiceLinkedRole`.
        self.role = aws.iam.ServiceLinkedRole(f"{name}-role", aws_service_name=AUTOSCALING_SERVICE, opts=child)
        # The ARN is fixed; taken through the role's URN (known in preview) so whatever names it waits
        # for the role to exist: KMS refuses a key policy or grant naming a principal that does not.
        self.role_arn: pulumi.Output[str] = self.role.urn.apply(lambda _: autoscaling_role_arn(args.account_id))
        self.grants = {}
        for region, key_arn in sorted(args.image_keys.items()):
            provider = None if region == args.home_region else args.providers[region]
            self.grants[region] = aws.kms.Grant(
                f"{name}-image-key-{region}",
                name=f"bakehouse-autoscaling-{region}",
                key_id=key_arn,
                grantee_principal=self.role_arn,
                operations=list(AUTOSCALING_GRANT_OPERATIONS),
                opts=child.merge(pulumi.ResourceOptions(provider=provider)),
            )
        self.register_outputs(
            {"role_arn": self.role_arn, "grants": {region: grant.grant_id for region, grant in self.grants.items()}}
        )
