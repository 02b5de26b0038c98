"""What the fakes' tests start from: the region, and a portfolio with one product in the Service Catalog fake."""

from __future__ import annotations

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
