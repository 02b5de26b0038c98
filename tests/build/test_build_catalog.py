"""The Service Catalog side of the factory: portfolio shared to the workload OUs, product, constraints."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pytest

from components.build.service_catalog import ServiceCatalog, ServiceCatalogArgs, constraint_rules, template_key
from components.lib.providers import account_provider
from estate.naming import CATALOG_LAUNCH_ROLE
from tools.mockrun import PROJECT_DIR, StackRun, run_program

TEMPLATE = """AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  ImageId: {Type: 'AWS::EC2::Image::Id'}
Resources:
  Instance:
    Type: AWS::EC2::Instance
    Properties: {ImageId: !Ref ImageId}
"""
RULES = {
    "Rules": {
        "ApprovedImage": {
            "Assertions": [
                {
                    "Assert": {"Fn::Contains": [["ami-0123456789abcdef0"], {"Ref": "ImageId"}]},
                    "AssertDescription": "only the approved image",
                }
            ]
        }
    }
}


def catalog_alone(tmp_path, *, template: bool = True, constraint: bool = True, **extra) -> StackRun:
    template_path, constraint_path = tmp_path / "hardened-instance.yaml", tmp_path / "template-constraint.json"
    if template:
        template_path.write_text(TEMPLATE)
    if constraint:
        constraint_path.write_text(json.dumps(RULES))

    def program():
        provider = account_provider(
            "unit-account",
            account_id="333333333333",
            region="eu-west-1",
            role_arn="arn:aws:iam::333333333333:role/BakehouseDeploy",
            tags={"bakehouse:stack": "unit"},
            session_name="unit",
        )
        opts = pulumi.ResourceOptions(provider=provider)
        launch = aws.iam.Role("launch", name=CATALOG_LAUNCH_ROLE, assume_role_policy="{}", opts=opts)
        ServiceCatalog(
            "cat",
            ServiceCatalogArgs(
                region="eu-west-1",
                account_id="333333333333",
                workload_ous=("ou-ab12-wkld0001", "ou-ab12-wkld0002"),
                launch_role_names=("BakehouseAppDeployer",),
                launch_role=launch,
                templates_bucket="bakehouse-scripts-333333333333-eu-west-1",
                templates_kms_key_arn="arn:aws:kms:eu-west-1:333333333333:key/k",
                template_path=template_path,
                constraint_path=constraint_path,
                **extra,
            ),
            opts=opts,
        )

    return run_program(program)


def test_portfolio_is_shared_to_every_configured_workload_ou_with_principals(stack_run):
    run = stack_run("build")
    shares = run.of_type("aws:servicecatalog/portfolioShare:PortfolioShare")
    assert [s.inputs["principalId"] for s in shares] == ["ou-ab12-wkld0001"]
    for share in shares:
        assert share.inputs["type"] == "ORGANIZATIONAL_UNIT"
        assert share.inputs["sharePrincipals"] is True
        assert share.inputs["portfolioId"] == "build-catalog-portfolio-id"


def test_launch_principals_are_shared_by_role_name_pattern(stack_run):
    (assoc,) = stack_run("build").of_type("aws:servicecatalog/principalPortfolioAssociation:PrincipalPortfolioAssociation")
    assert assoc.inputs["principalType"] == "IAM_PATTERN"
    # no account in the ARN: the pattern matches the role of that name in each recipient account
    assert assoc.inputs["principalArn"] == "arn:aws:iam:::role/BakehouseAppDeployer"


def test_product_launches_the_uploaded_template_and_ignores_later_artifacts(tmp_path):
    run = catalog_alone(tmp_path)
    (obj,) = run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    assert obj.inputs["key"] == template_key(TEMPLATE) and obj.inputs["content"] == TEMPLATE
    assert obj.inputs["serverSideEncryption"] == "aws:kms"
    (product,) = run.of_type("aws:servicecatalog/product:Product")
    artifact = product.inputs["provisioningArtifactParameters"]
    assert artifact["type"] == "CLOUD_FORMATION_TEMPLATE"
    assert artifact["templateUrl"] == (
        f"https://bakehouse-scripts-333333333333-eu-west-1.s3.eu-west-1.amazonaws.com/{template_key(TEMPLATE)}"
    )
    (association,) = run.of_type("aws:servicecatalog/productPortfolioAssociation:ProductPortfolioAssociation")
    assert association.inputs == {"portfolioId": "cat-portfolio-id", "productId": "cat-product-id"}


def test_changed_template_uploads_under_a_new_key():
    assert template_key(TEMPLATE) != template_key(TEMPLATE + "# v2\n")
    assert template_key(TEMPLATE).startswith("catalog/hardened-instance-")


def test_launch_and_template_constraints_guard_the_product(tmp_path):
    run = catalog_alone(tmp_path)
    constraints = {c.inputs["type"]: c.inputs for c in run.of_type("aws:servicecatalog/constraint:Constraint")}
    assert set(constraints) == {"LAUNCH", "TEMPLATE"}
    assert json.loads(constraints["LAUNCH"]["parameters"]) == {"LocalRoleName": CATALOG_LAUNCH_ROLE}
    assert json.loads(constraints["TEMPLATE"]["parameters"]) == RULES
    for c in constraints.values():
        assert (c["portfolioId"], c["productId"]) == ("cat-portfolio-id", "cat-product-id")


def test_missing_catalog_files_declare_no_product_and_say_so(tmp_path):
    run = catalog_alone(tmp_path, template=False)
    assert run.of_type("aws:servicecatalog/product:Product") == []
    assert any("missing artifact" in line and "hardened-instance.yaml" in line for line in run.logs)
    other = tmp_path / "other"
    other.mkdir()
    run = catalog_alone(other, constraint=False)
    assert [c.inputs["type"] for c in run.of_type("aws:servicecatalog/constraint:Constraint")] == ["LAUNCH"]
    assert any("template-constraint.json" in line for line in run.logs)


def test_template_constraint_without_rules_is_refused(tmp_path):
    (tmp_path / "hardened-instance.yaml").write_text(TEMPLATE)
    (tmp_path / "template-constraint.json").write_text(json.dumps({"ApprovedImage": {}}))
    with pytest.raises(ValueError, match="a JSON object with a Rules key"):
        constraint_rules(tmp_path / "template-constraint.json")


def test_build_stack_offers_the_repository_template_behind_its_constraint(stack_run):
    run = stack_run("build")
    assert not [line for line in run.logs if "missing artifact" in line and "catalog" in line], run.logs
    (product,) = run.of_type("aws:servicecatalog/product:Product")
    (obj,) = [o for o in run.of_type("aws:s3/bucketObjectv2:BucketObjectv2") if o.name == "build-catalog-template"]
    assert obj.inputs["content"] == (PROJECT_DIR / "catalog" / "hardened-instance.yaml").read_text()
    assert product.inputs["provisioningArtifactParameters"]["templateUrl"].endswith("/" + obj.inputs["key"])
    constraints = {c.inputs["type"]: c.inputs for c in run.of_type("aws:servicecatalog/constraint:Constraint")}
    rules = json.loads(constraints["TEMPLATE"]["parameters"])["Rules"]
    assert rules == json.loads((PROJECT_DIR / "catalog" / "template-constraint.json").read_text())["Rules"]
    assert any("ImageId" in json.dumps(rule) for rule in rules.values())


def test_pulumi_leaves_later_artifacts_and_the_approved_id_to_the_catalog_handler(tmp_path, monkeypatch):
    seen = {}

    def recording(cls):
        original = cls.__init__

        def init(self, resource_name, *args, opts=None, **kwargs):
            seen[resource_name] = list((opts.ignore_changes if opts else None) or [])
            original(self, resource_name, *args, opts=opts, **kwargs)

        monkeypatch.setattr(cls, "__init__", init)

    recording(aws.servicecatalog.Product)
    recording(aws.servicecatalog.Constraint)
    catalog_alone(tmp_path)
    assert seen["cat-product"] == ["provisioningArtifactParameters"]
    assert seen["cat-template-constraint"] == ["parameters"]
    assert seen["cat-launch-constraint"] == []  # the launch role is Pulumi's alone


TAG_OPTIONS = {"env": ("dev", "prod"), "owner": ("platform",), "cost-centre": ("cc-4242",)}


def test_tag_options_for_env_owner_and_cost_centre_are_on_the_portfolio_and_the_product(tmp_path):
    run = catalog_alone(tmp_path, tag_options=TAG_OPTIONS)
    options = {r.name: (r.inputs["key"], r.inputs["value"]) for r in run.of_type("aws:servicecatalog/tagOption:TagOption")}
    assert sorted(options.values()) == sorted((k, v) for k, vs in TAG_OPTIONS.items() for v in vs)
    associated = {
        (a.inputs["tagOptionId"], a.inputs["resourceId"])
        for a in run.of_type("aws:servicecatalog/tagOptionResourceAssociation:TagOptionResourceAssociation")
    }
    assert associated == {(f"{name}-id", target) for name in options for target in ("cat-portfolio-id", "cat-product-id")}
    # Shared with the portfolio, so every recipient account's launches carry them.
    assert all(s.inputs["shareTagOptions"] is True for s in run.of_type("aws:servicecatalog/portfolioShare:PortfolioShare"))


def test_without_tag_options_none_are_declared(tmp_path):
    run = catalog_alone(tmp_path)
    assert run.of_type("aws:servicecatalog/tagOption:TagOption") == []


def catalog_with_regions(tmp_path, regions: tuple[str, ...]) -> StackRun:
    (tmp_path / "hardened-instance.yaml").write_text(TEMPLATE)
    (tmp_path / "template-constraint.json").write_text(json.dumps(RULES))

    def program():
        def provider(region):
            return account_provider(
                f"unit-{region}",
                account_id="333333333333",
                region=region,
                role_arn="arn:aws:iam::333333333333:role/BakehouseDeploy",
                tags={"bakehouse:stack": "unit"},
                session_name="unit",
            )

        opts = pulumi.ResourceOptions(provider=provider("eu-west-1"))
        launch = aws.iam.Role("launch", name=CATALOG_LAUNCH_ROLE, assume_role_policy="{}", opts=opts)
        ServiceCatalog(
            "cat",
            ServiceCatalogArgs(
                region="eu-west-1",
                account_id="333333333333",
                workload_ous=("ou-ab12-wkld0001",),
                launch_role_names=("BakehouseAppDeployer",),
                launch_role=launch,
                templates_bucket="bakehouse-scripts-333333333333-eu-west-1",
                templates_kms_key_arn="arn:aws:kms:eu-west-1:333333333333:key/k",
                template_path=tmp_path / "hardened-instance.yaml",
                constraint_path=tmp_path / "template-constraint.json",
                tag_options={"env": ("dev",)},
                regional_providers={r: provider(r) for r in regions},
            ),
            opts=opts,
        )

    return run_program(program)


def test_a_portfolio_with_the_product_its_constraints_shares_and_tag_options_in_each_configured_region(tmp_path):
    run = catalog_with_regions(tmp_path, ("eu-central-1",))
    portfolios = sorted(p.name for p in run.of_type("aws:servicecatalog/portfolio:Portfolio"))
    assert portfolios == ["cat-eu-central-1-portfolio", "cat-portfolio"]  # the home names are unchanged
    assert sorted(p.name for p in run.of_type("aws:servicecatalog/product:Product")) == [
        "cat-eu-central-1-product",
        "cat-product",
    ]
    constraints = {c.name: c.inputs["type"] for c in run.of_type("aws:servicecatalog/constraint:Constraint")}
    assert constraints["cat-eu-central-1-template-constraint"] == "TEMPLATE"
    assert constraints["cat-eu-central-1-launch-constraint"] == "LAUNCH"
    assert {s.inputs["portfolioId"] for s in run.of_type("aws:servicecatalog/portfolioShare:PortfolioShare")} == {
        "cat-portfolio-id",
        "cat-eu-central-1-portfolio-id",
    }
    assert len(run.of_type("aws:servicecatalog/tagOption:TagOption")) == 2  # TagOptions are regional
    # One template object (home region) for every region's product.
    assert len(run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")) == 1
    (policy,) = run.of_type("aws:iam/rolePolicy:RolePolicy")
    assert "arn:aws:cloudformation:eu-central-1:333333333333:stack/SC-333333333333-*" in policy.inputs["policy"]


def test_no_regional_portfolio_unless_configured(tmp_path):
    run = catalog_with_regions(tmp_path, ())
    assert [p.name for p in run.of_type("aws:servicecatalog/portfolio:Portfolio")] == ["cat-portfolio"]


# --- the regional catalogs reach the documents through the settings --------------------------------
def _regional_build():
    from tests.build._build_config_support import shipped_factory
    from tools.mockrun import run_stack

    return run_stack("build", overrides={"bakehouse:factory": {**shipped_factory(), "catalogRegionalPortfolios": True}})


@pytest.fixture(scope="module")
def regional_build():
    return _regional_build()


def _settings(run) -> dict:
    [param] = [p for p in run.of_type("aws:ssm/parameter:Parameter") if p.inputs["name"] == "/bakehouse/factory/settings"]
    value = param.inputs["value"]
    return json.loads(value["value"] if isinstance(value, dict) else value)


def test_the_settings_name_each_regions_product_and_portfolio_for_the_catalog_step(regional_build):
    regional = _settings(regional_build)["pipelineParameters"]["CatalogRegions"]
    assert regional == [
        {
            "Region": region,
            "ProductId": f"build-catalog-{region}-product-id",
            "PortfolioId": f"build-catalog-{region}-portfolio-id",
        }
        for region in ("eu-central-1", "us-east-1")
    ]
    for entry in regional:  # each declared through a provider of its region
        for kind in ("product:Product", "portfolio:Portfolio"):
            [declared] = [
                r
                for r in regional_build.of_type(f"aws:servicecatalog/{kind}")
                if f"{r.name}-id" in (entry["ProductId"], entry["PortfolioId"])
            ]
            assert declared.provider_name == f"build-catalog-{entry['Region']}"


def test_the_automation_role_may_version_every_regions_product_and_no_other(regional_build):
    [policy] = [p for p in regional_build.of_type("aws:iam/rolePolicy:RolePolicy") if p.name == "build-factory-automation-policy"]
    [versions] = [s for s in json.loads(policy.inputs["policy"])["Statement"] if s.get("Sid") == "CatalogVersions"]
    resources = versions["Resource"] if isinstance(versions["Resource"], list) else [versions["Resource"]]
    assert sorted(r.rsplit("/", 1)[-1] for r in resources) == [
        "build-catalog-eu-central-1-product",
        "build-catalog-product",
        "build-catalog-us-east-1-product",
    ]
    assert {r.split(":")[3] for r in resources} == {"eu-west-1", "eu-central-1", "us-east-1"}


def test_without_regional_portfolios_the_settings_name_no_regional_catalog(stack_run):
    assert _settings(stack_run("build"))["pipelineParameters"].get("CatalogRegions", []) == []
