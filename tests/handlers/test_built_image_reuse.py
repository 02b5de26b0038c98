"""handlers.built_image: BuildImage reuses (and outputs) the newest available, not vulnerable image of a
family, base and commit; with a rebuild token only the image built for that token."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from handlers import built_image
from handlers.common import MalformedEvent

REGION = "eu-west-1"
BASE, COMMIT, FAMILY = "ami-0123456789abcdef0", "0a1b2c3d4e5f", "al2023-base"
TOKEN = "5d8c1f0e-3b7a-4c2e-9f61-0b4a7e2d9c35"


@pytest.fixture
def ec2():
    with mock_aws():
        yield boto3.client("ec2", region_name=REGION)


def built(ec2, created: str, token: str = "", vulnerable: str = "false") -> str:
    image = ec2.register_image(
        Name=f"bakehouse-{created}-{token}",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
    )["ImageId"]
    tags = {
        "bakehouse:family": FAMILY,
        "bakehouse:source-ami": BASE,
        "bakehouse:commit": COMMIT,
        "bakehouse:vulnerable": vulnerable,
        built_image.TAG_REBUILD_TOKEN: token,
    }
    ec2.create_tags(Resources=[image], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return image


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_without_a_token_the_newest_image_of_the_base_and_commit_is_chosen(ec2):
    old, new = built(ec2, "old"), built(ec2, "new", token=TOKEN)
    dates = {old: "2026-11-01T03:00:00.000Z", new: "2026-11-08T03:00:00.000Z"}
    found = built_image.newest_built_image(_dated(ec2, dates), FAMILY, BASE, COMMIT)
    assert found == new
    # the older one listed first still loses (EC2 documents no order for DescribeImages)
    assert (
        built_image.newest_built_image(_dated(ec2, {old: "2026-12-01T00:00:00.000Z", new: dates[new]}), FAMILY, BASE, COMMIT)
        == old
    )


def test_with_a_token_only_the_image_built_for_it_is_reused(ec2):
    plain = built(ec2, "plain")
    with pytest.raises(built_image.NoBuiltImage, match=TOKEN):
        built_image.newest_built_image(ec2, FAMILY, BASE, COMMIT, TOKEN)
    forced = built(ec2, "forced", token=TOKEN)
    assert built_image.newest_built_image(ec2, FAMILY, BASE, COMMIT, TOKEN) == forced
    assert plain != forced


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_vulnerable_image_is_never_reused(ec2):
    built(ec2, "bad", vulnerable="true")
    with pytest.raises(built_image.NoBuiltImage):
        built_image.newest_built_image(ec2, FAMILY, BASE, COMMIT)


@pytest.mark.parametrize("token", ["not-a-uuid", 7])
def test_a_malformed_token_is_refused_before_any_call(token):
    with pytest.raises(MalformedEvent, match="RebuildToken"):
        built_image.handler({"Family": FAMILY, "BaseImageId": BASE, "ScriptsCommit": COMMIT, "RebuildToken": token}, None)


class _dated:
    """An EC2 client whose DescribeImages pages carry the given CreationDates."""

    def __init__(self, ec2, dates: dict[str, str]):
        self.ec2, self.dates = ec2, dates

    def get_paginator(self, name: str):
        inner, dates = self.ec2.get_paginator(name), self.dates

        class Pages:
            def paginate(self, **params):
                for page in inner.paginate(**params):
                    for image in page["Images"]:
                        image["CreationDate"] = dates.get(image["ImageId"], image["CreationDate"])
                    yield page

        return Pages()
