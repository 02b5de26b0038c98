"""The AWS Organization: all features, the OU tree, member accounts in their OUs, guardrails attached."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from estate.config import EstateConfig

from .scps import OrgPolicy

# OU key -> (display name, parent OU key or None for the root). Keys are stable logical names:
# renaming a display name must not re-key (and so replace) an OU.
OU_PATHS: Mapping[str, tuple[str, str | None]] = {
    "security": ("Security", None),
    "infrastructure": ("Infrastructure", None),
    "workloads": ("Workloads", None),
    "nonprod": ("NonProd", "workloads"),
    "prod": ("Prod", "workloads"),
    "suspended": ("Suspended", None),
}

# Services integrated with the organization (trusted access); each must be enabled before its
# delegated administrator can be registered.
SERVICE_ACCESS_PRINCIPALS = (
    "access-analyzer.amazonaws.com",
    "cloudtrail.amazonaws.com",
    "config-multiaccountsetup.amazonaws.com",
    "config.amazonaws.com",
    "guardduty.amazonaws.com",
    "inspector2.amazonaws.com",
    "malware-protection.guardduty.amazonaws.com",
    "securityhub.amazonaws.com",
    # The build account's portfolio is shared to the workload OUs, which needs trusted access.
    "servicecatalog.amazonaws.com",
)
POLICY_TYPES = ("SERVICE_CONTROL_POLICY", "DECLARATIVE_POLICY_EC2")


@dataclass(frozen=True)
class MemberAccount:
    key: str  # security, build, or a workload env name
    email: str
    ou: str  # a key of OU_PATHS


@dataclass(frozen=True)
class OrganizationArgs:
    estate: EstateConfig
    members: tuple[MemberAccount, ...]
    access_role_name: str
    policies: tuple[OrgPolicy, ...]

    def __post_init__(self) -> None:
        for member in self.members:
            if member.ou not in OU_PATHS:
                raise ValueError(f"account {member.key}: OU {member.ou!r}; known: {', '.join(OU_PATHS)}")
        for policy in self.policies:
            unknown = [t for t in policy.targets if t != "root" and t not in OU_PATHS]
            if unknown:
                raise ValueError(f"policy {policy.name}: unknown targets {unknown}; known: root, {', '.join(OU_PATHS)}")


def ou_for_account(key: str, prod_envs: tuple[str, ...]) -> str:
    if key in ("security", "build"):
        return "security" if key == "security" else "infrastructure"
    return "prod" if key in prod_envs else "nonprod"


class Organization(pulumi.ComponentResource):
    """Outputs: `organization`, `root_id`, `ous` (key -> OU), `accounts` (key -> Account), `policies`."""

    def __init__(self, name: str, args: OrganizationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:org:Organization", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # protect: deleting the organization would detach every account and guardrail at once.
        self.organization = aws.organizations.Organization(
            f"{name}-org",
            feature_set="ALL",
            aws_service_access_principals=list(SERVICE_ACCESS_PRINCIPALS),
            enabled_policy_types=list(POLICY_TYPES),
            opts=child.merge(pulumi.ResourceOptions(protect=True)),
        )
        self.root_id = self.organization.roots.apply(lambda roots: roots[0].id if roots else None)

        self.ous: dict[str, aws.organizations.OrganizationalUnit] = {}
        for key, (display, parent_key) in OU_PATHS.items():  # parents precede children in OU_PATHS
            parent_id = self.root_id if parent_key is None else self.ous[parent_key].id
            self.ous[key] = aws.organizations.OrganizationalUnit(
                f"{name}-ou-{key}", name=display, parent_id=parent_id, opts=child
            )

        self.accounts: dict[str, aws.organizations.Account] = {}
        for member in args.members:
            self.accounts[member.key] = aws.organizations.Account(
                f"{name}-account-{member.key}",
                name=f"bakehouse-{member.key}",
                email=member.email,
                parent_id=self.ous[member.ou].id,
                role_name=args.access_role_name,
                # Deleting the resource removes the account from the org; closing it is a human decision.
                close_on_deletion=False,
                iam_user_access_to_billing="DENY",
                tags={"bakehouse:account": member.key},
                # AWS cannot re-create an account; role_name is not readable after creation.
                opts=child.merge(pulumi.ResourceOptions(protect=True, ignore_changes=["roleName"])),
            )

        self.policies: dict[str, aws.organizations.Policy] = {}
        for policy in args.policies:
            resource = aws.organizations.Policy(
                f"{name}-policy-{policy.name}",
                name=policy.name,
                description=policy.description,
                type=policy.type,
                content=policy.minified,
                # A policy type must be enabled at the root before policies of that type exist.
                opts=child.merge(pulumi.ResourceOptions(depends_on=[self.organization])),
            )
            self.policies[policy.name] = resource
            for target in policy.targets:
                target_id = self.root_id if target == "root" else self.ous[target].id
                aws.organizations.PolicyAttachment(
                    f"{name}-attach-{policy.name}-{target}", policy_id=resource.id, target_id=target_id, opts=child
                )

        self.register_outputs(
            {
                "organization_id": self.organization.id,
                "root_id": self.root_id,
                "ou_ids": {key: ou.id for key, ou in self.ous.items()},
                "account_ids": {key: account.id for key, account in self.accounts.items()},
            }
        )
