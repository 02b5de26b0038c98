"""Management-account side of the security services: the security account becomes their delegated
administrator. What it then configures org-wide lives in the security stack (security_services.py),
because those calls must be made *in* the delegated administrator account."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

# Services registered through the generic Organizations API (the others have their own resources).
ORGANIZATIONS_DELEGATIONS = {
    "config": "config.amazonaws.com",
    "config-multiaccountsetup": "config-multiaccountsetup.amazonaws.com",
    "access-analyzer": "access-analyzer.amazonaws.com",
}


CATALOG_PRINCIPAL = "servicecatalog.amazonaws.com"


@dataclass(frozen=True)
class DelegatedAdminsArgs:
    admin_account_id: pulumi.Input[str]
    home_region: str
    # GuardDuty and Inspector delegation is regional; each allowed region needs its own.
    regions: tuple[str, ...]
    # The build account shares the factory's portfolio to the workload OUs, which only the management
    # account or a Service Catalog delegated administrator may do.
    catalog_admin_account_id: pulumi.Input[str] | None = None


class DelegatedAdmins(pulumi.ComponentResource):
    def __init__(self, name: str, args: DelegatedAdminsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:org:DelegatedAdmins", name, None, opts)
        # A component's depends_on does not hold back its children; each registration needs the
        # organization's trusted access first, so the children wait for the same resources.
        after = list(opts.depends_on or []) if opts is not None and isinstance(opts.depends_on, list) else []
        child = pulumi.ResourceOptions(parent=self, depends_on=after)
        admin = args.admin_account_id
        self.guardduty = {
            region: aws.guardduty.OrganizationAdminAccount(
                f"{name}-guardduty-{region}", admin_account_id=admin, region=region, opts=child
            )
            for region in args.regions
        }
        self.inspector = {
            region: aws.inspector2.DelegatedAdminAccount(
                f"{name}-inspector-{region}", account_id=admin, region=region, opts=child
            )
            for region in args.regions
        }
        # Security Hub central configuration is driven from the home region and reaches the others
        # through its finding aggregator, so one delegation suffices.
        self.securityhub = aws.securityhub.OrganizationAdminAccount(
            f"{name}-securityhub", admin_account_id=admin, region=args.home_region, opts=child
        )
        self.others = {
            key: aws.organizations.DelegatedAdministrator(
                f"{name}-{key}", account_id=admin, service_principal=principal, opts=child
            )
            for key, principal in ORGANIZATIONS_DELEGATIONS.items()
        }
        self.catalog = self._catalog(name, args.catalog_admin_account_id, child)
        self.register_outputs({"admin_account_id": admin})

    @staticmethod
    def _catalog(
        name: str, account_id: pulumi.Input[str] | None, child: pulumi.ResourceOptions
    ) -> aws.organizations.DelegatedAdministrator | None:
        if account_id is None:
            return None
        # Only the management account may call EnableAWSOrganizationsAccess, and sharing to OUs needs it
        # (Service Catalog API Reference, "EnableAWSOrganizationsAccess"; Admin Guide, "Sharing with
        # AWS Organizations"). It also turns on Organizations trusted access for Service Catalog.
        access = aws.servicecatalog.OrganizationsAccess(f"{name}-catalog-organizations-access", enabled=True, opts=child)
        return aws.organizations.DelegatedAdministrator(
            f"{name}-servicecatalog",
            account_id=account_id,
            service_principal=CATALOG_PRINCIPAL,
            opts=child.merge(pulumi.ResourceOptions(depends_on=[access])),
        )
