"""What the fakes' tests start from: the region, and a portfolio with one product in the Service Catalog fake;
and the catalog the factory deploys (its product, portfolio and template constraint), for the handler tests."""

from __future__ import annotations

from pathlib import Path

import boto3

from tests.fakes.servicecatalog import FakeServiceCatalog

REGION = "eu-west-1"


def catalog():
    sc = FakeServiceCatalog(boto3.client("servicecatalog", region_name=REGION))
    portfolio = sc.create_portfolio(DisplayName="golden", ProviderName="platform", IdempotencyToken="p")
    product = sc.create_product(
        Name="hardened-instance",
        Owner="platform",
        ProductType="CLOUD_FORMATION_TEMPLATE",
        IdempotencyToken="t",
        ProvisioningArtifactParameters={
            "Name": "v1",
            "Type": "CLOUD_FORMATION_TEMPLATE",
            "Info": {"LoadTemplateFromURL": "https://s3.amazonaws.com/b/t.yaml"},
        },
    )
    return sc, portfolio["PortfolioDetail"]["Id"], product["ProductViewDetail"]["ProductViewSummary"]["ProductId"]


# The very rules the build stack deploys.
CONSTRAINT_FILE = Path(__file__).resolve().parents[2] / "catalog" / "template-constraint.json"


def factory_product(sc: FakeServiceCatalog, template: str) -> str:
    """The hardened-instance product, its first version on `template`; returns its id."""
    return sc.create_product(
        Name="hardened-instance",
        Owner="platform",
        ProductType="CLOUD_FORMATION_TEMPLATE",
        IdempotencyToken="p",
        ProvisioningArtifactParameters={
            "Name": "initial",
            "Type": "CLOUD_FORMATION_TEMPLATE",
            "Info": {"LoadTemplateFromURL": template},
        },
    )["ProductViewDetail"]["ProductViewSummary"]["ProductId"]


def constrained_portfolio(sc: FakeServiceCatalog, product: str) -> tuple[str, str]:
    """The golden portfolio holding `product` under the deployed template constraint: (portfolio id, constraint id)."""
    portfolio = sc.create_portfolio(DisplayName="golden", ProviderName="platform", IdempotencyToken="pf")["PortfolioDetail"]["Id"]
    sc.associate_product_with_portfolio(ProductId=product, PortfolioId=portfolio)
    constraint = sc.create_constraint(
        PortfolioId=portfolio, ProductId=product, Type="TEMPLATE", Parameters=CONSTRAINT_FILE.read_text(), IdempotencyToken="tc"
    )["ConstraintDetail"]["ConstraintId"]
    return portfolio, constraint
