"""What a workload account needs to launch the factory's Service Catalog product: the launch
constraint's local role, and the role app teams provision through (the portfolio's IAM_PATTERN)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from estate.naming import APP_DEPLOYER_ROLE, CATALOG_LAUNCH_ROLE

from ..build.factory_keys import LAUNCH_ACTIONS
from ..build.service_catalog import launch_statements
from ..lib.iam import document, statement
from .autoscaling_access import AUTOSCALING_SERVICE, autoscaling_role_arn

MAX_SESSION_SECONDS = 3600


@dataclass(frozen=True)
class CatalogAccessArgs:
    account_id: str
    region: str
    build_account_id: str  # owns the portfolio and its products
    kms_key_arn: pulumi.Input[str]  # this account's key: the product's volumes (launch template KmsKeyArn)
    image_key_arn: str  # the build account's key of the images in this region (bakehouse:workload.imageKeys)
    # region -> the build account's image key there (bakehouse:workload.imageKeys): the images reach those
    # regions, and with bakehouse:factory.catalogRegionalPortfolios each has its own portfolio to launch from.
    image_keys: Mapping[str, str] = field(default_factory=dict)

    @property
    def regions(self) -> list[str]:
        return [self.region, *sorted(r for r in self.image_keys if r != self.region)]


# Replaced below: it read the template from the build account's buckets, which the launch role never
# does; Service Catalog copies the template into a bucket it owns.
_BUILD_TEMPLATE_READ = "ProductTemplates"


def launch_role_statements(args: CatalogAccessArgs) -> list[dict]:
    """The product's stack (service_catalog.launch_statements), plus what a launch in this account
    needs that the build account's copy cannot know: the template where Service Catalog keeps it, the
    keys of the image and of the volumes, and the Auto Scaling role the first group creates."""
    regions = args.regions
    via_ec2 = {"kms:ViaService": [f"ec2.{r}.amazonaws.com" for r in regions]}
    image_keys = {args.region: args.image_key_arn, **args.image_keys}
    keys = [args.kms_key_arn, *(image_keys[r] for r in regions)]
    # A launch in another region encrypts its volumes with this account's key there (the launcher's
    # KmsKeyArn); only through EC2 in that region, and only this account's keys.
    keys += [f"arn:aws:kms:{r}:{args.account_id}:key/*" for r in regions if r != args.region]
    if len(regions) == 1:
        via_ec2 = {"kms:ViaService": via_ec2["kms:ViaService"][0]}
    return [
        *(s for s in launch_statements(regions, args.account_id) if s["Sid"] != _BUILD_TEMPLATE_READ),
        # Service Catalog admin guide, "AWS Service Catalog launch constraints": the template sits in a
        # service-owned bucket, readable by launch roles only through this tag condition.
        # Any object (the bucket's name is Service Catalog's), only with the tag it puts on templates.
        statement(
            "ProvisioningTemplates",
            ["s3:GetObject"],
            ["arn:aws:s3:::*/*"],
            conditions={"StringEquals": {"s3:ExistingObjectTag/servicecatalog:provisioning": "true"}},
        ),
        # EBS uses both keys with the launching role's credentials (the image's to read its snapshots,
        # this account's for the new volumes), and attaches them through grants for AWS resources.
        statement("LaunchKeysThroughEc2", LAUNCH_ACTIONS, keys, conditions={"StringEquals": via_ec2}),
        statement(
            "LaunchKeyGrantsForEbs",
            ["kms:CreateGrant"],
            keys,
            conditions={"StringEquals": via_ec2, "Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        # The product's Auto Scaling group creates the service-linked role if the account has none yet.
        statement(
            "AutoScalingServiceLinkedRole",
            ["iam:CreateServiceLinkedRole"],
            [autoscaling_role_arn(args.account_id)],
            conditions={"StringEquals": {"iam:AWSServiceName": AUTOSCALING_SERVICE}},
        ),
    ]


def deployer_statements(args: CatalogAccessArgs) -> list[dict]:
    # The home portfolio's product and, where configured, each region's (Service Authorization Reference,
    # AWS Service Catalog: the Product resource is arn:${Partition}:catalog:${Region}:${Account}:product/${Id}).
    products = [f"arn:aws:catalog:{r}:{args.build_account_id}:product/*" for r in args.regions]
    requested = args.region if len(args.regions) == 1 else args.regions
    return [
        statement(
            "ProvisionFactoryProducts",
            [
                "servicecatalog:ProvisionProduct",
                "servicecatalog:DescribeProduct",
                "servicecatalog:DescribeProvisioningParameters",
                "servicecatalog:ListLaunchPaths",
            ],
            products,
        ),
        # Provisioned-product actions take no resource ARN (Service Authorization Reference, AWS Service
        # Catalog): "*", narrowed to what was provisioned through this role ("self" is the only value).
        statement(
            "ManageOwnProvisionedProducts",
            [
                "servicecatalog:UpdateProvisionedProduct",
                "servicecatalog:TerminateProvisionedProduct",
                "servicecatalog:DescribeProvisionedProduct",
                "servicecatalog:DescribeRecord",
            ],
            ["*"],
            conditions={"StringEquals": {"servicecatalog:roleLevel": "self", "aws:RequestedRegion": requested}},
        ),
        # Searching the catalog has no resource-level permission.
        statement(
            "BrowseCatalog",
            [
                "servicecatalog:SearchProducts",
                "servicecatalog:ScanProvisionedProducts",
                "servicecatalog:SearchProvisionedProducts",
            ],
            ["*"],
            conditions={"StringEquals": {"aws:RequestedRegion": requested}},
        ),
    ]


class CatalogAccess(pulumi.ComponentResource):
    def __init__(self, name: str, args: CatalogAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:workload:CatalogAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.launch_role = aws.iam.Role(
            f"{name}-launch",
            name=CATALOG_LAUNCH_ROLE,
            description="Service Catalog launch constraint: runs the factory product's stack, nothing else",
            assume_role_policy=document(
                statement(
                    "TrustServiceCatalogInThisAccount",
                    ["sts:AssumeRole"],
                    principals={"Service": "servicecatalog.amazonaws.com"},
                    conditions={"StringEquals": {"aws:SourceAccount": args.account_id}},
                )
            ),
            max_session_duration=MAX_SESSION_SECONDS,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-launch-policy", role=self.launch_role.id, policy=document(*launch_role_statements(args)), opts=child
        )
        self.deployer_role = aws.iam.Role(
            f"{name}-deployer",
            name=APP_DEPLOYER_ROLE,
            description="App teams: provision the factory's hardened products through the catalog only",
            # Delegated to this account's IAM: identities granted sts:AssumeRole on it (people via
            # Identity Center, app pipelines via OIDC) may use it; the role itself can only provision.
            assume_role_policy=document(
                statement(
                    "TrustThisAccountsDelegates", ["sts:AssumeRole"], principals={"AWS": f"arn:aws:iam::{args.account_id}:root"}
                )
            ),
            max_session_duration=MAX_SESSION_SECONDS,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-deployer-policy", role=self.deployer_role.id, policy=document(*deployer_statements(args)), opts=child
        )
        self.register_outputs({"launch_role": self.launch_role.arn, "deployer_role": self.deployer_role.arn})
