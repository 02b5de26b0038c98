"""EC2 copy_image of an AMI another account shared: moto 5.2.5 keeps images per account and does not
make a shared image visible to the accounts it is shared with, so such a copy fails there with
InvalidAMIID.NotFound. Every other call (and copies of the account's own images) goes to moto."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from ._base import RecordingFake, faked


class SharedImageCopyEc2(RecordingFake):
    """A workload account's moto EC2 client that can also copy an image shared with it.

    `owner_ec2(region)` is the sharing (build) account's moto EC2 client in that region; the fake
    checks there, as EC2 does, that this account holds the launch permission and the snapshots'
    createVolumePermission, then materialises the copy in this account's moto backend (a snapshot
    encrypted with the requested key + register_image), so everything after the copy is moto's.
    """

    SERVICE = "ec2"
    FAKED = frozenset({"copy_image"})

    def __init__(self, inner: Any, account_id: str, owner_ec2: Callable[[str], Any]):
        super().__init__(inner)
        self.account_id = account_id
        self._owner_ec2 = owner_ec2

    def _own(self, image_id: str) -> bool:
        try:
            return bool(self._inner.describe_images(ImageIds=[image_id])["Images"])
        except ClientError:
            return False

    @faked
    def _copy_image(self, SourceImageId: str, SourceRegion: str, Name: str, **params: Any) -> dict:
        if self._own(SourceImageId):  # moto handles copies of the account's own images
            response = self._inner.copy_image(SourceImageId=SourceImageId, SourceRegion=SourceRegion, Name=Name,
                                              **params)
            return {"ImageId": response["ImageId"]}
        if params.get("KmsKeyId") and not params.get("Encrypted"):
            raise self._error("copy_image", "InvalidParameterCombination",
                              "KmsKeyId requires Encrypted to be true")
        owner = self._owner_ec2(SourceRegion)
        try:
            source = owner.describe_images(ImageIds=[SourceImageId])["Images"][0]
            launch = owner.describe_image_attribute(ImageId=SourceImageId, Attribute="launchPermission")
        except (ClientError, IndexError) as err:
            raise self._error("copy_image", "InvalidAMIID.NotFound",
                              f"The image id '[{SourceImageId}]' does not exist") from err
        if self.account_id not in {p.get("UserId") for p in launch.get("LaunchPermissions", [])}:
            raise self._error("copy_image", "InvalidAMIID.NotFound",
                              f"The image id '[{SourceImageId}]' does not exist")  # EC2 hides unshared images
        snapshots = [m["Ebs"]["SnapshotId"] for m in source.get("BlockDeviceMappings", []) if "Ebs" in m]
        for snapshot in snapshots:
            perms = owner.describe_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission")
            if self.account_id not in {p.get("UserId") for p in perms.get("CreateVolumePermissions", [])}:
                raise self._error("copy_image", "AuthFailure",
                                  f"Not authorized for snapshot {snapshot} of image {SourceImageId}", 403)
        region = self._inner.meta.region_name
        volume = self._inner.create_volume(AvailabilityZone=f"{region}a", Size=8, Encrypted=True,
                                           **({"KmsKeyId": params["KmsKeyId"]} if params.get("KmsKeyId") else {}))
        snapshot = self._inner.create_snapshot(VolumeId=volume["VolumeId"], Description=f"copy of {SourceImageId}")
        self._inner.delete_volume(VolumeId=volume["VolumeId"])
        root = source.get("RootDeviceName", "/dev/xvda")
        image = self._inner.register_image(
            Name=Name, Description=params.get("Description", ""), RootDeviceName=root,
            Architecture=source.get("Architecture", "x86_64"), VirtualizationType="hvm",
            BlockDeviceMappings=[{"DeviceName": root, "Ebs": {"SnapshotId": snapshot["SnapshotId"]}}])
        return {"ImageId": image["ImageId"]}
