"""The hardened-instance product, offered to the workload OUs through a shared portfolio.

Pulumi declares the product with its first provisioning artifact only: each approved AMI adds an
artifact at runtime (handlers/catalog.py), so later artifacts are the handler's and ignored here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from estate.naming import CATALOG_LAUNCH_ROLE, PREFIX

from ..lib.iam import document, statement

PROJECT_DIR = Path(__file__).resolve().parents[2]
TEMPLATE = PROJECT_DIR / "catalog" / "hardened-instance.yaml"
TEMPLATE_CONSTRAINT = PROJECT_DIR / "catalog" / "template-constraint.json"


def template_key(text: str) -> str:
    """A content-hashed key: a changed template is a new object, never an overwrite of a live one."""
    return f"catalog/hardened-instance-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"


def constraint_rules(path: Path = TEMPLATE_CONSTRAINT) -> str:
    """The template constraint's rules as Service Catalog wants them (a JSON object with `Rules`)."""
    rules = json.loads(path.read_text())
    if not isinstance(rules, dict) or "Rules" not in rules:
        raise ValueError(f"{path}: a template constraint is a JSON object with a Rules key")
    return json.dumps(rules, sort_keys=True)


def launch_statements(region: str | Sequence[str], account: str) -> list[dict[str, Any]]:
    """What the launch constraint role needs to run the product's stack: no more than its resources,
    in each region the product is offered in."""
    regions = [region] if isinstance(region, str) else list(region)

    def each(pattern: str) -> list[str]:
        return [pattern.format(region=r) for r in regions]

    return [
        statement(
            "ProductStacks",
            [
                "cloudformation:CreateStack",
                "cloudformation:UpdateStack",
                "cloudformation:DeleteStack",
                "cloudformation:DescribeStacks",
                "cloudformation:DescribeStackEvents",
                "cloudformation:GetTemplateSummary",
                "cloudformation:SetStackPolicy",
            ],
            [*each(f"arn:aws:cloudformation:{{region}}:{account}:stack/SC-{account}-*")],
        ),
        # Launch-time reads and template validation have no resource-level permissions.
        statement(
            "LaunchReads",
            ["cloudformation:ValidateTemplate", "ec2:Describe*", "autoscaling:Describe*"],
            ["*"],
            conditions={"StringEquals": {"aws:RequestedRegion": regions if len(regions) > 1 else regions[0]}},
        ),
        # SSM-typed template parameters (the approved AMI id, public base parameters) resolve at launch.
        statement(
            "ResolveTemplateParameters",
            ["ssm:GetParameters", "ssm:GetParameter"],
            [
                *each(f"arn:aws:ssm:{{region}}:{account}:parameter/bakehouse/*"),
                *each("arn:aws:ssm:{region}::parameter/aws/service/*"),
            ],
        ),
        # The product's own resources: IMDSv2-only instances with encrypted volumes, nothing else.
        statement(
            "LaunchHardenedInstancesOnly",
            ["ec2:RunInstances"],
            [*each(f"arn:aws:ec2:{{region}}:{account}:instance/*")],
            conditions={"StringEquals": {"ec2:MetadataHttpTokens": "required"}},
        ),
        statement(
            "EncryptedVolumesOnly",
            ["ec2:RunInstances", "ec2:CreateVolume"],
            [*each(f"arn:aws:ec2:{{region}}:{account}:volume/*")],
            conditions={"Bool": {"ec2:Encrypted": "true"}},
        ),
        statement(
            "LaunchSupportingResources",
            ["ec2:RunInstances"],
            [
                *each("arn:aws:ec2:{region}::image/*"),
                *each(f"arn:aws:ec2:{{region}}:{account}:subnet/*"),
                *each(f"arn:aws:ec2:{{region}}:{account}:network-interface/*"),
                *each(f"arn:aws:ec2:{{region}}:{account}:security-group/*"),
                *each(f"arn:aws:ec2:{{region}}:{account}:launch-template/*"),
            ],
        ),
        # The product template also owns its security group and tags its Auto Scaling group.
        statement(
            "ProductLifecycle",
            [
                "ec2:CreateLaunchTemplate",
                "ec2:CreateLaunchTemplateVersion",
                "ec2:DeleteLaunchTemplate",
                "ec2:TerminateInstances",
                "ec2:CreateTags",
                "ec2:CreateSecurityGroup",
                "ec2:DeleteSecurityGroup",
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:AuthorizeSecurityGroupEgress",
                "ec2:RevokeSecurityGroupEgress",
                "autoscaling:CreateAutoScalingGroup",
                "autoscaling:UpdateAutoScalingGroup",
                "autoscaling:DeleteAutoScalingGroup",
                "autoscaling:CreateOrUpdateTags",
            ],
            [*each(f"arn:aws:ec2:{{region}}:{account}:*"), *each(f"arn:aws:autoscaling:{{region}}:{account}:*")],
        ),
        # App instance roles live on their own path (components/workload/app_access.py); nothing else may be passed.
        statement(
            "PassAppInstanceRoleToEc2",
            ["iam:PassRole"],
            [f"arn:aws:iam::{account}:role/{PREFIX}/app/*"],
            conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        statement(
            "ProductTemplates",
            ["s3:GetObject"],
            ["arn:aws:s3:::*/catalog/hardened-instance-*"],
            conditions={"StringEquals": {"s3:ResourceAccount": account}},
        ),
    ]


@dataclass(frozen=True)
class ServiceCatalogArgs:
    region: str
    account_id: str
    workload_ous: Sequence[str]
    launch_role_names: Sequence[str]
    launch_role: aws.iam.Role
    templates_bucket: str  # the scripts bucket (KMS, versioned, logged)
    templates_kms_key_arn: pulumi.Input[str]
    template_path: Path = TEMPLATE
    constraint_path: Path = TEMPLATE_CONSTRAINT
    # TagOption key -> its allowed values (env, owner, cost-centre): a launch from the portfolio carries
    # one value of each key, chosen by the launcher where there are several (FactoryConfig.catalog_tag_options).
    tag_options: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # region -> a provider there: a portfolio and product in each (bakehouse:factory.catalogRegionalPortfolios)
    regional_providers: Mapping[str, pulumi.ProviderResource] = field(default_factory=dict)


class ServiceCatalog(pulumi.ComponentResource):
    """Portfolio (shared to OUs with principals), product, launch and template constraints; the same
    again in each region of `regional_providers` (a regional portfolio, off unless configured)."""

    def __init__(self, name: str, args: ServiceCatalogArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:build:ServiceCatalog", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        regions = [args.region, *sorted(r for r in args.regional_providers if r != args.region)]
        aws.iam.RolePolicy(
            f"{name}-launch-policy",
            role=args.launch_role.name,
            policy=document(*launch_statements(regions, args.account_id)),
            opts=child,
        )
        self.template_url: str | None = None
        template: aws.s3.BucketObjectv2 | None = None
        if args.template_path.is_file():
            text = args.template_path.read_text()
            key = template_key(text)
            # One object in the home region's bucket; every region's product reads it from there.
            template = aws.s3.BucketObjectv2(
                f"{name}-template",
                bucket=args.templates_bucket,
                key=key,
                content=text,
                content_type="application/x-yaml",
                server_side_encryption="aws:kms",
                kms_key_id=args.templates_kms_key_arn,
                opts=child,
            )
            self.template_url = f"https://{args.templates_bucket}.s3.{args.region}.amazonaws.com/{key}"
        else:
            # Written by the catalog area; until it lands the portfolio is declared empty, and says so.
            pulumi.log.warn(f"missing artifact {args.template_path}: no catalog product declared", self)
        home = _Catalog(self, name, args, child, template, self.template_url)
        self.portfolio, self.tag_options, self.shares, self.principals = (
            home.portfolio,
            home.tag_options,
            home.shares,
            home.principals,
        )
        self.product, self.template_constraint = home.product, home.template_constraint
        self.product_arn: pulumi.Output[str] | None = home.product.arn if home.product else None
        if home.product is not None:
            self.launch_constraint = home.launch_constraint
        self.regional = {
            region: _Catalog(
                self,
                f"{name}-{region}",
                args,
                pulumi.ResourceOptions(parent=self, provider=args.regional_providers[region]),
                template,
                self.template_url,
            )
            for region in regions[1:]
        }
        # What the factory's settings hand the catalog step: region -> (product id, portfolio id, product ARN).
        self.regional_ids: dict[str, tuple[pulumi.Output[str], pulumi.Output[str], pulumi.Output[str]]] = {
            region: (c.product.id, c.portfolio.id, c.product.arn) for region, c in self.regional.items() if c.product
        }
        self.register_outputs(
            {
                "portfolio_id": self.portfolio.id,
                "product_id": self.product.id if self.product else None,
                "regional": {
                    r: {"portfolio_id": c.portfolio.id, "product_id": c.product.id if c.product else None}
                    for r, c in self.regional.items()
                },
            }
        )


class _Catalog:
    """One region's portfolio, its shares, principals and TagOptions, and the product with its
    constraints (resources named from `prefix`, so the home region keeps its names)."""

    def __init__(
        self,
        owner: pulumi.Resource,
        prefix: str,
        args: ServiceCatalogArgs,
        child: pulumi.ResourceOptions,
        template: aws.s3.BucketObjectv2 | None,
        template_url: str | None,
    ):
        self.portfolio = aws.servicecatalog.Portfolio(
            f"{prefix}-portfolio",
            name="Bakehouse golden images",
            provider_name="Bakehouse image factory",
            description="Hardened instances launched only from factory-approved AMIs",
            opts=child,
        )
        # Keyed by key and value, never by position: adding an env must not replace the others.
        self.tag_options = {
            (key, value): aws.servicecatalog.TagOption(
                f"{prefix}-tag-option-{key}-{value}", key=key, value=value, active=True, opts=child
            )
            for key, values in sorted(args.tag_options.items())
            for value in values
        }
        # Shares to OUs are allowed to the management account or a Service Catalog delegated administrator
        # with organizations access on (API reference, CreatePortfolioShare): the org stack, deployed
        # first, registers this account and enables that access (components/org/delegated_admins.py).
        self.shares = {
            ou: aws.servicecatalog.PortfolioShare(
                f"{prefix}-share-{ou}",
                portfolio_id=self.portfolio.id,
                principal_id=ou,
                type="ORGANIZATIONAL_UNIT",
                share_principals=True,
                share_tag_options=bool(self.tag_options),
                opts=child,
            )
            for ou in args.workload_ous
        }
        # IAM_PATTERN with no account: shared along with the portfolio, it matches the role of that
        # name in every recipient account (and this one).
        self.principals = {
            role: aws.servicecatalog.PrincipalPortfolioAssociation(
                f"{prefix}-principal-{role}",
                portfolio_id=self.portfolio.id,
                principal_type="IAM_PATTERN",
                principal_arn=f"arn:aws:iam:::role/{role}",
                opts=child,
            )
            for role in args.launch_role_names
        }
        self.product: aws.servicecatalog.Product | None = None
        self.template_constraint: aws.servicecatalog.Constraint | None = None
        self._associate_tag_options(prefix, "portfolio", self.portfolio.id, child)
        if template is not None and template_url is not None:
            self._product(owner, prefix, args, child, template, template_url)
            self._associate_tag_options(prefix, "product", self.product.id, child)

    def _associate_tag_options(
        self, prefix: str, target: str, resource_id: pulumi.Input[str], child: pulumi.ResourceOptions
    ) -> None:
        for (key, value), option in self.tag_options.items():
            aws.servicecatalog.TagOptionResourceAssociation(
                f"{prefix}-tag-option-{key}-{value}-{target}", resource_id=resource_id, tag_option_id=option.id, opts=child
            )

    def _product(
        self,
        owner: pulumi.Resource,
        prefix: str,
        args: ServiceCatalogArgs,
        child: pulumi.ResourceOptions,
        template: aws.s3.BucketObjectv2,
        template_url: str,
    ) -> None:
        self.product = aws.servicecatalog.Product(
            f"{prefix}-product",
            name="Bakehouse hardened instance",
            owner="Bakehouse platform",
            type="CLOUD_FORMATION_TEMPLATE",
            description="An instance or Auto Scaling group from the approved golden AMI: IMDSv2, encrypted volumes",
            provisioning_artifact_parameters=aws.servicecatalog.ProductProvisioningArtifactParametersArgs(
                name="initial",
                description="Declared by Pulumi; later versions come from the factory",
                type="CLOUD_FORMATION_TEMPLATE",
                template_url=template_url,
            ),
            # handlers/catalog.py adds an artifact per approved AMI; Pulumi must not fight it.
            opts=child.merge(pulumi.ResourceOptions(depends_on=[template], ignore_changes=["provisioningArtifactParameters"])),
        )
        association = aws.servicecatalog.ProductPortfolioAssociation(
            f"{prefix}-product-association", portfolio_id=self.portfolio.id, product_id=self.product.id, opts=child
        )
        after_association = child.merge(pulumi.ResourceOptions(depends_on=[association]))
        # By name, so each recipient account's own role of that name launches the product there.
        self.launch_constraint = aws.servicecatalog.Constraint(
            f"{prefix}-launch-constraint",
            portfolio_id=self.portfolio.id,
            product_id=self.product.id,
            type="LAUNCH",
            description="Provision through the catalog launch role only",
            parameters=json.dumps({"LocalRoleName": CATALOG_LAUNCH_ROLE}),
            opts=after_association,
        )
        if not args.constraint_path.is_file():
            pulumi.log.warn(f"missing artifact {args.constraint_path}: no template constraint declared", owner)
            return
        self.template_constraint = aws.servicecatalog.Constraint(
            f"{prefix}-template-constraint",
            portfolio_id=self.portfolio.id,
            product_id=self.product.id,
            type="TEMPLATE",
            description="The AMI parameter accepts the approved image id only",
            parameters=constraint_rules(args.constraint_path),
            # At approval the factory rewrites the rule to the approved AMI id (UpdateConstraint, which the
            # automation role may call); the file holds the value before the first approval.
            opts=after_association.merge(pulumi.ResourceOptions(ignore_changes=["parameters"])),
        )
