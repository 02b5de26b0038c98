"""EC2 tags an account puts on an AMI another account shared with it: moto 5.2.5 keeps images per
account and does not make a shared image visible to the accounts it is shared with, so create_tags
there fails with InvalidAMIID.NotFound. On AWS each account's tags on a shared AMI are its own,
visible only to it (EC2 user guide, "Tag your Amazon EC2 resources": shared AMIs).

An image shared with an organization or OU is visible to every account under it (EC2 user guide,
"Share an AMI with organizations or OUs"); moto records such launch permissions but, keeping images
per account, resolves none of them, so the fake is told which organization and OU ARNs hold the
account (`member_of`: the organization's and every OU's on the account's path)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from botocore.exceptions import ClientError

from ._base import RecordingFake, faked

# (account, region, image id) -> {key: value}: the tags each account put on images shared with it.
SharedTags = dict[tuple[str, str, str], dict[str, str]]


class SharedImageTagsEc2(RecordingFake):
    """A workload account's moto EC2 client that can also tag (and read its tags of) a shared image.

    `owner_ec2(region)` is the sharing (build) account's moto EC2 client there; the fake checks, as EC2
    does, that this account holds the image's launch permission. Tags of the account's own resources
    go to moto. Pass the same `state` dict to several wrappers to share what was written. `member_of`
    names the organization and OU ARNs the account is in: a launch permission for any of them admits it.
    """

    SERVICE = "ec2"
    FAKED = frozenset({"create_tags", "describe_tags"})

    def __init__(
        self,
        inner: Any,
        account_id: str,
        owner_ec2: Callable[[str], Any],
        state: SharedTags | None = None,
        member_of: Collection[str] = (),
    ):
        super().__init__(inner)
        self.account_id = account_id
        self.member_of = frozenset(member_of)
        self._owner_ec2 = owner_ec2
        self.state: SharedTags = {} if state is None else state
        self._region = inner.meta.region_name

    def _shared_with_me(self, image_id: str) -> bool:
        if not image_id.startswith("ami-"):
            return False
        try:
            launch = self._owner_ec2(self._region).describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
        except ClientError:
            return False
        for permission in launch.get("LaunchPermissions", []):
            if permission.get("UserId") == self.account_id or permission.get("Group") == "all":
                return True
            if {permission.get("OrganizationArn"), permission.get("OrganizationalUnitArn")} & self.member_of:
                return True
        return False

    def _own(self, resource_id: str) -> bool:
        if not resource_id.startswith("ami-"):
            return True  # only images are served here; moto answers for everything else
        try:
            return bool(self._inner.describe_images(ImageIds=[resource_id])["Images"])
        except ClientError:
            return False

    @faked
    def _create_tags(self, Resources: list[str], Tags: list[dict[str, str]], **params: Any) -> dict:
        own = [r for r in Resources if self._own(r)]
        shared = [r for r in Resources if r not in own]
        for resource in shared:
            if not self._shared_with_me(resource):  # EC2 hides images not shared with the caller
                raise self._error("create_tags", "InvalidAMIID.NotFound", f"The image id '[{resource}]' does not exist")
        if own:
            self._inner.create_tags(Resources=own, Tags=Tags, **params)
        for resource in shared:
            self.state.setdefault((self.account_id, self._region, resource), {}).update(
                {t["Key"]: t.get("Value", "") for t in Tags}
            )
        return {}

    @faked
    def _describe_tags(self, Filters: list[dict[str, Any]] | None = None, **params: Any) -> dict:
        filters = {f["Name"]: set(f["Values"]) for f in Filters or []}
        unsupported = set(filters) - {"resource-id", "key", "value", "resource-type"}
        if unsupported:
            raise NotImplementedError(f"SharedImageTagsEc2.describe_tags filters {sorted(unsupported)}")
        tags = list(self._inner.describe_tags(**({"Filters": Filters} if Filters else {}), **params)["Tags"])
        for (account, region, image_id), values in sorted(self.state.items()):
            if (account, region) != (self.account_id, self._region):
                continue
            for key, value in sorted(values.items()):
                if (
                    ("resource-id" not in filters or image_id in filters["resource-id"])
                    and ("key" not in filters or key in filters["key"])
                    and ("value" not in filters or value in filters["value"])
                    and ("resource-type" not in filters or "image" in filters["resource-type"])
                ):
                    tags.append({"Key": key, "Value": value, "ResourceId": image_id, "ResourceType": "image"})
        return {"Tags": tags}
