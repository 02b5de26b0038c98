"""Small seeding helpers for moto-backed handler tests (no fakes here: moto implements these calls)."""

from __future__ import annotations

from typing import Any

# moto accepts any image id for run_instances unless MOTO_ENABLE_AMI_VALIDATION is set, so tests
# can skip loading moto's ~1,300 default AMIs per region (about a second each) with
# MOTO_EC2_LOAD_DEFAULT_AMIS=false and launch from this placeholder base image.
BASE_AMI = "ami-0b0a5e0000000000a"
FAST_EC2_ENV = {"MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}


def golden_ami(ec2: Any, name: str = "bakehouse-al2023-1", tags: dict[str, str] | None = None) -> str:
    """An AMI created the way the factory creates one: from a (terminated) build instance."""
    instance = ec2.run_instances(ImageId=BASE_AMI, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image = ec2.create_image(InstanceId=instance, Name=name)["ImageId"]
    if tags:
        ec2.create_tags(Resources=[image], Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())])
    ec2.terminate_instances(InstanceIds=[instance])
    return image


class NoAwsCalls:
    """Stands in for a client (or client factory) where the code under test must not touch AWS."""

    def __init__(self, name: str = "client"):
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        raise AssertionError(f"unexpected AWS use: {self._name}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"unexpected AWS client creation: {self._name}{args}")
