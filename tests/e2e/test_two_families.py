"""Issue 15's "Done when": release -> build -> validate -> approve by a named approver -> publish ->
distribute -> catalog, for al2023 and ubuntu2404 in one world, each started with exactly the
parameters tools/release.py hands StartAutomationExecution (from the settings the build stack
writes), approved by a human principal through aws:approve; afterwards the portfolio's template
constraint admits each family's approved image, and approving ubuntu2404 did not lock out al2023.
With a regional portfolio (bakehouse:factory.catalogRegionalPortfolios) in REGIONAL, that region's
product offers and its constraint admits each family's copy there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from handlers.catalog import APPROVED_RULE, family_rule
from handlers.common import tags_to_dict
from tests.e2e import _seams
from tests.e2e._factory import ACCOUNTS, APPROVER, ROLE_ARN, SETTINGS_PARAMETER, RecordingApprover, make_runner, region_keys
from tests.e2e._world import AVML_BINARY, AVML_PINS, BundleShell, World, seed, set_public_parameter
from tests.e2e.runner import Execution, moto_server
from tools import release as release_tool

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
FAMILIES = ("al2023", "ubuntu2404")
CONSTRAINT_FILE = Path(__file__).resolve().parents[2] / "catalog" / "template-constraint.json"
REGIONAL = "eu-central-1"  # one of the distribution regions, with its own portfolio
TEMPLATE_URL = "https://example-bucket.s3.amazonaws.com/catalog/hardened-instance.yaml"


class StartRecorder:
    """The release tool's SSM client: real (moto) for the settings, recording StartAutomationExecution,
    which the runner then carries out."""

    def __init__(self, inner: Any):
        self._inner, self.started = inner, []
        self.exceptions = inner.exceptions

    def get_parameter(self, **params: Any) -> Any:
        return self._inner.get_parameter(**params)

    def start_automation_execution(self, **params: Any) -> dict[str, str]:
        self.started.append(params)
        return {"AutomationExecutionId": f"release-{len(self.started)}"}


def as_runner_values(values: dict[str, list[str]], declared: dict[str, Any]) -> dict[str, Any]:
    """StartAutomationExecution's lists of strings, read back the way Automation reads them."""
    out: dict[str, Any] = {}
    for name, raw in values.items():
        kind = declared[name].get("type", "String")
        if kind == "StringList":
            out[name] = list(raw)
        elif kind == "MapList":
            out[name] = [json.loads(v) for v in raw]
        else:
            [out[name]] = raw
    return out


@dataclass
class TwoFamilies:
    world: World
    seams: _seams.Seams
    approver: RecordingApprover
    product_id: str
    portfolio_id: str
    constraint_id: str
    regional: tuple[str, str, str]  # REGIONAL's product, portfolio, constraint
    started: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, Execution] = field(default_factory=dict)
    rules_after: dict[str, dict] = field(default_factory=dict)


def _seed_catalog(sc: Any, product_id: str | None = None) -> tuple[str, str, str]:
    """A portfolio with the product and the committed template constraint, as the build stack declares
    them (the product created here unless given)."""
    if product_id is None:
        product_id = sc.create_product(
            Name="bakehouse",
            Owner="platform",
            ProductType="CLOUD_FORMATION_TEMPLATE",
            IdempotencyToken="e2e-product",
            ProvisioningArtifactParameters={
                "Name": "initial",
                "Type": "CLOUD_FORMATION_TEMPLATE",
                "Info": {"LoadTemplateFromURL": TEMPLATE_URL},
            },
        )["ProductViewDetail"]["ProductViewSummary"]["ProductId"]
    portfolio = sc.create_portfolio(DisplayName="bakehouse", ProviderName="platform", IdempotencyToken="e2e-portfolio")[
        "PortfolioDetail"
    ]["Id"]
    sc.associate_product_with_portfolio(ProductId=product_id, PortfolioId=portfolio)
    constraint = sc.create_constraint(
        PortfolioId=portfolio,
        ProductId=product_id,
        Type="TEMPLATE",
        Parameters=CONSTRAINT_FILE.read_text(),
        IdempotencyToken="e2e-template",
    )["ConstraintDetail"]["ConstraintId"]
    return product_id, portfolio, constraint


def _settings(
    world: World, keys: dict[str, str], product_id: str, portfolio_id: str, regional: tuple[str, str, str]
) -> dict[str, Any]:
    """What components/build/image_factory.py writes: families, a uat approval a human must give, and the
    Pipeline's parameters."""
    return {
        "families": {f: f for f in FAMILIES},
        "engines": {f: "pipeline" for f in FAMILIES},
        "scriptsKmsKeyId": world.kms_key_arn,
        "memoryCapture": dict(AVML_PINS),
        "approval": {"environment": "uat", "autoApprove": False, "approvers": [APPROVER], "topicArn": world.topic_arn},
        "pipelineParameters": {
            "AutomationAssumeRole": ROLE_ARN,
            "SubnetId": world.subnet_id,
            "SecurityGroupIds": [world.security_group_id],
            "InstanceProfileName": world.instance_profile,
            "FactoryKmsKeyId": world.kms_key_arn,
            "ScriptsBucket": world.scripts_bucket,
            "FindingsBucket": world.findings_bucket,
            "SeverityThreshold": "HIGH",
            "Regions": keys,
            "Accounts": [dict(a) for a in ACCOUNTS],
            "ShareWith": [_seams.WORKLOAD_OU],
            "MaxCatalogVersions": 3,
            "NotificationTopicArn": world.topic_arn,
            "CatalogProductId": product_id,
            "CatalogPortfolioId": portfolio_id,
            "PollSeconds": 0,
            "CatalogRegions": [{"Region": REGIONAL, "ProductId": regional[0], "PortfolioId": regional[1]}],
        },
    }


def _seed_ubuntu_base(world: World) -> None:
    base = world.client("ec2").register_image(
        Name="ubuntu-noble-24.04-amd64-server-20260101",
        RootDeviceName="/dev/sda1",
        Architecture="x86_64",
        BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}],
    )["ImageId"]
    set_public_parameter(release_tool.BASE_IMAGE_PARAMETERS["ubuntu2404"], base, world.region)


def _rules(seams: _seams.Seams, constraint_id: str, region: str | None = None) -> dict[str, Any]:
    sc = seams.catalog_in(region)
    return json.loads(sc.describe_constraint(Id=constraint_id)["ConstraintParameters"])["Rules"]


@pytest.fixture(scope="module")
def two() -> Iterator[TwoFamilies]:
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        world = seed(url)
        _seed_ubuntu_base(world)
        keys = region_keys(world)
        seams = _seams.install(mp, world)
        product_id, _ = seams.seed_catalog_product("al2023")
        _, portfolio, constraint = _seed_catalog(seams.catalog, product_id)
        regional = _seed_catalog(seams.catalog_in(REGIONAL))
        world.client("ssm").put_parameter(
            Name=SETTINGS_PARAMETER,
            Type="String",
            Overwrite=True,
            Value=json.dumps(_settings(world, keys, product_id, portfolio, regional)),
        )
        approver = RecordingApprover()
        runner = make_runner(world, BundleShell(world), approver)
        out = TwoFamilies(world, seams, approver, product_id, portfolio, constraint, regional)
        declared = release_tool.declared_parameters()
        for family in FAMILIES:
            ssm = StartRecorder(world.client("ssm"))
            release_tool.release(family, world.commit, s3=world.client("s3"), ssm=ssm, download=lambda _url: AVML_BINARY)
            [started] = ssm.started
            out.started[family] = started
            out.runs[family] = runner.run(started["DocumentName"], as_runner_values(started["Parameters"], declared))
            out.rules_after[family] = _rules(seams, constraint)
        yield out


def _image(two: TwoFamilies, family: str) -> str:
    return two.runs[family].outputs["DescribeBuiltImage.ImageId"]


def _admitted(rules: dict[str, Any], rule: str) -> list[str]:
    return rules[rule]["Assertions"][0]["Assert"]["Fn::Contains"][0]


def test_each_family_was_started_by_the_release_tool_with_the_stack_settings(two):
    for family in FAMILIES:
        started = two.started[family]
        assert started["DocumentName"] == "Bakehouse-Pipeline"
        assert started["Parameters"]["Family"] == [family]
        assert started["Parameters"]["BaseImageParameter"] == [release_tool.BASE_IMAGE_PARAMETERS[family]]
        assert started["Parameters"]["CatalogPortfolioId"] == [two.portfolio_id]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_runs_release_to_catalog_to_success(two, family):
    run = two.runs[family]
    assert run.status == "Success", run.failure
    assert [c.document_name for c in run.children] == [
        "Bakehouse-BuildImage",
        "Bakehouse-ValidateImage",
        "Bakehouse-ApproveImage",
        "Bakehouse-DistributeImage",
    ]
    assert run.step("AddCatalogVersion").status == "Success"
    assert run.step("NotifySuccess").status == "Success"


@pytest.mark.parametrize("family", FAMILIES)
def test_each_image_was_approved_by_the_named_human_principal(two, family):
    approve = two.runs[family].children[2]
    assert "RequestApproval" in approve.step_names and "RecordAutoApproval" not in approve.step_names
    tags = tags_to_dict(two.world.client("ec2").describe_images(ImageIds=[_image(two, family)])["Images"][0]["Tags"])
    # aws:approve's ApproverDecisions principal, never an execution id or "auto-approval"
    assert tags["bakehouse:approver"] == APPROVER
    assert tags["bakehouse:approved"] == "true"
    assert [r.approvers for r in two.approver.requests] == [(APPROVER,), (APPROVER,)]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_is_published_distributed_and_offered_as_its_own_version(two, family):
    ssm, image = two.world.client("ssm"), _image(two, family)
    assert ssm.get_parameter(Name=f"/bakehouse/images/{family}/latest")["Parameter"]["Value"] == image
    copies = two.runs[family].children[3].outputs["DistributeToRegionsAndAccounts.RegionImageIds"]
    for region, copy_id in copies.items():
        for account in ACCOUNTS:
            name = f"/bakehouse/{account['Env']}/ami/{family}"
            assert (
                two.seams.account_client(account["AccountId"], "ssm", region).get_parameter(Name=name)["Parameter"]["Value"]
                == copy_id
            )
    artifact = two.runs[family].outputs["AddCatalogVersion.ArtifactId"]
    [version] = [a for a in two.seams.catalog.state.artifacts[two.product_id] if a["Id"] == artifact]
    assert version["Name"] == f"{family} {image}"


def test_the_constraint_admits_both_families_approved_images(two):
    rules = _rules(two.seams, two.constraint_id)
    al2023, ubuntu = _image(two, "al2023"), _image(two, "ubuntu2404")
    assert _admitted(rules, family_rule("al2023")) == [al2023]
    assert _admitted(rules, family_rule("ubuntu2404")) == [ubuntu]
    assert sorted(_admitted(rules, APPROVED_RULE)) == sorted([al2023, ubuntu])
    # each family rule binds only launches that claim that family
    assert rules[family_rule("ubuntu2404")]["RuleCondition"] == {"Fn::Equals": [{"Ref": "Family"}, "ubuntu2404"]}


def test_approving_the_second_family_did_not_lock_out_the_first(two):
    before, after = two.rules_after["al2023"], two.rules_after["ubuntu2404"]
    assert _admitted(after, family_rule("al2023")) == _admitted(before, family_rule("al2023")) == [_image(two, "al2023")]
    assert _image(two, "al2023") in _admitted(after, APPROVED_RULE)
    committed = json.loads(CONSTRAINT_FILE.read_text())["Rules"]
    assert after["EncryptedWithAccountKey"] == committed["EncryptedWithAccountKey"]


def _copy(two: TwoFamilies, family: str, region: str) -> str:
    return two.runs[family].children[3].outputs["DistributeToRegionsAndAccounts.RegionImageIds"][region]


def test_the_regional_product_offers_each_familys_copy_in_its_region(two):
    product, _, _ = two.regional
    names = {a["Name"] for a in two.seams.catalog_in(REGIONAL).state.artifacts[product]}
    for family in FAMILIES:
        copy = _copy(two, family, REGIONAL)
        assert copy != _image(two, family)
        assert f"{family} {copy}" in names
        regions = two.runs[family].step("AddCatalogVersion").outputs
        assert regions["ArtifactId"]  # the home version, as before


def test_the_regional_constraint_admits_both_families_copies_there(two):
    _, _, constraint = two.regional
    rules = _rules(two.seams, constraint, REGIONAL)
    for family in FAMILIES:
        assert _admitted(rules, family_rule(family)) == [_copy(two, family, REGIONAL)]
    assert sorted(_admitted(rules, APPROVED_RULE)) == sorted(_copy(two, f, REGIONAL) for f in FAMILIES)
