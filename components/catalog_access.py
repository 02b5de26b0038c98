"""What a workload account needs to launch the factory's Service Catalog product: the launch
constraint's local role, and the role app teams provision through (the portfolio's IAM_PATTERN)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from estate.naming import APP_DEPLOYER_ROLE, CATALOG_LAUNCH_ROLE

from .iam import document, statement
from .service_catalog import launch_statements

MAX_SESSION_SECONDS = 3600


@dataclass(frozen=True)
class CatalogAccessArgs:
    account_id: str
    region: str
    build_account_id: str  # owns the portfolio and its products


def deployer_statements(args: CatalogAccessArgs) -> list[dict]:
    products = f"arn:aws:catalog:{args.region}:{args.build_account_id}:product/*"
    return [
        statement("ProvisionFactoryProducts", ["servicecatalog:ProvisionProduct",
                                               "servicecatalog:DescribeProduct",
                                               "servicecatalog:DescribeProvisioningParameters",
                                               "servicecatalog:ListLaunchPaths"], [products]),
        # Provisioned-product actions take no resource ARN (Service Authorization Reference, AWS Service
        # Catalog): "*", narrowed to what was provisioned through this role ("self" is the only value).
        statement("ManageOwnProvisionedProducts", ["servicecatalog:UpdateProvisionedProduct",
                                                   "servicecatalog:TerminateProvisionedProduct",
                                                   "servicecatalog:DescribeProvisionedProduct",
                                                   "servicecatalog:DescribeRecord"], ["*"],
                  conditions={"StringEquals": {"servicecatalog:roleLevel": "self",
                                               "aws:RequestedRegion": args.region}}),
        # Searching the catalog has no resource-level permission.
        statement("BrowseCatalog", ["servicecatalog:SearchProducts", "servicecatalog:ScanProvisionedProducts",
                                    "servicecatalog:SearchProvisionedProducts"], ["*"],
                  conditions={"StringEquals": {"aws:RequestedRegion": args.region}}),
    ]


class CatalogAccess(pulumi.ComponentResource):
    def __init__(self, name: str, args: CatalogAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:workload:CatalogAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.launch_role = aws.iam.Role(
            f"{name}-launch", name=CATALOG_LAUNCH_ROLE,
            description="Service Catalog launch constraint: runs the factory product's stack, nothing else",
            assume_role_policy=document(statement(
                "TrustServiceCatalogInThisAccount", ["sts:AssumeRole"],
                principals={"Service": "servicecatalog.amazonaws.com"},
                conditions={"StringEquals": {"aws:SourceAccount": args.account_id}})),
            max_session_duration=MAX_SESSION_SECONDS, opts=child)
        aws.iam.RolePolicy(f"{name}-launch-policy", role=self.launch_role.id,
                           policy=document(*launch_statements(args.region, args.account_id)), opts=child)
        self.deployer_role = aws.iam.Role(
            f"{name}-deployer", name=APP_DEPLOYER_ROLE,
            description="App teams: provision the factory's hardened products through the catalog only",
            # Delegated to this account's IAM: identities granted sts:AssumeRole on it (people via
            # Identity Center, app pipelines via OIDC) may use it; the role itself can only provision.
            assume_role_policy=document(statement(
                "TrustThisAccountsDelegates", ["sts:AssumeRole"],
                principals={"AWS": f"arn:aws:iam::{args.account_id}:root"})),
            max_session_duration=MAX_SESSION_SECONDS, opts=child)
        aws.iam.RolePolicy(f"{name}-deployer-policy", role=self.deployer_role.id,
                           policy=document(*deployer_statements(args)), opts=child)
        self.register_outputs({"launch_role": self.launch_role.arn, "deployer_role": self.deployer_role.arn})
