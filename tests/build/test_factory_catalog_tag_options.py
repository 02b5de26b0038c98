"""bakehouse:factory.catalogTagOptions: the owner and cost centre every catalog launch carries, with
the target envs as the env TagOption's values."""

from __future__ import annotations

import copy

import pytest

from components.build.factory_config import factory_config
from tests.build._build_config_support import build_cfg, problems_of, shipped_factory


def test_catalog_tag_options_are_env_owner_and_cost_centre_from_config():
    factory = {**copy.deepcopy(shipped_factory()), "catalogTagOptions": {"owner": "platform-team", "costCentre": "CC-4242"}}
    parsed = factory_config(build_cfg(factory))
    assert parsed.catalog_tag_options == {"env": ("dev", "uat", "prod"), "owner": ("platform-team",), "cost-centre": ("CC-4242",)}


def test_without_an_owner_and_cost_centre_only_the_env_tag_option_is_offered():
    factory = {k: v for k, v in copy.deepcopy(shipped_factory()).items() if k != "catalogTagOptions"}
    assert factory_config(build_cfg(factory)).catalog_tag_options == {"env": ("dev", "uat", "prod")}


@pytest.mark.parametrize("value", [{"owner": ""}, {"costCentre": "x" * 257}, {"team": "a"}, "platform"])
def test_malformed_catalog_tag_options_are_refused_with_the_key(value):
    problems = problems_of(catalogTagOptions=value)
    assert any("catalogTagOptions" in p for p in problems), problems


def test_regional_portfolios_are_off_unless_configured_and_then_cover_every_distribution_region():
    factory = copy.deepcopy(shipped_factory())
    factory.pop("catalogRegionalPortfolios", None)
    assert factory_config(build_cfg(factory)).catalog_regions == ()
    on = factory_config(build_cfg({**factory, "catalogRegionalPortfolios": True}))
    assert on.catalog_regions == on.regions and on.catalog_regions


def test_catalog_regional_portfolios_must_be_a_boolean():
    assert any("catalogRegionalPortfolios" in p for p in problems_of(catalogRegionalPortfolios="yes"))
