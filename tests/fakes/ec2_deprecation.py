"""EC2 with image deprecation: moto 5.2.5 raises NotImplementedError for enable/disable_image_deprecation."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ._base import RecordingFake, faked

# AWS caps DeprecateAt at ten years ahead for private images.
_MAX_AHEAD = dt.timedelta(days=3653)


def _parse(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class ImageDeprecationEc2(RecordingFake):
    """A moto EC2 client plus image deprecation, with DeprecationTime overlaid on describe_images.

    `deprecations` may be shared between several wrappers of the same region so that state
    survives a handler building its own client; it maps image id -> deprecation time.
    """

    SERVICE = "ec2"
    FAKED = frozenset({"enable_image_deprecation", "disable_image_deprecation", "describe_images"})

    def __init__(self, inner: Any, deprecations: dict[str, dt.datetime] | None = None, now: Any = None):
        super().__init__(inner)
        self.deprecations: dict[str, dt.datetime] = {} if deprecations is None else deprecations
        self._now = now or (lambda: dt.datetime.now(dt.UTC))

    def _require_image(self, method: str, image_id: str) -> None:
        # Asks moto so an image deregistered there is unknown here too (InvalidAMIID.NotFound).
        images = self._inner.describe_images(ImageIds=[image_id])["Images"]
        if not images:
            raise self._error(method, "InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")

    @faked
    def _enable_image_deprecation(self, ImageId: str, DeprecateAt: Any, DryRun: bool = False) -> dict:
        self._require_image("enable_image_deprecation", ImageId)
        when = _parse(DeprecateAt)
        now = self._now()
        if when <= now:
            raise self._error(
                "enable_image_deprecation",
                "InvalidParameterValue",
                f"DeprecateAt {when.isoformat()} for {ImageId} is in the past",
            )
        if when > now + _MAX_AHEAD:
            raise self._error(
                "enable_image_deprecation",
                "InvalidParameterValue",
                f"DeprecateAt {when.isoformat()} for {ImageId} is more than 10 years ahead",
            )
        # EC2 rounds to the minute.
        if when.second or when.microsecond:
            when = when.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        if not DryRun:
            self.deprecations[ImageId] = when
        return {"Return": True}

    @faked
    def _disable_image_deprecation(self, ImageId: str, DryRun: bool = False) -> dict:
        self._require_image("disable_image_deprecation", ImageId)
        if not DryRun:
            self.deprecations.pop(ImageId, None)
        return {"Return": True}

    @faked
    def _describe_images(self, **params: Any) -> dict:
        """Forwarded to moto, then DeprecationTime is added to the images this fake deprecated."""
        response = self._inner.describe_images(**params)
        for image in response.get("Images", []):
            when = self.deprecations.get(image["ImageId"])
            if when is not None:
                image["DeprecationTime"] = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return response
