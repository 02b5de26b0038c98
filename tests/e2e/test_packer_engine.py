"""The Packer engine's hand-over, end to end: an AMI built outside SSM (Packer in CodeBuild, tagged as
packer/sources.pkr.hcl tags it) starts Bakehouse-ReleaseImage, which runs the same child documents
as Bakehouse-Pipeline after its build: validate -> approve (publish) -> distribute -> catalog."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from handlers.common import tags_to_dict
from tests.e2e import _seams
from tests.e2e._factory import ACCOUNTS, RecordingApprover, make_runner, packer_built_image, pipeline_parameters, region_keys
from tests.e2e._world import BundleShell, World, seed
from tests.e2e.runner import Execution, Runner, moto_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
FAMILY = "ubuntu2404"
RELEASE = "Bakehouse-ReleaseImage"


@dataclass
class Release:
    world: World
    runner: Runner
    seams: _seams.Seams
    image_id: str
    product_id: str
    execution: Execution


def release_parameters(world: World, keys: dict[str, str], product_id: str, image_id: str) -> dict:
    """What packer/start_release.sh sends: the settings' pipelineParameters without the build-only
    ones (BaseImageParameter, FactoryKmsKeyId), plus the built image and the bundle's identity."""
    params = pipeline_parameters(world, keys, product_id, family=FAMILY)
    for build_only in ("BaseImageParameter", "FactoryKmsKeyId"):
        params.pop(build_only, None)
    return {**params, "ImageId": image_id}


@pytest.fixture(scope="module")
def release() -> Iterator[Release]:
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        world = seed(url)
        keys = region_keys(world)
        seams = _seams.install(mp, world)
        product_id, _ = seams.seed_catalog_product(FAMILY)
        runner = make_runner(world, BundleShell(world), RecordingApprover())
        image = packer_built_image(world, FAMILY, world.commit)
        execution = runner.run(RELEASE, release_parameters(world, keys, product_id, image))
        yield Release(world, runner, seams, image, product_id, execution)


def test_release_runs_validate_approve_distribute_then_catalog_for_the_packer_image(release):
    run = release.execution
    assert run.status == "Success", run.failure
    assert [c.document_name for c in run.children] == [
        "Bakehouse-ValidateImage",
        "Bakehouse-ApproveImage",
        "Bakehouse-DistributeImage",
    ]
    assert all(c.status == "Success" and c.parameters["ImageId"] == release.image_id for c in run.children)
    order = run.step_names
    assert order.index("DistributeImage") < order.index("AddCatalogVersion") < order.index("NotifySuccess")


def test_release_publishes_and_distributes_the_packer_image_itself(release):
    ssm = release.world.client("ssm")
    assert ssm.get_parameter(Name=f"/bakehouse/images/{FAMILY}/latest")["Parameter"]["Value"] == release.image_id
    image = release.world.client("ec2").describe_images(ImageIds=[release.image_id])["Images"][0]
    assert tags_to_dict(image["Tags"])["bakehouse:approved"] == "true"
    for account in ACCOUNTS:
        param = release.seams.account_client(account["AccountId"], "ssm", release.world.region).get_parameter(
            Name=f"/bakehouse/{account['Env']}/ami/{FAMILY}"
        )["Parameter"]["Value"]
        assert param == release.image_id


def test_release_offers_the_packer_image_as_the_catalog_version(release):
    artifact = release.execution.outputs["AddCatalogVersion.ArtifactId"]
    details = {a["Id"]: a for a in release.seams.catalog.state.artifacts[release.product_id]}
    assert release.image_id in details[artifact]["Name"]


def test_an_image_not_tagged_with_the_family_never_enters_the_chain(release):
    world = release.world
    other = packer_built_image(world, "al2023-base", world.commit)
    params = release_parameters(world, region_keys(world), release.product_id, other)
    refused = release.runner.run(RELEASE, params)
    assert refused.status == "Failed"
    assert refused.children == [] and refused.step_names == ["DescribeBuiltImage"]
