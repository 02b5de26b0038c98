"""The organization's guardrails as data: service control policies and EC2 declarative policies.

Pure (no resources): the documents are plain JSON built from the estate config, so tests can
measure them against the 5,120-character quota and evaluate them against example requests, and the
organization component only attaches them. Each policy names where it attaches ("root" or an OU
key of organization.OU_PATHS); SCPs attached to an OU also bind every OU beneath it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from estate.config import EstateConfig
from estate.naming import (
    LOG_BUCKET_KINDS,
    PREFIX,
    PREVIEW_ROLE,
    RESPONSE_RULE_PREFIXES,
    SESSION_PREFERENCES_DOCUMENT,
    central_bucket_arn,
)

from ..lib.iam import VERSION, statement

# Organizations counts the minified document (whitespace excluded) against this quota.
SCP_MAX_CHARS = 5120
DECLARATIVE_MAX_CHARS = 10000

# Services whose control planes are global (served from us-east-1) or that AWS documents as
# needing exemption from region denial; denying them outside the allowed list would break IAM,
# billing and support everywhere.
GLOBAL_SERVICE_ACTIONS = (
    "a4b:*",
    "account:*",
    "aws-marketplace:*",
    "aws-portal:*",
    "budgets:*",
    "ce:*",
    "chime:*",
    "cloudfront:*",
    "config:*",
    "cur:*",
    "directconnect:*",
    "ec2:DescribeRegions",
    "ec2:DescribeTransitGateways",
    "ec2:DescribeVpnGateways",
    "fms:*",
    "globalaccelerator:*",
    "health:*",
    "iam:*",
    "importexport:*",
    "kms:*",
    "mobileanalytics:*",
    "networkmanager:*",
    "organizations:*",
    "pricing:*",
    "route53:*",
    "route53domains:*",
    "route53-recovery-cluster:*",
    "route53-recovery-control-config:*",
    "route53-recovery-readiness:*",
    "s3:GetAccountPublic*",
    "s3:ListAllMyBuckets",
    "s3:ListMultiRegionAccessPoints",
    "s3:PutAccountPublic*",
    "shield:*",
    "sts:*",
    "support:*",
    "trustedadvisor:*",
    "waf-regional:*",
    "waf:*",
    "wafv2:*",
)

# What an attacker (or a careless admin) would call to blind the estate's detection and audit.
SECURITY_SERVICE_TAMPERING = (
    "cloudtrail:DeleteTrail",
    "cloudtrail:StopLogging",
    "cloudtrail:UpdateTrail",
    "cloudtrail:PutEventSelectors",
    "cloudtrail:PutInsightSelectors",
    "cloudtrail:DeleteEventDataStore",
    "guardduty:DeleteDetector",
    "guardduty:UpdateDetector",
    "guardduty:DeleteMembers",
    "guardduty:DisassociateFromAdministratorAccount",
    "guardduty:DisassociateFromMasterAccount",
    "guardduty:DisassociateMembers",
    "guardduty:StopMonitoringMembers",
    "guardduty:CreateFilter",
    "guardduty:UpdateFilter",
    "guardduty:DeletePublishingDestination",
    "guardduty:UpdateOrganizationConfiguration",
    "guardduty:UpdateMalwareScanSettings",
    "securityhub:DisableSecurityHub",
    "securityhub:BatchDisableStandards",
    "securityhub:DeleteMembers",
    "securityhub:DisassociateMembers",
    "securityhub:DisassociateFromAdministratorAccount",
    "securityhub:UpdateOrganizationConfiguration",
    "securityhub:DeleteFindingAggregator",
    "securityhub:UpdateSecurityControl",
    "securityhub:DeleteConfigurationPolicy",
    "config:DeleteConfigurationRecorder",
    "config:StopConfigurationRecorder",
    "config:PutConfigurationRecorder",
    "config:DeleteDeliveryChannel",
    "config:PutDeliveryChannel",
    "config:DeleteConfigRule",
    "config:DeleteOrganizationConfigRule",
    "config:DeleteConformancePack",
    "config:DeleteOrganizationConformancePack",
    "config:DeleteConfigurationAggregator",
    "config:DeleteRetentionConfiguration",
    "config:DeleteEvaluationResults",
    "access-analyzer:DeleteAnalyzer",
    "access-analyzer:CreateArchiveRule",
    "access-analyzer:UpdateArchiveRule",
    "inspector2:Disable",
    "inspector2:DisableDelegatedAdminAccount",
    "inspector2:Disassociate*",
    "inspector2:UpdateOrganizationConfiguration",
    "inspector2:CreateFilter",
    "inspector2:UpdateFilter",
    # rules that would archive findings as they arrive, and the legacy finding update API
    "securityhub:CreateAutomationRule",
    "securityhub:CreateAutomationRuleV2",
    "securityhub:BatchUpdateAutomationRules",
    "securityhub:UpdateAutomationRuleV2",
    "securityhub:UpdateFindings",
)

LOG_BUCKET_TAMPERING = (
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketPolicy",
    "s3:PutBucketAcl",
    "s3:PutBucketVersioning",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:PutEncryptionConfiguration",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketLogging",
    "s3:PutReplicationConfiguration",
    "s3:BypassGovernanceRetention",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:DeleteObjectVersion",
)

LOG_KEY_TAMPERING = (
    "kms:ScheduleKeyDeletion",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:PutKeyPolicy",
    "kms:DeleteAlias",
    "kms:UpdateAlias",
    "kms:CreateGrant",
    "kms:DeleteImportedKeyMaterial",
)

# What would let a member-account administrator take over, or slip past, the roles the estate is
# entered through: edit, re-trust, delete, or hand them to a service (PassRole).
ENTRY_ROLE_CHANGES = (
    "iam:AttachRolePolicy",
    "iam:DeleteRole",
    "iam:DeleteRolePermissionsBoundary",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PassRole",
    "iam:PutRolePermissionsBoundary",
    "iam:PutRolePolicy",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:UpdateRole",
    "iam:UpdateRoleDescription",
)
DEFAULT_ACCESS_ROLE = "OrganizationAccountAccessRole"
RESPONSE_RULE_TAMPERING = (
    "events:DisableRule",
    "events:DeleteRule",
    "events:RemoveTargets",
    "events:PutRule",
    "events:PutTargets",
)
ESTATE_KEY_TAMPERING = ("kms:DisableKey", "kms:ScheduleKeyDeletion", "kms:PutKeyPolicy")
SESSION_PREFERENCES_TAMPERING = ("ssm:DeleteDocument", "ssm:UpdateDocument", "ssm:UpdateDocumentDefaultVersion")


@dataclass(frozen=True)
class OrgPolicy:
    name: str
    description: str
    type: str  # SERVICE_CONTROL_POLICY or DECLARATIVE_POLICY_EC2
    targets: tuple[str, ...]  # "root" or OU keys
    content: Mapping[str, Any]

    @property
    def minified(self) -> str:
        return json.dumps(self.content, separators=(",", ":"), sort_keys=False)


def _scp(*statements: Mapping[str, Any]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def _not_deploy_role(estate: EstateConfig, **more: dict[str, Any]) -> dict[str, dict[str, Any]]:
    # The deploy role keeps the estate's own pipeline able to change what these policies protect.
    return {"ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::*:role/{estate.deploy_role_name}"}, **more}


def _entry_roles(estate: EstateConfig, access_role: str) -> dict[str, Any]:
    """Every account: the deploy, preview and access roles stay as the org stack declares them. The
    access role is exempt with the deploy role because the org stack declares the other two through
    it; only the management account can assume it, and nobody in the member can re-trust it."""
    roles = (estate.deploy_role_name, PREVIEW_ROLE, access_role)
    return statement(
        "DenyChangingTheRolesTheEstateIsEnteredThrough",
        ENTRY_ROLE_CHANGES,
        [f"arn:aws:iam::*:role/{r}" for r in roles],
        effect="Deny",
        conditions={
            "ArnNotLike": {"aws:PrincipalArn": [f"arn:aws:iam::*:role/{r}" for r in (estate.deploy_role_name, access_role)]}
        },
    )


def baseline(estate: EstateConfig, access_role: str = DEFAULT_ACCESS_ROLE) -> OrgPolicy:
    """Every account: stay in the organization, no root user, IMDSv2 only, entry roles untouched."""
    return OrgPolicy(
        "bakehouse-baseline",
        "Deny leaving the organization, the root user, and IMDSv1 instances",
        "SERVICE_CONTROL_POLICY",
        ("root",),
        _scp(
            statement("DenyLeavingOrganization", ["organizations:LeaveOrganization"], ["*"], effect="Deny"),
            statement(
                "DenyRootUser", ["*"], ["*"], effect="Deny", conditions={"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:root"}}
            ),
            statement(
                "DenyInstancesWithoutImdsv2",
                ["ec2:RunInstances"],
                ["arn:aws:ec2:*:*:instance/*"],
                effect="Deny",
                conditions={"StringNotEquals": {"ec2:MetadataHttpTokens": "required"}},
            ),
            statement(
                "DenyImdsDowngrade",
                ["ec2:ModifyInstanceMetadataOptions"],
                ["*"],
                effect="Deny",
                conditions=_not_deploy_role(estate),
            ),
            _entry_roles(estate, access_role),
        ),
    )


def protect_security(estate: EstateConfig) -> OrgPolicy:
    """Every account: the audit and detection services, log buckets and log keys stay as deployed."""
    buckets = [central_bucket_arn(estate, kind) for kind in LOG_BUCKET_KINDS]
    return OrgPolicy(
        "bakehouse-protect-security",
        "Deny disabling audit/detection services or altering log buckets and keys, except by the deploy role",
        "SERVICE_CONTROL_POLICY",
        ("root",),
        _scp(
            # These services' disable/delete APIs act on account-level singletons (detector, hub,
            # recorder) with no narrower resource ARN worth naming, so the resource is "*".
            statement(
                "DenySecurityServiceTampering",
                SECURITY_SERVICE_TAMPERING,
                ["*"],
                effect="Deny",
                conditions=_not_deploy_role(estate),
            ),
            statement(
                "DenyLogBucketTampering",
                LOG_BUCKET_TAMPERING,
                [*buckets, *(f"{b}/*" for b in buckets)],
                effect="Deny",
                conditions=_not_deploy_role(estate),
            ),
            statement(
                "DenyLogKeyTampering",
                LOG_KEY_TAMPERING,
                [f"arn:aws:kms:*:{estate.accounts.security}:key/*"],
                effect="Deny",
                conditions=_not_deploy_role(estate),
            ),
            *_tamper_paths(estate),
        ),
    )


def _tamper_paths(estate: EstateConfig) -> list[dict[str, Any]]:
    """What would blind detection or response without touching the services above."""
    return [
        # One statement for the resources below: each action acts only on its own service's ARNs.
        statement(
            "DenyResponseAndAuditTampering",
            [
                "ec2:DeleteFlowLogs",
                *RESPONSE_RULE_TAMPERING,
                "kms:DeleteAlias",
                "kms:UpdateAlias",
                *SESSION_PREFERENCES_TAMPERING,
            ],
            [
                "arn:aws:ec2:*:*:vpc-flow-log/*",
                *(f"arn:aws:events:*:*:rule/{prefix}*" for prefix in RESPONSE_RULE_PREFIXES),
                f"arn:aws:kms:*:*:alias/{PREFIX}-*",
                f"arn:aws:ssm:*:*:document/{SESSION_PREFERENCES_DOCUMENT}",
            ],
            effect="Deny",
            conditions=_not_deploy_role(estate),
        ),
        # kms:ResourceAliases is a condition key of KMS key operations (KMS Developer Guide, "AWS KMS
        # condition keys"); every estate key carries an alias/bakehouse-* alias (components/lib/kms_key.py),
        # which the statement above keeps from being moved or deleted.
        statement(
            "DenyEstateKeyTampering",
            ESTATE_KEY_TAMPERING,
            ["arn:aws:kms:*:*:key/*"],
            effect="Deny",
            conditions=_not_deploy_role(estate, **{"ForAnyValue:StringLike": {"kms:ResourceAliases": f"alias/{PREFIX}-*"}}),
        ),
        # BatchUpdateFindings names the hub, not the findings; the request's fields are condition keys.
        statement(
            "DenyFindingSuppression",
            ["securityhub:BatchUpdateFindings"],
            ["*"],
            effect="Deny",
            conditions=_not_deploy_role(estate, StringEquals={"securityhub:ASFFSyntaxPath/Workflow.Status": "SUPPRESSED"}),
        ),
    ]


def region_restriction(estate: EstateConfig) -> OrgPolicy:
    return OrgPolicy(
        "bakehouse-regions",
        f"Deny regions other than {', '.join(estate.allowed_regions)} (global services exempt)",
        "SERVICE_CONTROL_POLICY",
        ("root",),
        _scp(
            statement(
                "DenyOutsideAllowedRegions",
                not_actions=GLOBAL_SERVICE_ACTIONS,
                resources=["*"],
                effect="Deny",
                conditions={"StringNotEquals": {"aws:RequestedRegion": list(estate.allowed_regions)}},
            )
        ),
    )


def workload_network(estate: EstateConfig) -> OrgPolicy:
    """Workload accounts: no path to or from the internet, no peering but with the estate's core accounts.

    A workload's one peer is the build account's egress VPC (components/workload/private_network.py); envs never
    peer with each other, so the allowed peers are the core accounts, not every account: one ARN per
    account passed the 5,120-character SCP quota at 57 envs.
    """
    estate_vpcs = [
        f"arn:aws:ec2:*:{account}:vpc/*"
        for account in (estate.accounts.management, estate.accounts.security, estate.accounts.build)
    ]
    return OrgPolicy(
        "bakehouse-workload-network",
        "Deny internet gateways, NAT gateways, public IPs and peering but with core accounts",
        "SERVICE_CONTROL_POLICY",
        ("workloads",),
        _scp(
            statement(
                "DenyInternetPaths",
                [
                    "ec2:CreateInternetGateway",
                    "ec2:AttachInternetGateway",
                    "ec2:CreateEgressOnlyInternetGateway",
                    "ec2:AttachEgressOnlyInternetGateway",
                    "ec2:CreateNatGateway",
                    "ec2:AllocateAddress",
                    "ec2:AssociateAddress",
                    "ec2:CreateCarrierGateway",
                    "globalaccelerator:Create*",
                ],
                ["*"],
                effect="Deny",
            ),
            statement(
                "DenyPublicIpOnLaunch",
                ["ec2:RunInstances", "ec2:CreateNetworkInterface"],
                ["arn:aws:ec2:*:*:network-interface/*"],
                effect="Deny",
                conditions={"Bool": {"ec2:AssociatePublicIpAddress": "true"}},
            ),
            # The other side must be a core account: the accepter of what this account requests, the
            # requester of what it accepts.
            statement(
                "DenyPeeringToOutsideVpc",
                ["ec2:CreateVpcPeeringConnection"],
                ["arn:aws:ec2:*:*:vpc-peering-connection/*"],
                effect="Deny",
                conditions={"ArnNotLike": {"ec2:AccepterVpc": estate_vpcs}},
            ),
            statement(
                "DenyPeeringFromOutsideVpc",
                ["ec2:AcceptVpcPeeringConnection"],
                ["arn:aws:ec2:*:*:vpc-peering-connection/*"],
                effect="Deny",
                conditions={"ArnNotLike": {"ec2:RequesterVpc": estate_vpcs}},
            ),
        ),
    )


def approved_images(estate: EstateConfig) -> OrgPolicy:
    """Workload accounts launch only AMIs the build account owns (the factory's golden images)."""
    return OrgPolicy(
        "bakehouse-approved-images",
        "Deny launching AMIs not owned by the build account",
        "SERVICE_CONTROL_POLICY",
        ("workloads",),
        _scp(
            statement(
                "DenyImagesFromOtherOwners",
                ["ec2:RunInstances", "ec2:CreateFleet", "ec2:RequestSpotInstances"],
                ["arn:aws:ec2:*::image/*"],
                effect="Deny",
                conditions={"StringNotEquals": {"ec2:Owner": estate.accounts.build}},
            ),
            # The rescan tags each account's own view of a vulnerable shared image (service
            # authorization reference, Amazon EC2: the image resource of these three actions takes
            # ec2:ResourceTag/${TagKey}).
            statement(
                "DenyQuarantinedImages",
                ["ec2:RunInstances", "ec2:CreateFleet", "ec2:RequestSpotInstances"],
                ["arn:aws:ec2:*::image/*"],
                effect="Deny",
                conditions={"StringEquals": {"ec2:ResourceTag/bakehouse:quarantined": "true"}},
            ),
        ),
    )


def ec2_defaults() -> OrgPolicy:
    """Every account: IMDSv2 by default, no public AMI or snapshot sharing."""
    return OrgPolicy(
        "bakehouse-ec2-defaults",
        "IMDSv2 by default; block public image and snapshot sharing",
        "DECLARATIVE_POLICY_EC2",
        ("root",),
        {
            "ec2_attributes": {
                "instance_metadata_defaults": {
                    "http_tokens": {"@@assign": "required"},
                    "http_put_response_hop_limit": {"@@assign": "2"},
                    "http_endpoint": {"@@assign": "enabled"},
                },
                "image_block_public_access": {"state": {"@@assign": "block_new_sharing"}},
                "snapshot_block_public_access": {"state": {"@@assign": "block_all_sharing"}},
            }
        },
    )


def ec2_allowed_images(estate: EstateConfig) -> OrgPolicy:
    """Workload accounts see and launch only images from the build account (the build account itself
    needs Amazon's base images, so this is not attached at the root)."""
    return OrgPolicy(
        "bakehouse-ec2-allowed-images",
        "Allowed images: only those the build account provides",
        "DECLARATIVE_POLICY_EC2",
        ("workloads",),
        {
            "ec2_attributes": {
                "allowed_images_settings": {
                    "state": {"@@assign": "enabled"},
                    "image_criteria": {"criteria_1": {"allowed_image_providers": {"@@assign": [estate.accounts.build]}}},
                },
                "exception_message": {"@@assign": "Launch golden images from the Bakehouse build account only."},
            }
        },
    )


def org_policies(estate: EstateConfig, access_role: str = DEFAULT_ACCESS_ROLE) -> list[OrgPolicy]:
    policies = [
        baseline(estate, access_role),
        protect_security(estate),
        region_restriction(estate),
        workload_network(estate),
        approved_images(estate),
        ec2_defaults(),
        ec2_allowed_images(estate),
    ]
    for policy in policies:
        limit = SCP_MAX_CHARS if policy.type == "SERVICE_CONTROL_POLICY" else DECLARATIVE_MAX_CHARS
        if len(policy.minified) > limit:
            raise ValueError(f"policy {policy.name} is {len(policy.minified)} characters minified; Organizations allows {limit}")
    return policies
