"""The factory's KMS keys: one in the home region, one per distribution region for the AMI copies.

A shared encrypted AMI is only launchable in a workload account if that account may use the key of
the copy's snapshots, and only through EC2: the key policies grant exactly that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

from estate.config import StackConfig

from ..lib.account_storage import logs_grant
from ..lib.iam import statement
from ..lib.kms_key import KmsKey, KmsKeyArgs, ServiceGrant
from ..lib.org_paths import ou_path_patterns
from ..lib.providers import account_provider, stack_role_arn
from .factory_config import factory_config

# What launching from (or re-encrypting a copy of) a shared encrypted AMI needs of its key.
LAUNCH_ACTIONS = ("kms:Decrypt", "kms:DescribeKey", "kms:ReEncrypt*", "kms:GenerateDataKeyWithoutPlaintext")
# The grant each workload account gives its Auto Scaling service-linked role on these keys (the role
# gets nothing from IAM or from a key policy naming the account); helper code in the workload stack
# creates it with exactly these operations. EC2 Auto Scaling user guide, "Required AWS KMS key policy
# for use with encrypted volumes" (cross-account example: the grant is made from the ASG's account).
AUTOSCALING_GRANT_OPERATIONS = (
    "Decrypt",
    "DescribeKey",
    "ReEncryptFrom",
    "ReEncryptTo",
    "GenerateDataKeyWithoutPlaintext",
    "CreateGrant",
)
AUTOSCALING_ROLE_PATH = "aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"


def workload_launch_statements(
    region: str, workload_accounts: Sequence[str], organization_id: str, workload_ous: Sequence[str]
) -> list[dict[str, Any]]:
    """Workload accounts may use the key for EBS volumes of instances they launch, through EC2 only,
    and may grant their own Auto Scaling service-linked role the same.

    The accounts are named by OU (aws:PrincipalOrgPaths), not one by one: a principal per account
    passed KMS's 32 KB key policy quota at about 300 envs. An account of the workload OUs that is not a
    target gains nothing usable: images and their snapshots are shared to the target accounts only.
    """
    if not workload_accounts:
        return []
    everyone = {"AWS": "*"}
    in_workload_ous = {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": ou_path_patterns(organization_id, workload_ous)}}
    via_ec2 = {"kms:ViaService": f"ec2.{region}.amazonaws.com"}
    own_autoscaling_role = f"arn:aws:iam::${{aws:PrincipalAccount}}:role/{AUTOSCALING_ROLE_PATH}"
    return [
        statement(
            "WorkloadLaunchFromSharedImages",
            LAUNCH_ACTIONS,
            ["*"],
            principals=everyone,
            conditions={"StringEquals": via_ec2, **in_workload_ous},
        ),
        statement(
            "WorkloadEbsGrants",
            ["kms:CreateGrant"],
            ["*"],
            principals=everyone,
            conditions={"StringEquals": via_ec2, "Bool": {"kms:GrantIsForAWSResource": "true"}, **in_workload_ous},
        ),
        # Made by the workload deployer calling KMS itself, so neither kms:ViaService nor
        # kms:GrantIsForAWSResource can be required; the grantee and operations are pinned instead.
        statement(
            "WorkloadAutoScalingRoleGrants",
            ["kms:CreateGrant"],
            ["*"],
            principals=everyone,
            conditions={
                "StringEquals": {"kms:GranteePrincipal": own_autoscaling_role},
                "ForAllValues:StringEquals": {"kms:GrantOperations": list(AUTOSCALING_GRANT_OPERATIONS)},
                **in_workload_ous,
            },
        ),
    ]


def launcher_grant_statement(launcher_arns: Sequence[pulumi.Input[str]]) -> dict[str, Any]:
    """Roles that launch or copy images encrypted with the key: EBS creates its grant with their
    credentials, so the key policy (which does not delegate to IAM) must admit CreateGrant for them."""
    return statement(
        "LaunchersEbsGrants",
        ["kms:CreateGrant"],
        ["*"],
        principals={"AWS": list(launcher_arns)},
        conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
    )


# Services that encrypt with the factory key through grants created with the deployer's credentials
# when Pulumi creates or updates their resources.
DEPLOY_TIME_SERVICES = ("network-firewall", "lambda", "scheduler")


def deployer_via_services_statement(deploy_role_arn: str, region: str) -> dict[str, Any]:
    """The deployer administers the key but uses it only through these services, never directly."""
    return statement(
        "DeployerUseThroughServices",
        ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"],
        ["*"],
        principals={"AWS": [deploy_role_arn]},
        conditions={"StringEquals": {"kms:ViaService": [f"{s}.{region}.amazonaws.com" for s in DEPLOY_TIME_SERVICES]}},
    )


def events_grant(cfg: StackConfig) -> ServiceGrant:
    """EventBridge must encrypt what it publishes to the KMS-encrypted notification topic."""
    return ServiceGrant(
        sid="EventBridgeToEncryptedTopics",
        service="events.amazonaws.com",
        actions=("kms:GenerateDataKey*", "kms:Decrypt"),
        conditions={"StringEquals": {"aws:SourceAccount": cfg.account_id}},
    )


def cloudwatch_grant(cfg: StackConfig) -> ServiceGrant:
    """CloudWatch alarms (the factory's dead-letter alarms) must encrypt what they publish to the
    KMS-encrypted notifications topic (Amazon SNS developer guide, "Enable compatibility between event
    sources from AWS services and encrypted topics")."""
    return ServiceGrant(
        sid="CloudWatchAlarmsToEncryptedTopics",
        service="cloudwatch.amazonaws.com",
        actions=("kms:GenerateDataKey*", "kms:Decrypt"),
        conditions={"StringEquals": {"aws:SourceAccount": cfg.account_id}},
    )


@dataclass(frozen=True)
class FactoryKeys:
    home: KmsKey
    regional: Mapping[str, KmsKey]  # region -> key of the AMI copies there

    @property
    def all_arns(self) -> list[pulumi.Output[str]]:
        return [self.home.arn, *(k.arn for k in self.regional.values())]


def factory_keys(
    name: str,
    cfg: StackConfig,
    regions: Sequence[str],
    workload_accounts: Sequence[str],
    users: Sequence[pulumi.Input[str]],
    parent: pulumi.Resource,
    launchers: Sequence[pulumi.Input[str]] = (),
) -> FactoryKeys:
    """The home key (images, topics, schedules, Lambda environment, firewall) and per-region copy keys."""
    child = pulumi.ResourceOptions(parent=parent)
    org = cfg.estate.organization_id
    workload_ous = factory_config(cfg).workload_ous
    launcher_statements = [launcher_grant_statement(launchers)] if launchers else []
    home = KmsKey(
        f"{name}-factory-key",
        KmsKeyArgs(
            description=f"Bakehouse {cfg.stack}: golden images, factory topics, schedules and firewall",
            alias="bakehouse-factory",
            admin_arns=[cfg.deploy_role_arn],
            user_arns=list(users),
            services=[logs_grant(cfg), events_grant(cfg), cloudwatch_grant(cfg)],
            extra_statements=[
                *workload_launch_statements(cfg.region, workload_accounts, org, workload_ous),
                *launcher_statements,
                deployer_via_services_statement(cfg.deploy_role_arn, cfg.region),
            ],
        ),
        opts=child,
    )
    regional = {}
    for region in regions:
        # Same account and default tags, another region: a provider of its own, as a child so it
        # inherits nothing from the ambient default.
        provider = account_provider(
            f"{name}-{region}",
            account_id=cfg.account_id,
            region=region,
            role_arn=stack_role_arn(cfg),
            tags=cfg.default_tags,
            session_name=f"bakehouse-{cfg.stack}-{region}",
            opts=child,
        )
        regional[region] = KmsKey(
            f"{name}-images-{region}",
            KmsKeyArgs(
                description=f"Bakehouse {cfg.stack}: golden image copies in {region}",
                alias="bakehouse-images",
                admin_arns=[cfg.deploy_role_arn],
                user_arns=list(users),
                extra_statements=[
                    *workload_launch_statements(region, workload_accounts, org, workload_ous),
                    *launcher_statements,
                ],
            ),
            opts=pulumi.ResourceOptions(parent=parent, provider=provider),
        )
    return FactoryKeys(home, regional)
