"""Where the e2e run meets what moto cannot do: the handlers' client factories are pointed at the
recording fakes (tests/fakes) for Inspector v2 and Service Catalog, workload-account EC2 in the
distribution can tag the images shared with it (SharedImageTagsEc2), and EC2 calls are recorded so
the test can see what the distribution asked for (moto keeps no KMS key on a copied image)."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from handlers import common
from tests.fakes._base import Call
from tests.fakes.inspector2 import FakeInspector2
from tests.fakes.servicecatalog import FakeServiceCatalog
from tests.fakes.shared_image_tags import SharedImageTagsEc2, SharedTags

from ._world import World

# The OU every e2e workload account sits in; the distribution shares each region's image with it
# (moto resolves no OU membership, so the shared-image fake is told).
WORKLOAD_OU = "arn:aws:organizations::111111111111:ou/o-exampleorg01/ou-ab12-wkld0001"


class RecordingClient:
    """Forwards every call to a real (moto) client and records its name and parameters."""

    def __init__(self, inner: Any, log: list[Call], lock: threading.Lock):
        self._inner, self._log, self._lock = inner, log, lock
        self.meta, self.exceptions = inner.meta, inner.exceptions

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("get_paginator") or name in ("can_paginate", "get_waiter"):
            return attr

        def call(**params: Any) -> Any:
            with self._lock:
                self._log.append(Call(name, dict(params)))
            return attr(**params)

        return call


class DiscoveringInspector(FakeInspector2):
    """Inspector finds running instances by itself (through their SSM agent); the first scan lands one
    poll after discovery, so the handler must poll. `findings_by_image` seeds what the scan reports."""

    def __init__(self, *args: Any, ec2: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._ec2 = ec2
        self.findings_by_image: dict[str, list[str]] = {}

    def list_coverage(self, **params: Any) -> dict[str, Any]:
        known = {c.resource["resourceId"] for c in self.state.coverage}
        found = self._ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
        for instance in (i for r in found for i in r["Instances"] if i["InstanceId"] not in known):
            image = instance["ImageId"]
            self.add_coverage(
                instance["InstanceId"], ami_id=image, after_polls=1, tags={t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            )
            for severity in self.findings_by_image.get(image, []):
                self.add_finding(instance["InstanceId"], severity, ami_id=image)
        return FakeInspector2.list_coverage(self, **params)


@dataclass
class Seams:
    world: World
    catalog: FakeServiceCatalog
    inspector: DiscoveringInspector
    ec2_log: dict[str, list[Call]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    shared_tags: SharedTags = field(default_factory=dict)  # each workload account's tags on shared images
    regional_catalogs: dict[str, FakeServiceCatalog] = field(default_factory=dict)  # region -> its catalog

    def catalog_in(self, region: str | None) -> FakeServiceCatalog:
        """Service Catalog is regional: the home fake, or the one of a regional portfolio's region."""
        if region in (None, self.world.region):
            return self.catalog
        if region not in self.regional_catalogs:
            self.regional_catalogs[region] = FakeServiceCatalog(self.world.client("servicecatalog", region))
        return self.regional_catalogs[region]

    def shared_image_tags(self, account_id: str, region: str, image_id: str) -> dict[str, str]:
        return dict(self.shared_tags.get((account_id, region, image_id), {}))

    def ec2_calls(self, region: str) -> list[Call]:
        return list(self.ec2_log.get(region, []))

    def account_client(self, account_id: str, service: str, region: str) -> Any:
        """A client inside a workload account, as moto scopes it: through an assumed role there."""
        sts = self.world.client("sts")
        creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/BakehouseReadOnly", RoleSessionName="e2e-check")[
            "Credentials"
        ]
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.world.endpoint_url,
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )

    def factory(self, real: Callable[..., Any]) -> Callable[..., Any]:
        """A stand-in for handlers.common.client: fakes for what moto lacks, recorders for EC2."""

        def client(service: str, region: str | None = None, session: Any = None):
            if service == "servicecatalog":
                return self.catalog_in(region)
            if service == "inspector2":
                return self.inspector
            inner = real(service, region, session)
            if service == "ec2":
                name = region or self.world.region
                return RecordingClient(inner, self.ec2_log.setdefault(name, []), self.lock)
            return inner

        return client


def install(mp: Any, world: World) -> Seams:
    """Point every handler module's `client` factory at the seams (modules import it by name)."""
    seams = Seams(
        world,
        catalog=FakeServiceCatalog(world.client("servicecatalog")),
        inspector=DiscoveringInspector(
            world.client("inspector2"),
            s3=world.client("s3"),
            kms=world.client("kms"),
            region=world.region,
            ec2=world.client("ec2"),
        ),
    )
    stand_in = seams.factory(common.client)
    _let_accounts_tag_shared_images(mp, seams)
    for module in ("publish", "distribute", "catalog", "inspector_summary"):
        try:
            loaded = importlib.import_module(f"handlers.{module}")
        except ModuleNotFoundError:
            continue
        if hasattr(loaded, "client"):
            mp.setattr(loaded, "client", stand_in)
    return seams


def _seed_catalog_product(seams: Seams, family: str) -> tuple[str, str]:
    """The portfolio's product as the build stack creates it, with one version of the family from an older
    image (versions are named "<family> <ami>", handlers/catalog.py)."""
    product = seams.catalog.create_product(
        Name=f"bakehouse-{family}",
        Owner="platform",
        ProductType="CLOUD_FORMATION_TEMPLATE",
        IdempotencyToken=f"seed-{family}",
        ProvisioningArtifactParameters={
            "Name": f"{family} ami-0123456789abcdef0",
            "Description": "previous image",
            "Type": "CLOUD_FORMATION_TEMPLATE",
            "Info": {"LoadTemplateFromURL": "https://example-bucket.s3.amazonaws.com/catalog/previous.yaml"},
        },
    )
    return (product["ProductViewDetail"]["ProductViewSummary"]["ProductId"], product["ProvisioningArtifactDetail"]["Id"])


Seams.seed_catalog_product = _seed_catalog_product  # type: ignore[attr-defined]


def _let_accounts_tag_shared_images(mp: Any, seams: Seams) -> None:
    """The distribution's publisher-role EC2 clients, wrapped so an account can tag its view of an
    image shared with it, which moto cannot (tests/fakes/shared_image_tags.py)."""
    try:
        distribute = importlib.import_module("handlers.distribute")
    except ModuleNotFoundError:
        return
    real_target = distribute.AwsClients.target

    def target(self: Any, account_id: str, service: str, region: str) -> Any:
        inner = real_target(self, account_id, service, region)
        if service != "ec2":
            return inner
        return SharedImageTagsEc2(inner, account_id, lambda r: self.build("ec2", r), seams.shared_tags, member_of=(WORKLOAD_OU,))

    mp.setattr(distribute.AwsClients, "target", target)
