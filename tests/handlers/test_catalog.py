"""handlers.catalog: a Service Catalog version per approved AMI, older ones deprecated, N active."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from handlers import catalog as cat
from handlers.common import MalformedEvent
from tests.fakes import FakeServiceCatalog
from tests.fakes.scenes import CONSTRAINT_FILE, constrained_portfolio, factory_product
from tests.fakes.seed import NoAwsCalls

REGION = "eu-west-1"
TEMPLATE = "https://bakehouse-templates.s3.eu-west-1.amazonaws.com/catalog/hardened-instance.yaml"
AMIS = [f"ami-0{str(n) * 16}" for n in range(1, 6)]


@pytest.fixture
def catalog():
    with mock_aws():
        sc = FakeServiceCatalog(boto3.client("servicecatalog", region_name=REGION))
        yield sc, factory_product(sc, TEMPLATE)


def _add(sc, product, image, max_versions=3, **kw):
    return cat.add_version(cat.CatalogRequest(image, "al2023", product, max_versions, **kw), sc)


def _versions(sc, product):
    return {d["Name"]: d for d in sc.list_provisioning_artifacts(ProductId=product)["ProvisioningArtifactDetails"]}


def test_an_approved_ami_becomes_a_version_on_the_products_template(catalog):
    sc, product = catalog
    result = _add(sc, product, AMIS[0])
    assert result.created
    detail = sc.describe_provisioning_artifact(ProductId=product, ProvisioningArtifactId=result.artifact_id)
    assert detail["Info"]["TemplateUrl"] == TEMPLATE
    assert detail["ProvisioningArtifactDetail"]["Name"] == f"al2023 {AMIS[0]}"
    assert AMIS[0] in detail["ProvisioningArtifactDetail"]["Description"]
    assert detail["ProvisioningArtifactDetail"]["Guidance"] == "DEFAULT"


def test_older_versions_are_deprecated(catalog):
    sc, product = catalog
    _add(sc, product, AMIS[0])
    _add(sc, product, AMIS[1])
    versions = _versions(sc, product)
    assert versions[f"al2023 {AMIS[0]}"]["Guidance"] == "DEPRECATED"
    assert versions[f"al2023 {AMIS[1]}"]["Guidance"] == "DEFAULT"


def test_a_family_keeps_max_versions_and_its_oldest_are_deactivated_then_deleted(catalog):
    sc, product = catalog
    for image in AMIS[:4]:
        result = _add(sc, product, image, max_versions=2)
    versions = _versions(sc, product)
    assert sorted(versions) == ["al2023 " + AMIS[2], "al2023 " + AMIS[3], "initial"]
    deleted = [c["ProvisioningArtifactId"] for c in sc.calls_to("delete_provisioning_artifact")]
    assert len(deleted) == 2 and set(result.deactivated) <= set(deleted)
    assert result.active == (versions[f"al2023 {AMIS[3]}"]["Id"], versions[f"al2023 {AMIS[2]}"]["Id"])


def test_replaying_the_same_ami_changes_nothing(catalog):
    sc, product = catalog
    first = _add(sc, product, AMIS[0])
    before = len(sc.calls)
    again = _add(sc, product, AMIS[0])
    new_calls = {c.operation for c in sc.calls[before:]}
    assert new_calls == {"list_provisioning_artifacts"}
    assert (again.artifact_id, again.created, again.deprecated, again.deactivated) == (first.artifact_id, False, (), ())


def test_an_explicit_template_url_wins(catalog):
    sc, product = catalog
    other = "https://bakehouse-templates.s3.eu-west-1.amazonaws.com/catalog/v2.yaml"
    result = _add(sc, product, AMIS[0], template_url=other)
    info = sc.describe_provisioning_artifact(ProductId=product, ProvisioningArtifactId=result.artifact_id)["Info"]
    assert info["TemplateUrl"] == other


def test_rolling_back_to_an_older_ami_makes_its_version_current_again(catalog):
    sc, product = catalog
    for image in AMIS[:2]:
        _add(sc, product, image, max_versions=2)
    result = _add(sc, product, AMIS[0], max_versions=2)
    versions = _versions(sc, product)
    assert not result.created
    assert versions[f"al2023 {AMIS[0]}"]["Guidance"] == "DEFAULT" and result.active[0] == versions[f"al2023 {AMIS[0]}"]["Id"]


def test_one_familys_versions_never_prune_or_deprecate_anothers(catalog):
    sc, product = catalog
    _add(sc, product, AMIS[0], max_versions=1)
    for image in AMIS[1:4]:
        cat.add_version(cat.CatalogRequest(image, "ubuntu2404", product, 1), sc)
    versions = _versions(sc, product)
    assert versions[f"al2023 {AMIS[0]}"]["Active"] and versions[f"al2023 {AMIS[0]}"]["Guidance"] == "DEFAULT"
    assert [n for n in versions if n.startswith("ubuntu2404")] == [f"ubuntu2404 {AMIS[3]}"]


def test_an_unknown_product_is_reported_by_id(catalog):
    sc, _ = catalog
    with pytest.raises(cat.ProductNotFound, match="prod-missing0000"):
        _add(sc, "prod-missing0000", AMIS[0])


GOOD = {"ImageId": AMIS[0], "Family": "al2023", "ProductId": "prod-abcdefghijklm", "MaxVersions": "3"}


def test_handler_parses_the_pipelines_payload(catalog, monkeypatch):
    sc, product = catalog
    monkeypatch.setattr(cat, "client", lambda service: sc)
    out = cat.handler({**GOOD, "ProductId": product}, None)
    assert out["Created"] is True and out["ArtifactId"].startswith("pa-")


@pytest.mark.parametrize(
    "change,problem",
    [
        ({"ImageId": "ami-1"}, "ImageId"),
        ({"ProductId": "prod abc"}, "ProductId"),
        ({"MaxVersions": 0}, "MaxVersions"),
        ({"TemplateUrl": "ftp://x/y.yaml"}, "TemplateUrl"),
        ({"Family": ""}, "Family"),
        ({"ApprovedImageIds": ["snap-1"]}, "ApprovedImageIds"),
        ({"PortfolioId": "port fail"}, "PortfolioId"),
    ],
)
def test_a_malformed_event_is_rejected_before_any_aws_call(monkeypatch, change, problem):
    monkeypatch.setattr(cat, "client", NoAwsCalls("client"))
    with pytest.raises(MalformedEvent, match=problem):
        cat.handler({**GOOD, **change}, None)


# --- the portfolio's template constraint follows the approved image -----------------------------


@pytest.fixture
def portfolio(catalog):
    sc, product = catalog
    return sc, product, *constrained_portfolio(sc, product)


def _rules(sc, constraint_id):
    return json.loads(sc.describe_constraint(Id=constraint_id)["ConstraintParameters"])["Rules"]


def test_the_deployed_constraint_file_has_the_rule_the_handler_rewrites():
    rules = json.loads(CONSTRAINT_FILE.read_text())["Rules"]
    assertions = rules[cat.APPROVED_RULE]["Assertions"]
    assert any(a["Assert"].get("Fn::Contains", [None, None])[1] == cat.IMAGE_PARAMETER_REF for a in assertions)


def test_the_template_constraint_is_pinned_to_the_approved_regional_ids(portfolio):
    sc, product, portfolio_id, constraint_id = portfolio
    before = _rules(sc, constraint_id)
    regional = {"eu-west-1": AMIS[0], "us-east-1": AMIS[1]}
    result = cat.offer(
        cat.CatalogRequest(AMIS[0], "al2023", product, 3, portfolio_id=portfolio_id, approved_image_ids=tuple(regional.values())),
        sc,
    )
    assert (result.constraint_id, result.constraint_updated) == (constraint_id, True)
    rules = _rules(sc, constraint_id)
    assert rules[cat.APPROVED_RULE]["Assertions"][0]["Assert"]["Fn::Contains"] == [sorted(regional.values()), {"Ref": "ImageId"}]
    assert rules["ApprovedAl2023"]["Assertions"][0]["Assert"]["Fn::Contains"][0] == sorted(regional.values())
    other_rules = {k: v for k, v in rules.items() if k not in (cat.APPROVED_RULE, "ApprovedAl2023")}
    assert other_rules == {k: v for k, v in before.items() if k != cat.APPROVED_RULE}


def _admits(rules, family, image):
    """Service Catalog's evaluation of the rules for a launch with Family and ImageId (Fn::Contains,
    Fn::Equals as RuleCondition; every rule whose condition holds must pass)."""
    params = {"Family": family, "ImageId": image}
    for rule in rules.values():
        condition = rule.get("RuleCondition", {}).get("Fn::Equals")
        if condition and params[condition[0]["Ref"]] != condition[1]:
            continue
        for assertion in rule["Assertions"]:
            contains = assertion["Assert"].get("Fn::Contains")
            if contains and contains[1] == {"Ref": "ImageId"} and image not in contains[0]:
                return False
    return True


def test_approving_one_family_leaves_the_other_familys_launches_admitted(portfolio):
    sc, product, portfolio_id, constraint_id = portfolio
    cat.offer(cat.CatalogRequest(AMIS[0], "al2023", product, 3, portfolio_id=portfolio_id), sc)
    cat.offer(cat.CatalogRequest(AMIS[1], "ubuntu2404", product, 3, portfolio_id=portfolio_id), sc)
    rules = _rules(sc, constraint_id)
    assert _admits(rules, "al2023", AMIS[0]) and _admits(rules, "ubuntu2404", AMIS[1])
    assert not _admits(rules, "al2023", AMIS[1])  # an image approved for another family only
    assert not _admits(rules, "windows", AMIS[2])  # an unknown family gets past no rule


def test_a_quarantine_pins_the_familys_rule_to_its_last_good_image_or_to_none(portfolio):
    sc, product, portfolio_id, constraint_id = portfolio
    cat.offer(cat.CatalogRequest(AMIS[1], "al2023", product, 3, portfolio_id=portfolio_id), sc)
    cat.offer(cat.CatalogRequest(AMIS[2], "ubuntu2404", product, 3, portfolio_id=portfolio_id), sc)
    cat.pin_family(sc, portfolio_id, product, "al2023", AMIS[0])
    rules = _rules(sc, constraint_id)
    assert _admits(rules, "al2023", AMIS[0]) and not _admits(rules, "al2023", AMIS[1])
    cat.pin_family(sc, portfolio_id, product, "al2023", None)
    rules = _rules(sc, constraint_id)
    assert not any(_admits(rules, "al2023", i) for i in AMIS) and _admits(rules, "ubuntu2404", AMIS[2])


def test_replaying_leaves_the_constraint_alone(portfolio):
    sc, product, portfolio_id, _ = portfolio
    request = cat.CatalogRequest(AMIS[0], "al2023", product, 3, portfolio_id=portfolio_id)
    cat.offer(request, sc)
    assert cat.offer(request, sc).constraint_updated is False
    assert len(sc.calls_to("update_constraint")) == 1


def test_a_portfolio_without_the_rule_is_reported(catalog):
    sc, product = catalog
    portfolio_id = sc.create_portfolio(DisplayName="p", ProviderName="x", IdempotencyToken="p2")["PortfolioDetail"]["Id"]
    sc.associate_product_with_portfolio(ProductId=product, PortfolioId=portfolio_id)
    sc.create_constraint(
        PortfolioId=portfolio_id,
        ProductId=product,
        Type="TEMPLATE",
        IdempotencyToken="t",
        Parameters=json.dumps({"Rules": {"Other": {"Assertions": []}}}),
    )
    with pytest.raises(cat.ConstraintNotFound, match=portfolio_id):
        cat.offer(cat.CatalogRequest(AMIS[0], "al2023", product, 3, portfolio_id=portfolio_id), sc)


def test_handler_takes_the_distributions_region_map(portfolio, monkeypatch):
    sc, product, portfolio_id, constraint_id = portfolio
    monkeypatch.setattr(cat, "client", lambda service: sc)
    out = cat.handler(
        {
            **GOOD,
            "ProductId": product,
            "PortfolioId": portfolio_id,
            "ApprovedImageIds": {"eu-west-1": AMIS[0], "eu-central-1": AMIS[2]},
        },
        None,
    )
    assert out["ConstraintUpdated"] is True and out["ConstraintId"] == constraint_id
    assert _rules(sc, constraint_id)[cat.APPROVED_RULE]["Assertions"][0]["Assert"]["Fn::Contains"][0] == [AMIS[0], AMIS[2]]


# --- a portfolio in each distribution region (bakehouse:factory.catalogRegionalPortfolios) -----------
OTHER = "eu-central-1"


@pytest.fixture
def regions(portfolio):
    """The home portfolio above, and the same again in OTHER holding a copy of each approved AMI
    (tagged bakehouse:source-ami with the home id, as handlers/distribute.py tags its copies)."""
    sc, product, portfolio_id, constraint_id = portfolio
    there = FakeServiceCatalog(boto3.client("servicecatalog", region_name=OTHER))
    regional_product = factory_product(there, TEMPLATE)
    regional_portfolio, regional_constraint = constrained_portfolio(there, regional_product)
    ec2 = boto3.client("ec2", region_name=OTHER)
    copies = {}
    for source in AMIS[:3]:
        copies[source] = ec2.register_image(
            Name=f"copy-of-{source}",
            RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
        ec2.create_tags(Resources=[copies[source]], Tags=[{"Key": "bakehouse:source-ami", "Value": source}])
    return {
        "home": (sc, product, portfolio_id, constraint_id),
        "sc": there,
        "product": regional_product,
        "portfolio": regional_portfolio,
        "constraint": regional_constraint,
        "copies": copies,
        "regional": (cat.RegionalCatalog(OTHER, regional_product, regional_portfolio),),
        "sc_for": lambda region: there if region == OTHER else sc,
        "ec2_for": lambda region: boto3.client("ec2", region_name=region),
    }


def _everywhere(r, image, family="al2023"):
    sc, product, portfolio_id, _ = r["home"]
    request = cat.CatalogRequest(image, family, product, 3, portfolio_id=portfolio_id, regional=r["regional"])
    return cat.offer_everywhere(request, r["sc_for"], r["ec2_for"])


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_each_regions_product_gets_a_version_of_that_regions_copy(regions):
    result = _everywhere(regions, AMIS[0])
    copy = regions["copies"][AMIS[0]]
    versions = _versions(regions["sc"], regions["product"])
    assert f"al2023 {copy}" in versions and f"al2023 {AMIS[0]}" not in versions
    assert result.as_dict()["Regions"][OTHER]["ImageId"] == copy
    assert f"al2023 {AMIS[0]}" in _versions(regions["home"][0], regions["home"][1])


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_each_regions_constraint_admits_that_regions_copy_for_the_family_only(regions):
    _everywhere(regions, AMIS[0])
    _everywhere(regions, AMIS[1], family="ubuntu2404")
    rules = _rules(regions["sc"], regions["constraint"])
    copies = regions["copies"]
    assert _admits(rules, "al2023", copies[AMIS[0]]) and _admits(rules, "ubuntu2404", copies[AMIS[1]])
    assert not _admits(rules, "al2023", AMIS[0])  # the home id names no image in this region
    assert not _admits(rules, "al2023", copies[AMIS[1]])


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_region_without_a_copy_fails_the_step_by_name_after_the_others_are_offered(regions):
    image = AMIS[4]  # approved at home, never distributed
    with pytest.raises(cat.CatalogIncomplete, match=f"{OTHER}.*{image}"):
        _everywhere(regions, image)
    assert f"al2023 {image}" in _versions(regions["home"][0], regions["home"][1])
    assert not any(image in name for name in _versions(regions["sc"], regions["product"]))


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_quarantine_pins_every_regions_rule_to_the_fallbacks_copy_or_to_none(regions):
    copies = regions["copies"]
    _everywhere(regions, AMIS[1])
    cat.pin_family_in_regions(regions["regional"], "al2023", AMIS[0], regions["sc_for"], regions["ec2_for"])
    rules = _rules(regions["sc"], regions["constraint"])
    assert _admits(rules, "al2023", copies[AMIS[0]]) and not _admits(rules, "al2023", copies[AMIS[1]])
    cat.pin_family_in_regions(regions["regional"], "al2023", None, regions["sc_for"], regions["ec2_for"])
    rules = _rules(regions["sc"], regions["constraint"])
    assert not any(_admits(rules, "al2023", c) for c in copies.values())
    # a fallback never copied to the region admits nothing there, rather than the quarantined image
    _everywhere(regions, AMIS[1])
    cat.pin_family_in_regions(regions["regional"], "al2023", AMIS[4], regions["sc_for"], regions["ec2_for"])
    assert not any(_admits(_rules(regions["sc"], regions["constraint"]), "al2023", c) for c in copies.values())


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_handler_offers_in_every_region_the_settings_name(regions, monkeypatch):
    sc, product, portfolio_id, _ = regions["home"]
    monkeypatch.setattr(
        cat,
        "client",
        lambda service, region=None: regions["sc_for"](region) if service == "servicecatalog" else regions["ec2_for"](region),
    )
    out = cat.handler(
        {
            **GOOD,
            "ProductId": product,
            "PortfolioId": portfolio_id,
            "RegionalCatalogs": [{"Region": OTHER, "ProductId": regions["product"], "PortfolioId": regions["portfolio"]}],
        },
        None,
    )
    assert out["Regions"][OTHER]["ImageId"] == regions["copies"][AMIS[0]]
    assert out["Regions"][OTHER]["ConstraintUpdated"] is True


@pytest.mark.parametrize(
    "regional",
    [
        [{"Region": "moon-1", "ProductId": "prod-a", "PortfolioId": "port-a"}],
        [{"Region": OTHER, "ProductId": "prod a", "PortfolioId": "port-a"}],
        [{"Region": OTHER, "ProductId": "prod-a"}],
        "eu-central-1",
    ],
)
def test_a_malformed_regional_catalog_is_rejected_before_any_aws_call(monkeypatch, regional):
    monkeypatch.setattr(cat, "client", NoAwsCalls("client"))
    with pytest.raises(MalformedEvent, match="RegionalCatalogs"):
        cat.handler({**GOOD, "RegionalCatalogs": regional}, None)
