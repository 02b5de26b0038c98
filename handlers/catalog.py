"""Offer an approved AMI as a new version (provisioning artifact) of the Service Catalog product.

The new version reuses the product's template (the newest version's TemplateUrl unless one is
given) and names the AMI in its name and description; the portfolio's template constraint is what
pins the ImageId parameter. Older versions get Guidance DEPRECATED (still launchable, flagged in
the console, hidden from new launches in the default view) and only the newest MaxVersions stay
Active at all - the rest are deactivated, never deleted, so stacks launched from them still update.

When the event names the PortfolioId, the portfolio's TEMPLATE constraint is rewritten too, one
rule per family: `Approved<Family>` (RuleCondition: the template's Family parameter is that family)
holds the family's approved ids, and ApprovedImageOnly (no condition) holds the union of every
family's ids, so a launch must name an image approved for some family *and* for the family it
claims. Approving an ubuntu2404 image rewrites only its own rule: al2023 launches go on as before.
A rescan's quarantine pins the family's rule back to its last good image (pin_family).

Versions are per family (named "<family> <ami>"): beyond MaxVersions a family's oldest versions are
deactivated and then deleted, so a product (at most 50 versions) never fills up.

With RegionalCatalogs (bakehouse:factory.catalogRegionalPortfolios: a portfolio, product and template
constraint in each distribution region, components/build/service_catalog.py), the same is done in each of
those regions with that region's copy of the AMI (found by its bakehouse:source-ami tag, as the
distribution tags it): a regional launch names the copy's id, never the home id. A region whose copy
is missing is reported by name after the other regions are offered (CatalogIncomplete).

Replay-safe: the version for an AMI is found by the AMI id in its name before anything is created
(and the create call carries an idempotency token derived from the AMI id), and guidance/active
flags are only written where they differ.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from handlers.common import AMI_ID, REGION, TAG_SOURCE_AMI, BakehouseError, EventReader, client
from handlers.contract import FAMILY

# The API's own constraint on product ids (real ones look like prod-abcdefghijklm).
PRODUCT_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
TEMPLATE_URL = re.compile(r"https://[A-Za-z0-9.-]+(:\d+)?/\S+")
# The rule of catalog/template-constraint.json that pins the product's ImageId parameter.
APPROVED_RULE = "ApprovedImageOnly"
IMAGE_PARAMETER_REF = {"Ref": "ImageId"}
FAMILY_PARAMETER_REF = {"Ref": "Family"}
NO_IMAGE = "ami-00000000000000000"  # the committed placeholder: an id no image has


class ProductNotFound(BakehouseError):
    """The Service Catalog product does not exist (or this role cannot see it)."""


class NoTemplate(BakehouseError):
    """No TemplateUrl given and the product has no version to take one from."""


class ConstraintNotFound(BakehouseError):
    """The portfolio has no TEMPLATE constraint on the product with the ApprovedImageOnly rule."""


class CatalogIncomplete(BakehouseError):
    """A regional catalog could not be offered (or repinned) the image; every such region is named."""


@dataclass(frozen=True)
class RegionalCatalog:
    """One distribution region's product and portfolio (the settings' CatalogRegions)."""

    region: str
    product_id: str
    portfolio_id: str

    def as_dict(self) -> dict[str, str]:
        return {"Region": self.region, "ProductId": self.product_id, "PortfolioId": self.portfolio_id}


@dataclass(frozen=True)
class CatalogRequest:
    image_id: str
    family: str
    product_id: str
    max_versions: int = 3
    template_url: str | None = None
    portfolio_id: str | None = None  # given: the portfolio's template constraint is rewritten
    approved_image_ids: tuple[str, ...] = ()  # e.g. the distribution's RegionImageIds; ImageId is added
    regional: tuple[RegionalCatalog, ...] = ()  # the same offer in each region, with that region's copy

    @classmethod
    def parse(cls, event: Any) -> CatalogRequest:
        read = EventReader("catalog", event)
        url, portfolio = read.event.get("TemplateUrl"), read.event.get("PortfolioId")
        request = cls(
            image_id=read.string("ImageId", AMI_ID),
            family=read.string("Family", FAMILY),
            product_id=read.string("ProductId", PRODUCT_ID),
            max_versions=read.integer("MaxVersions", 1, 50, 3),
            template_url=read.string("TemplateUrl", TEMPLATE_URL) if url not in (None, "") else None,
            portfolio_id=read.string("PortfolioId", PRODUCT_ID) if portfolio not in (None, "") else None,
            approved_image_ids=_approved_ids(read),
            regional=regional_catalogs(read.event.get("RegionalCatalogs"), read.problems),
        )
        read.done()
        return request

    @property
    def version_name(self) -> str:
        return f"{self.family} {self.image_id}"


def _approved_ids(read: EventReader) -> tuple[str, ...]:
    value = read.event.get("ApprovedImageIds")
    if value in (None, "", [], {}):
        return ()
    ids = list(value.values()) if isinstance(value, dict) else value  # a RegionImageIds map, or a list
    if not isinstance(ids, list) or not all(isinstance(i, str) and AMI_ID.fullmatch(i) for i in ids):
        read.problems.append(f"ApprovedImageIds is {value!r}, expected AMI ids (a list, or a region -> id map)")
        return ()
    return tuple(ids)


def regional_catalogs(value: Any, problems: list[str]) -> tuple[RegionalCatalog, ...]:
    """The RegionalCatalogs MapList ([{Region, ProductId, PortfolioId}]); problems collects what is wrong."""
    if value in (None, "", []):
        return ()
    if not isinstance(value, list):
        problems.append(f"RegionalCatalogs is {value!r}, expected a list of {{Region, ProductId, PortfolioId}}")
        return ()
    out = []
    for entry in value:
        if not (
            isinstance(entry, dict)
            and set(entry) == {"Region", "ProductId", "PortfolioId"}
            and isinstance(entry["Region"], str)
            and REGION.fullmatch(entry["Region"])
            and all(isinstance(entry[k], str) and PRODUCT_ID.fullmatch(entry[k]) for k in ("ProductId", "PortfolioId"))
        ):
            problems.append(
                f"RegionalCatalogs entry {entry!r}: expected {{Region, ProductId, PortfolioId}} "
                "with a region name and Service Catalog ids"
            )
            continue
        out.append(RegionalCatalog(entry["Region"], entry["ProductId"], entry["PortfolioId"]))
    return tuple(out)


@dataclass(frozen=True)
class CatalogResult:
    artifact_id: str
    created: bool
    active: tuple[str, ...]
    deprecated: tuple[str, ...]  # newly marked this run
    deactivated: tuple[str, ...]  # newly deactivated this run
    constraint_id: str | None = None
    constraint_updated: bool = False
    image_id: str = ""  # the id offered: the region's copy in a regional catalog
    regions: dict[str, CatalogResult] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "ArtifactId": self.artifact_id,
            "Created": self.created,
            "Active": list(self.active),
            "Deprecated": list(self.deprecated),
            "Deactivated": list(self.deactivated),
            "ConstraintId": self.constraint_id or "",
            "ConstraintUpdated": self.constraint_updated,
        }
        if self.image_id:
            out["ImageId"] = self.image_id
        if self.regions:
            out["Regions"] = {region: result.as_dict() for region, result in sorted(self.regions.items())}
        return out


def _artifacts(sc: Any, product_id: str) -> list[dict[str, Any]]:
    try:
        details = sc.list_provisioning_artifacts(ProductId=product_id)["ProvisioningArtifactDetails"]
    except ClientError as err:
        if err.response["Error"]["Code"] == "ResourceNotFoundException":
            raise ProductNotFound(f"{product_id}: no such Service Catalog product") from err
        raise
    return sorted(details, key=lambda d: (d["CreatedTime"], d["Id"]))


def _template_url(sc: Any, request: CatalogRequest, artifacts: list[dict[str, Any]]) -> str:
    if request.template_url:
        return request.template_url
    if not artifacts:
        raise NoTemplate(f"{request.product_id}: no version to copy a template from; pass TemplateUrl")
    newest = artifacts[-1]["Id"]
    info = sc.describe_provisioning_artifact(ProductId=request.product_id, ProvisioningArtifactId=newest)["Info"]
    if "TemplateUrl" not in info:
        raise NoTemplate(f"{request.product_id}: version {newest} has no TemplateUrl; pass TemplateUrl")
    url: str = info["TemplateUrl"]
    return url


def add_version(request: CatalogRequest, sc: Any) -> CatalogResult:
    artifacts = _artifacts(sc, request.product_id)
    mine = [a for a in artifacts if request.image_id in a.get("Name", "")]
    created = not mine
    if mine:
        current = mine[-1]
    else:
        current = sc.create_provisioning_artifact(
            ProductId=request.product_id,
            IdempotencyToken=f"bakehouse-{request.image_id}",
            Parameters={
                "Name": request.version_name,
                "Type": "CLOUD_FORMATION_TEMPLATE",
                "Description": f"Bakehouse golden image {request.image_id} ({request.family}); "
                f"launch with ImageId={request.image_id}",
                "Info": {"LoadTemplateFromURL": _template_url(sc, request, artifacts)},
            },
        )["ProvisioningArtifactDetail"]
        artifacts.append(current)

    # The AMI's own version is current; of the family's others, the newest MaxVersions-1 stay launchable.
    family_prefix = f"{request.family} "
    others = [a for a in artifacts if a["Id"] != current["Id"] and a.get("Name", "").startswith(family_prefix)]
    keep = {a["Id"] for a in others[len(others) - (request.max_versions - 1) :]} if request.max_versions > 1 else set()
    deprecated, deactivated = [], []
    for artifact in others:
        want_active = artifact["Id"] in keep
        changes: dict[str, Any] = {}
        if artifact.get("Guidance") != "DEPRECATED":
            changes["Guidance"] = "DEPRECATED"
            deprecated.append(artifact["Id"])
        if artifact.get("Active", True) != want_active:
            changes["Active"] = want_active
            if not want_active:
                deactivated.append(artifact["Id"])
        if not want_active:
            # Deactivated first (new launches stop even if the delete fails), then deleted: the product
            # holds at most 50 versions. Stacks launched from it keep running; they update to a newer one.
            if artifact.get("Active", True):
                sc.update_provisioning_artifact(ProductId=request.product_id, ProvisioningArtifactId=artifact["Id"], Active=False)
            sc.delete_provisioning_artifact(ProductId=request.product_id, ProvisioningArtifactId=artifact["Id"])
            continue
        if changes:
            sc.update_provisioning_artifact(ProductId=request.product_id, ProvisioningArtifactId=artifact["Id"], **changes)
    if current.get("Guidance") == "DEPRECATED" or current.get("Active") is False:
        # A replayed rollback: the approved AMI's version becomes the offered one again.
        sc.update_provisioning_artifact(
            ProductId=request.product_id, ProvisioningArtifactId=current["Id"], Guidance="DEFAULT", Active=True
        )
    active = tuple([current["Id"]] + [a["Id"] for a in others if a["Id"] in keep])
    return CatalogResult(current["Id"], created, active, tuple(deprecated), tuple(deactivated), image_id=request.image_id)


def family_rule(family: str) -> str:
    """The rule pinning one family's images; CloudFormation rule names are alphanumeric."""
    return "Approved" + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", family))


def _family_rules(rules: dict[str, Any]) -> dict[str, list[str]]:
    out = {}
    for rule in rules.get("Rules", {}).values():
        condition = rule.get("RuleCondition", {}).get("Fn::Equals")
        if isinstance(condition, list) and len(condition) == 2 and condition[0] == FAMILY_PARAMETER_REF:
            for assertion in rule.get("Assertions", []):
                contains = assertion.get("Assert", {}).get("Fn::Contains")
                if isinstance(contains, list) and len(contains) == 2 and contains[1] == IMAGE_PARAMETER_REF:
                    out[condition[1]] = list(contains[0])
    return out


def _pin_family(rules: dict[str, Any], family: str, image_ids: list[str]) -> bool:
    """Set the family's own rule to image_ids and the unconditional rule to the union of all families."""
    rules.setdefault("Rules", {})[family_rule(family)] = {
        "RuleCondition": {"Fn::Equals": [FAMILY_PARAMETER_REF, family]},
        "Assertions": [
            {
                "Assert": {"Fn::Contains": [image_ids, IMAGE_PARAMETER_REF]},
                "AssertDescription": f"ImageId must be a {family} image the Bakehouse factory approved",
            }
        ],
    }
    union = sorted({i for ids in _family_rules(rules).values() for i in ids if i != NO_IMAGE}) or [NO_IMAGE]
    return _pin(rules, union)


def _pin(rules: dict[str, Any], image_ids: list[str]) -> bool:
    """Point every `Fn::Contains [[...], {"Ref": "ImageId"}]` of the approved rule at image_ids."""
    found = False
    for assertion in rules.get("Rules", {}).get(APPROVED_RULE, {}).get("Assertions", []):
        contains = assertion.get("Assert", {}).get("Fn::Contains")
        if isinstance(contains, list) and len(contains) == 2 and contains[1] == IMAGE_PARAMETER_REF:
            contains[0] = image_ids
            found = True
    return found


def approve_in_constraint(
    sc: Any, portfolio_id: str, product_id: str, image_ids: list[str], family: str | None = None
) -> tuple[str, bool]:
    """Rewrite the family's rule to `image_ids` (and the union rule); without a family, the union rule
    alone. Returns (constraint id, whether it changed)."""
    pages = sc.get_paginator("list_constraints_for_portfolio").paginate(PortfolioId=portfolio_id, ProductId=product_id)
    for constraint in (c for page in pages for c in page["ConstraintDetails"] if c["Type"] == "TEMPLATE"):
        current = sc.describe_constraint(Id=constraint["ConstraintId"])["ConstraintParameters"]
        rules = json.loads(current)
        if not (_pin_family(rules, family, image_ids) if family else _pin(rules, image_ids)):
            continue
        if rules == json.loads(current):
            return constraint["ConstraintId"], False
        sc.update_constraint(Id=constraint["ConstraintId"], Parameters=json.dumps(rules, sort_keys=True))
        return constraint["ConstraintId"], True
    raise ConstraintNotFound(
        f"portfolio {portfolio_id}: no TEMPLATE constraint on {product_id} with an {APPROVED_RULE} rule testing Ref ImageId"
    )


def offer(request: CatalogRequest, sc: Any) -> CatalogResult:
    """add_version, then (with a PortfolioId) the template constraint pinned to the approved ids."""
    result = add_version(request, sc)
    if request.portfolio_id is None:
        return result
    ids = sorted({request.image_id, *request.approved_image_ids})
    constraint_id, updated = approve_in_constraint(sc, request.portfolio_id, request.product_id, ids, request.family)
    return replace(result, constraint_id=constraint_id, constraint_updated=updated)


def pin_family(sc: Any, portfolio_id: str, product_id: str, family: str, image_id: str | None) -> tuple[str, bool]:
    """A quarantine's rewrite: the family's rule admits image_id only, or (None) no image at all."""
    return approve_in_constraint(sc, portfolio_id, product_id, [image_id or NO_IMAGE], family)


def regional_copy(ec2: Any, image_id: str) -> str | None:
    """This region's available copy of the home image_id (the distribution tags it bakehouse:source-ami)."""
    pages = ec2.get_paginator("describe_images").paginate(
        Owners=["self"],
        Filters=[{"Name": f"tag:{TAG_SOURCE_AMI}", "Values": [image_id]}, {"Name": "state", "Values": ["available"]}],
    )
    found = sorted(
        (i for page in pages for i in page["Images"] if i["ImageId"] != image_id),
        key=lambda i: (i.get("CreationDate", ""), i["ImageId"]),
    )
    return found[0]["ImageId"] if found else None


def offer_everywhere(
    request: CatalogRequest, sc_for: Callable[[str | None], Any], ec2_for: Callable[[str], Any]
) -> CatalogResult:
    """offer() at home, then in each regional catalog with that region's copy; sc_for(None) is home."""
    result = offer(request, sc_for(None))
    regions, failures = {}, []
    for catalog in request.regional:
        try:
            copy = regional_copy(ec2_for(catalog.region), request.image_id)
            if copy is None:
                raise CatalogIncomplete(
                    f"{catalog.region}: no available copy of {request.image_id}; the distribution has not finished there"
                )
            regional = replace(
                request,
                image_id=copy,
                product_id=catalog.product_id,
                portfolio_id=catalog.portfolio_id,
                approved_image_ids=(),
                regional=(),
            )
            regions[catalog.region] = offer(regional, sc_for(catalog.region))
        except (BakehouseError, ClientError) as err:
            failures.append(f"{catalog.region} (product {catalog.product_id}): {err}")
    if failures:
        raise CatalogIncomplete(f"{request.image_id} ({request.family}) offered at home but not in: " + "; ".join(failures))
    return replace(result, regions=regions)


def pin_family_in_regions(
    regional: Sequence[RegionalCatalog],
    family: str,
    image_id: str | None,
    sc_for: Callable[[str], Any],
    ec2_for: Callable[[str], Any],
) -> dict[str, str]:
    """A quarantine's rewrite in each regional catalog: the family's rule admits the region's copy of
    image_id only; no image, or no copy in that region, admits nothing there. Every region is tried;
    the ones that fail are named together (CatalogIncomplete). Returns region -> the id pinned."""
    pinned, failures = {}, []
    for catalog in regional:
        try:
            copy = regional_copy(ec2_for(catalog.region), image_id) if image_id else None
            pin_family(sc_for(catalog.region), catalog.portfolio_id, catalog.product_id, family, copy)
            pinned[catalog.region] = copy or NO_IMAGE
        except (BakehouseError, ClientError) as err:
            failures.append(f"{catalog.region} (portfolio {catalog.portfolio_id}): {err}")
    if failures:
        raise CatalogIncomplete(f"catalog rule of {family} not pinned in: " + "; ".join(failures))
    return pinned


def regional_clients() -> tuple[Callable[[str | None], Any], Callable[[str], Any]]:
    """Service Catalog and EC2 clients by region (None: the home region's)."""

    def sc_for(region: str | None) -> Any:
        return client("servicecatalog") if region is None else client("servicecatalog", region)

    return sc_for, lambda region: client("ec2", region)


def handler(events: dict[str, Any], context: Any) -> dict[str, Any]:
    """SSM aws:executeScript entry point (InputPayload arrives as `events`).

    Event: ImageId, Family, ProductId, MaxVersions, TemplateUrl (optional), PortfolioId (optional:
    pins the template constraint), ApprovedImageIds (optional list or RegionImageIds map),
    RegionalCatalogs (optional [{Region, ProductId, PortfolioId}]: the same in each of those regions).
    Output: ArtifactId, Created, Active, Deprecated, Deactivated, ConstraintId, ConstraintUpdated,
    ImageId, and Regions (region -> the same fields) when regional catalogs are given.
    """
    request = CatalogRequest.parse(events)
    if not request.regional:
        return offer(request, client("servicecatalog")).as_dict()
    return offer_everywhere(request, *regional_clients()).as_dict()
