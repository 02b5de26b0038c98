"""Guards the Service Catalog fake's reason to exist for the deployed rescan's catalog repin: when
moto learns these calls, this fails and the fake (tests/fakes/servicecatalog.py) can shrink."""

from __future__ import annotations

import boto3
import pytest

from tests.fakes import FakeServiceCatalog
from tests.fakes.scenes import REGION, catalog


def test_moto_still_lacks_listing_and_updating_portfolio_constraints(aws):
    _, portfolio, product = catalog()
    client = boto3.client("servicecatalog", region_name=REGION)
    with pytest.raises(NotImplementedError):
        client.list_constraints_for_portfolio(PortfolioId=portfolio, ProductId=product)
    with pytest.raises(NotImplementedError):
        client.update_constraint(Id="cons-abcdefghijklm", Parameters="{}")


def test_the_fake_lists_and_updates_what_a_repin_reads_and_writes(aws):
    sc, portfolio, product = catalog()
    assert isinstance(sc, FakeServiceCatalog)
    sc.associate_product_with_portfolio(ProductId=product, PortfolioId=portfolio)
    created = sc.create_constraint(
        PortfolioId=portfolio, ProductId=product, Type="TEMPLATE", IdempotencyToken="c", Parameters='{"Rules": {}}'
    )["ConstraintDetail"]["ConstraintId"]
    [listed] = sc.list_constraints_for_portfolio(PortfolioId=portfolio, ProductId=product)["ConstraintDetails"]
    assert listed["ConstraintId"] == created and listed["Type"] == "TEMPLATE"
    sc.update_constraint(Id=created, Parameters='{"Rules": {"R": {}}}')
    assert sc.describe_constraint(Id=created)["ConstraintParameters"] == '{"Rules": {"R": {}}}'
