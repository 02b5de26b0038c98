"""A quarantine repins the family's rule in every regional catalog the factory settings name
(bakehouse:factory.catalogRegionalPortfolios), each to that region's copy of the last good image."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from handlers import catalog as cat
from handlers import rescan_feedback as feedback
from tests.fakes import FakeServiceCatalog
from tests.fakes.scenes import constrained_portfolio, factory_product

HOME, OTHER = "eu-west-1", "eu-central-1"
TEMPLATE = "https://bakehouse-templates.s3.eu-west-1.amazonaws.com/catalog/hardened-instance.yaml"


def _image(ec2, name: str, **tags: str) -> str:
    image = ec2.register_image(
        Name=name, RootDeviceName="/dev/xvda", BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}]
    )["ImageId"]
    if tags:
        ec2.create_tags(Resources=[image], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return image


def _admitted(sc, constraint_id: str) -> list[str]:
    rules = json.loads(sc.describe_constraint(Id=constraint_id)["ConstraintParameters"])["Rules"]
    return rules[cat.family_rule("al2023")]["Assertions"][0]["Assert"]["Fn::Contains"][0]


@pytest.fixture
def factory(monkeypatch):
    with mock_aws():
        home_ec2, there_ec2 = boto3.client("ec2", region_name=HOME), boto3.client("ec2", region_name=OTHER)
        good = _image(home_ec2, "al2023-good", **{"bakehouse:family": "al2023"})
        bad = _image(home_ec2, "al2023-bad", **{"bakehouse:family": "al2023"})
        copies = {src: _image(there_ec2, f"copy-{src}", **{"bakehouse:source-ami": src}) for src in (good, bad)}
        sc = FakeServiceCatalog(boto3.client("servicecatalog", region_name=OTHER))
        product = factory_product(sc, TEMPLATE)
        portfolio, constraint = constrained_portfolio(sc, product)
        cat.approve_in_constraint(sc, portfolio, product, [copies[bad]], "al2023")  # the catalog step's pin
        ssm = boto3.client("ssm", region_name=HOME)
        ssm.put_parameter(
            Name=feedback.SETTINGS_PARAMETER,
            Type="String",
            Value=json.dumps(
                {"pipelineParameters": {"CatalogRegions": [{"Region": OTHER, "ProductId": product, "PortfolioId": portfolio}]}}
            ),
        )
        for image in (good, bad):
            ssm.put_parameter(Name="/bakehouse/images/al2023/history", Type="String", Value=image, Overwrite=True)
        ssm.put_parameter(Name="/bakehouse/images/al2023/latest", Type="String", Value=bad)
        # The deployed quarantine builds its regional clients through handlers.catalog.client.
        monkeypatch.setattr(
            cat,
            "client",
            lambda service, region=None: sc if service == "servicecatalog" else boto3.client(service, region_name=region),
        )
        yield {"ec2": home_ec2, "ssm": ssm, "sc": sc, "constraint": constraint, "good": good, "bad": bad, "copies": copies}


def _quarantine(f, repinned: list):
    topic = boto3.client("sns", region_name=HOME).create_topic(Name="security")["TopicArn"]
    return feedback.quarantine(
        f["ec2"],
        f["ssm"],
        boto3.client("s3", region_name=HOME),
        boto3.client("sns", region_name=HOME),
        None,
        image_id=f["bad"],
        tags={"bakehouse:family": "al2023", "bakehouse:rebuild-execution": "already-started"},
        cves=["CVE-2026-0001"],
        topic_arn=topic,
        threshold="HIGH",
        pipeline_document="Bakehouse-Pipeline",
        pipeline_role_arn="arn:aws:iam::123456789012:role/x",
        repin_catalog=lambda family, fallback: repinned.append((family, fallback)),
    )


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_quarantine_repins_every_regional_catalog_to_that_regions_copy_of_the_last_good_image(factory):
    repinned: list = []
    outcome = _quarantine(factory, repinned)
    assert repinned == [("al2023", factory["good"])]  # the home catalog, as before
    assert outcome.fallback == factory["good"]
    assert _admitted(factory["sc"], factory["constraint"]) == [factory["copies"][factory["good"]]]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_quarantine_with_no_good_image_left_blocks_launches_in_every_region(factory):
    factory["ec2"].create_tags(Resources=[factory["good"]], Tags=[{"Key": "bakehouse:vulnerable", "Value": "true"}])
    _quarantine(factory, [])
    assert _admitted(factory["sc"], factory["constraint"]) == [cat.NO_IMAGE]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_regional_catalog_that_cannot_be_pinned_fails_the_quarantine_by_region(factory):
    settings = {
        "pipelineParameters": {"CatalogRegions": [{"Region": OTHER, "ProductId": "prod-gone", "PortfolioId": "port-gone"}]}
    }
    factory["ssm"].put_parameter(Name=feedback.SETTINGS_PARAMETER, Type="String", Overwrite=True, Value=json.dumps(settings))
    with pytest.raises(cat.CatalogIncomplete, match=f"{OTHER}.*port-gone"):
        _quarantine(factory, [])


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_without_regional_catalogs_in_the_settings_only_the_home_catalog_is_repinned(factory):
    factory["ssm"].put_parameter(
        Name=feedback.SETTINGS_PARAMETER, Type="String", Overwrite=True, Value=json.dumps({"pipelineParameters": {}})
    )
    repinned: list = []
    _quarantine(factory, repinned)
    assert repinned == [("al2023", factory["good"])]
    assert _admitted(factory["sc"], factory["constraint"]) == [factory["copies"][factory["bad"]]]
