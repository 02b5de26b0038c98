"""The factory end to end: Bakehouse-Pipeline (build -> validate -> approve -> publish -> distribute
-> catalog) run by tests/e2e/runner.py against a moto server, with the real handlers, then replayed,
then a build whose validation fails."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from estate.naming import APPROVED_IMAGE_TAG
from handlers.common import tags_to_dict
from tests.e2e import _seams
from tests.e2e._factory import ACCOUNTS, DISTRIBUTION_REGIONS, RecordingApprover, make_runner, pipeline_parameters, region_keys
from tests.e2e._world import BundleShell, World, seed
from tests.e2e.runner import Execution, Runner, moto_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
FAMILY = "al2023-base"
CONSTRAINT_FILE = Path(__file__).resolve().parents[2] / "catalog" / "template-constraint.json"


@dataclass
class Run:
    world: World
    runner: Runner
    shell: BundleShell
    approver: RecordingApprover
    seams: _seams.Seams
    keys: dict[str, str]
    product_id: str
    old_artifact: str
    first: Execution
    before_replay: dict
    replay: Execution
    after_replay: dict
    portfolio_id: str = ""
    constraint_id: str = ""


def seed_portfolio(seams: _seams.Seams, product_id: str) -> tuple[str, str]:
    """The portfolio as the build stack declares it: the product, and the committed template constraint."""
    catalog = seams.catalog
    portfolio = catalog.create_portfolio(DisplayName="bakehouse", ProviderName="platform", IdempotencyToken="e2e-portfolio")[
        "PortfolioDetail"
    ]["Id"]
    catalog.associate_product_with_portfolio(ProductId=product_id, PortfolioId=portfolio)
    constraint = catalog.create_constraint(
        PortfolioId=portfolio,
        ProductId=product_id,
        Type="TEMPLATE",
        Parameters=CONSTRAINT_FILE.read_text(),
        IdempotencyToken="e2e-template",
    )
    return portfolio, constraint["ConstraintDetail"]["ConstraintId"]


def snapshot(world: World, seams: _seams.Seams, product_id: str) -> dict:
    """Everything a replay must leave alone: image ids, parameter versions, catalog artifacts."""
    state: dict = {"images": {}, "params": {}, "artifacts": None}
    for region in (world.region, *DISTRIBUTION_REGIONS):
        images = world.client("ec2", region).describe_images(Owners=["self"])["Images"]
        state["images"][region] = sorted(i["ImageId"] for i in images)
    ssm = world.client("ssm")
    for name in (f"/bakehouse/images/{FAMILY}/latest", f"/bakehouse/images/{FAMILY}/history"):
        state["params"][name] = ssm.get_parameter(Name=name)["Parameter"]["Version"]
    for account in ACCOUNTS:
        for region in (world.region, *DISTRIBUTION_REGIONS):
            name = f"/bakehouse/{account['Env']}/ami/{FAMILY}"
            state["params"][(account["AccountId"], region)] = seams.account_client(
                account["AccountId"], "ssm", region
            ).get_parameter(Name=name)["Parameter"]["Version"]
    state["artifacts"] = sorted(
        (a["Id"], a.get("Guidance", "DEFAULT"), a.get("Active")) for a in seams.catalog.state.artifacts.get(product_id, [])
    )
    return state


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        world = seed(url)
        keys = region_keys(world)
        seams = _seams.install(mp, world)
        product_id, old_artifact = seams.seed_catalog_product(FAMILY)
        portfolio_id, constraint_id = seed_portfolio(seams, product_id)
        shell, approver = BundleShell(world), RecordingApprover()
        runner = make_runner(world, shell, approver)
        params = pipeline_parameters(world, keys, product_id, family=FAMILY, CatalogPortfolioId=portfolio_id)
        first = runner.run("Bakehouse-Pipeline", params)
        before = snapshot(world, seams, product_id) if first.status == "Success" else {}
        replay = runner.run("Bakehouse-Pipeline", params)
        after = snapshot(world, seams, product_id) if replay.status == "Success" else {}
        yield Run(
            world,
            runner,
            shell,
            approver,
            seams,
            keys,
            product_id,
            old_artifact,
            first,
            before,
            replay,
            after,
            portfolio_id,
            constraint_id,
        )


def image_id(run: Run) -> str:
    return run.first.outputs["DescribeBuiltImage.ImageId"]


def test_pipeline_runs_every_child_to_success(run):
    assert run.first.status == "Success", run.first.failure
    children = [c.document_name for c in run.first.children]
    assert children == ["Bakehouse-BuildImage", "Bakehouse-ValidateImage", "Bakehouse-ApproveImage", "Bakehouse-DistributeImage"]
    assert all(c.status == "Success" for c in run.first.children)


def test_image_exists_with_provenance_tags(run):
    build = run.first.children[0]
    image = run.world.client("ec2").describe_images(ImageIds=[image_id(run)])["Images"][0]
    tags = tags_to_dict(image["Tags"])
    assert image["State"] == "available"
    assert tags["bakehouse:source-ami"] == run.world.base_ami
    assert tags["bakehouse:commit"] == run.world.commit
    assert tags["bakehouse:scripts-version"] == run.world.scripts_version
    assert tags["bakehouse:build-execution"] == build.execution_id
    assert tags["bakehouse:family"] == FAMILY
    # tagged in the request that registered it (CreateImage TagSpecifications), never afterwards
    [sent] = [
        {t["Key"]: t["Value"] for t in spec["Tags"]}
        for spec in build.step("CreateImage").inputs["TagSpecifications"]
        if spec["ResourceType"] == "image"
    ]
    assert tags["bakehouse:build-date"] == sent["bakehouse:build-date"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", tags["bakehouse:build-date"])
    assert tags["bakehouse:vulnerable"] == "false"
    assert tags["bakehouse:approved"] == "true"


def test_build_instance_was_hardened_at_launch_and_is_terminated(run):
    build = run.first.children[0]
    launch = build.step("LaunchBuildInstance")
    instance_id = launch.outputs["InstanceId"]
    instance = run.world.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "terminated"
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["SubnetId"] == run.world.subnet_id
    # EC2 drops the profile association on termination; the request the runner sent shows it.
    [sent] = [
        c.params
        for c in run.runner.api_log.calls
        if c.api == "RunInstances" and c.params["TagSpecifications"][0]["Tags"][1]["Value"] == "build"
    ][:1]
    assert sent["IamInstanceProfile"] == {"Name": run.world.instance_profile}
    [mapping] = launch.inputs["BlockDeviceMappings"]
    assert mapping["Ebs"] == {**mapping["Ebs"], "Encrypted": True, "KmsKeyId": run.world.kms_key_arn}
    assert build.step_names.index("StopBuildInstance") < build.step_names.index("CreateImage")


def test_provisioning_and_validation_ran_the_pinned_bundle(run):
    build, validate = run.first.children[0], run.first.children[1]
    by_step = {r.step: r for r in run.shell.runs[:2]}
    assert by_step["RunProvisioningScripts"].instance_ids == (build.step("LaunchBuildInstance").outputs["InstanceId"],)
    assert by_step["RunProvisioningScripts"].scripts[0] == "scripts/00-os-update.sh"
    assert list(by_step["RunProvisioningScripts"].scripts) == sorted(by_step["RunProvisioningScripts"].scripts)
    assert by_step["RunValidationScripts"].instance_ids == (validate.step("LaunchTestInstance").outputs["InstanceId"],)


def test_no_factory_instance_is_left_running(run):
    reservations = run.world.client("ec2").describe_instances(
        Filters=[{"Name": "tag:bakehouse:purpose", "Values": ["build", "validation"]}]
    )["Reservations"]
    states = {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}
    assert states and set(states.values()) == {"terminated"}


def test_findings_summary_is_written_and_below_threshold(run):
    validate = run.first.children[1]
    assert validate.outputs["SummarizeInspectorFindings.Verdict"] == "PASS"
    key = validate.outputs["SummarizeInspectorFindings.SummaryKey"]
    assert run.world.client("s3").head_object(Bucket=run.world.findings_bucket, Key=key)["ContentLength"] > 0


def test_latest_and_history_parameters_point_at_the_image(run):
    ssm = run.world.client("ssm")
    assert ssm.get_parameter(Name=f"/bakehouse/images/{FAMILY}/latest")["Parameter"]["Value"] == image_id(run)
    history = ssm.get_parameter_history(Name=f"/bakehouse/images/{FAMILY}/history")["Parameters"]
    assert [p["Value"] for p in history] == [image_id(run)]


def test_auto_approval_in_dev_asked_nobody(run):
    approve = run.first.children[2]
    # the settings (dev, autoApprove) chose the path; the record says no human was asked
    assert approve.step_names == [
        "ReadApprovalSettings",
        "ChooseApprovalPath",
        "RecordAutoApproval",
        "ReadRecordedApprover",
        "PublishImage",
    ]
    assert run.approver.requests == []


def test_copies_exist_in_every_region_encrypted_with_that_regions_key(run):
    copies = run.first.children[3].outputs["DistributeToRegionsAndAccounts.RegionImageIds"]
    assert set(copies) >= set(DISTRIBUTION_REGIONS)
    for region in DISTRIBUTION_REGIONS:
        ec2 = run.world.client("ec2", region)
        image = ec2.describe_images(ImageIds=[copies[region]])["Images"][0]
        assert image["State"] == "available"
        assert tags_to_dict(image["Tags"])["bakehouse:source-ami"] == image_id(run)
        copy_calls = [c.params for c in run.seams.ec2_calls(region) if c.operation == "copy_image"]
        assert copy_calls and all(c["Encrypted"] and c["KmsKeyId"] == run.keys[region] for c in copy_calls)


def test_every_account_can_launch_every_copy_and_reads_its_parameter(run):
    copies = run.first.children[3].outputs["DistributeToRegionsAndAccounts.RegionImageIds"]
    assert copies[run.world.region] == image_id(run)
    for region in (run.world.region, *DISTRIBUTION_REGIONS):
        ec2 = run.world.client("ec2", region)
        # Shared once with the workload OU the accounts sit in, not account by account; snapshots
        # need no share to launch (EC2 user guide, "Share an AMI with organizations or OUs").
        assert ec2.describe_image_attribute(ImageId=copies[region], Attribute="launchPermission")["LaunchPermissions"] == [
            {"OrganizationalUnitArn": _seams.WORKLOAD_OU}
        ]
        for account in ACCOUNTS:
            ssm = run.seams.account_client(account["AccountId"], "ssm", region)
            value = ssm.get_parameter(Name=f"/bakehouse/{account['Env']}/ami/{FAMILY}")["Parameter"]["Value"]
            assert value == copies[region]


def test_every_account_sees_every_copy_tagged_approved_for_its_config_rule(run):
    # Written in each workload account (tags on a shared AMI are per account), never in the factory's.
    key, value = APPROVED_IMAGE_TAG
    copies = run.first.children[3].outputs["DistributeToRegionsAndAccounts.RegionImageIds"]
    for region, copy_id in copies.items():
        for account in ACCOUNTS:
            assert run.seams.shared_image_tags(account["AccountId"], region, copy_id).get(key) == value
        own = run.world.client("ec2", region).describe_tags(Filters=[{"Name": "resource-id", "Values": [copy_id]}])["Tags"]
        assert key not in {t["Key"] for t in own}


def test_catalog_version_added_and_the_older_one_deprecated(run):
    artifact = run.first.outputs["AddCatalogVersion.ArtifactId"]
    details = {a["Id"]: a for a in run.seams.catalog.state.artifacts[run.product_id]}
    assert details[artifact].get("Guidance", "DEFAULT") == "DEFAULT"
    assert details[run.old_artifact]["Guidance"] == "DEPRECATED"
    assert image_id(run) in details[artifact]["Name"]
    assert run.seams.catalog.calls_to("create_provisioning_artifact")[0]["ProductId"] == run.product_id


def test_template_constraint_now_admits_only_the_approved_image(run):
    detail = run.seams.catalog.describe_constraint(Id=run.constraint_id)
    rules = json.loads(detail["ConstraintParameters"])["Rules"]
    assert rules["ApprovedImageOnly"]["Assertions"][0]["Assert"]["Fn::Contains"][0] == [image_id(run)]
    # the rest of the committed constraint is untouched
    committed = json.loads(CONSTRAINT_FILE.read_text())["Rules"]
    assert rules["EncryptedWithAccountKey"] == committed["EncryptedWithAccountKey"]


def test_success_is_announced(run):
    notify = run.first.step("NotifySuccess")
    assert notify.status == "Success" and image_id(run) in notify.inputs["Message"]


def test_replay_changes_nothing(run):
    assert run.replay.status == "Success", run.replay.failure
    assert run.replay.outputs["DescribeBuiltImage.ImageId"] == image_id(run)
    assert run.after_replay == run.before_replay
    build = run.replay.children[0]
    assert build.step_names == ["ResolveBaseImage", "DescribeBaseImage", "CheckForExistingImage", "DescribeBuiltImage"]
    assert len(run.seams.catalog.calls_to("create_provisioning_artifact")) == 1


@pytest.fixture(scope="module")
def failed(run) -> Execution:
    """A new commit whose image fails validation, in the same world as the published one."""
    world = run.world
    world.commit, original = "ffff0000aaaa", world.commit
    released = world.client("s3").get_object(Bucket=world.scripts_bucket, Key=world.scripts_key, VersionId=world.scripts_version)
    # The new commit's release carries the same memory-capture pins (tools/release.py), only the commit differs.
    version = world.client("s3").put_object(
        Bucket=world.scripts_bucket,
        Key=world.scripts_key,
        Body=released["Body"].read(),
        Metadata={**released["Metadata"], "commit": world.commit},
    )["VersionId"]
    run.shell.fail_folders.add("validation")
    try:
        params = pipeline_parameters(
            world, run.keys, run.product_id, family=FAMILY, ScriptsCommit=world.commit, ScriptsVersionId=version
        )
        return run.runner.run("Bakehouse-Pipeline", params)
    finally:
        run.shell.fail_folders.discard("validation")
        world.commit = original


def test_failing_validation_publishes_nothing_and_leaves_no_instance_running(run, failed):
    assert failed.status == "Failed"
    validate = failed.children[1]
    assert validate.step("RunValidationScripts").status == "Failed"
    assert validate.step_names[-1] == "TerminateTestInstance"
    assert [c.document_name for c in failed.children] == ["Bakehouse-BuildImage", "Bakehouse-ValidateImage"]
    new_image = failed.children[0].outputs["DescribeBuiltImage.ImageId"]
    assert new_image != image_id(run)
    ssm = run.world.client("ssm")
    assert ssm.get_parameter(Name=f"/bakehouse/images/{FAMILY}/latest")["Parameter"]["Value"] == image_id(run)
    image = run.world.client("ec2").describe_images(ImageIds=[new_image])["Images"][0]
    assert "bakehouse:approved" not in tags_to_dict(image.get("Tags"))
    for region in DISTRIBUTION_REGIONS:
        images = run.world.client("ec2", region).describe_images(
            Owners=["self"], Filters=[{"Name": "tag:bakehouse:source-ami", "Values": [new_image]}]
        )["Images"]
        assert images == []
    running = run.world.client("ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    )
    assert running["Reservations"] == []
