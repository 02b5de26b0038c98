"""Service Catalog: moto 5.2.5 keeps portfolios and products but raises NotImplementedError for every
provisioning-artifact call, product-portfolio association and constraint call (create, describe,
update, list), and create_product drops
the initial artifact (ProvisioningArtifactDetail comes back empty)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import string
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from ._base import RecordingFake, faked

_CONSTRAINT_TYPES = ("LAUNCH", "NOTIFICATION", "RESOURCE_UPDATE", "STACKSET", "TEMPLATE")
_INFO_KEYS = ("LoadTemplateFromURL", "ImportFromPhysicalId")


@dataclass
class ServiceCatalogState:
    artifacts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # product id -> details
    info: dict[str, dict[str, str]] = field(default_factory=dict)  # artifact id -> Info
    tokens: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (op, token) -> response
    associations: set[tuple[str, str]] = field(default_factory=set)  # (portfolio, product)
    constraints: list[dict[str, Any]] = field(default_factory=list)


class FakeServiceCatalog(RecordingFake):
    """Portfolios and products stay in moto; artifacts, associations and constraints live here."""

    SERVICE = "servicecatalog"
    FAKED = frozenset(
        {
            "create_product",
            "describe_product",
            "describe_product_as_admin",
            "create_provisioning_artifact",
            "update_provisioning_artifact",
            "list_provisioning_artifacts",
            "describe_provisioning_artifact",
            "delete_provisioning_artifact",
            "associate_product_with_portfolio",
            "list_portfolios_for_product",
            "create_constraint",
            "describe_constraint",
            "update_constraint",
            "list_constraints_for_portfolio",
        }
    )

    def __init__(self, inner: Any, state: ServiceCatalogState | None = None, seed: int = 7):
        super().__init__(inner)
        self.state = state or ServiceCatalogState()
        self._rand = random.Random(seed)
        self._clock = itertools.count()

    # --- helpers ------------------------------------------------------------------------------
    def _new_id(self, prefix: str) -> str:
        return prefix + "".join(self._rand.choice(string.ascii_lowercase + string.digits) for _ in range(13))

    def _now(self) -> dt.datetime:
        # Strictly increasing, so "newest artifact" is well defined even within one second.
        return dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=next(self._clock))

    def _product(self, method: str, product_id: str) -> dict[str, Any]:
        try:
            return self._inner.describe_product(Id=product_id)
        except ClientError as err:
            raise self._error(method, "ResourceNotFoundException", f"product {product_id} not found") from err

    def _portfolio(self, method: str, portfolio_id: str) -> None:
        try:
            self._inner.describe_portfolio(Id=portfolio_id)
        except ClientError as err:
            raise self._error(method, "ResourceNotFoundException", f"portfolio {portfolio_id} not found") from err

    def _add_artifact(self, method: str, product_id: str, params: dict[str, Any]) -> dict[str, Any]:
        info = params.get("Info") or {}
        if not any(k in info for k in _INFO_KEYS):
            raise self._error(
                method, "InvalidParametersException", f"Info needs one of {', '.join(_INFO_KEYS)}; got {sorted(info)}"
            )
        detail = {
            "Id": self._new_id("pa-"),
            "Name": params.get("Name", ""),
            "Description": params.get("Description", ""),
            "Type": params.get("Type", "CLOUD_FORMATION_TEMPLATE"),
            "CreatedTime": self._now(),
            "Active": True,
            "Guidance": "DEFAULT",
        }
        self.state.artifacts.setdefault(product_id, []).append(detail)
        self.state.info[detail["Id"]] = {
            "TemplateUrl": info.get("LoadTemplateFromURL", ""),
            **({"PhysicalId": info["ImportFromPhysicalId"]} if "ImportFromPhysicalId" in info else {}),
        }
        return detail

    def _artifact(self, method: str, product_id: str, artifact_id: str) -> dict[str, Any]:
        self._product(method, product_id)
        for detail in self.state.artifacts.get(product_id, []):
            if detail["Id"] == artifact_id:
                return detail
        raise self._error(
            method, "ResourceNotFoundException", f"provisioning artifact {artifact_id} not found in product {product_id}"
        )

    # --- products (moto keeps them; the initial artifact and artifact views are added here) ----
    @faked
    def _create_product(self, **params: Any) -> dict:
        artifact_params = params.get("ProvisioningArtifactParameters")
        response = self._inner.create_product(**params)
        response.pop("ResponseMetadata", None)
        product_id = response["ProductViewDetail"]["ProductViewSummary"]["ProductId"]
        if artifact_params:
            response["ProvisioningArtifactDetail"] = dict(self._add_artifact("create_product", product_id, artifact_params))
        return response

    @faked
    def _describe_product(self, **params: Any) -> dict:
        response = self._inner.describe_product(**params)
        response.pop("ResponseMetadata", None)
        product_id = response["ProductViewSummary"]["ProductId"]
        # End users see active artifacts only.
        response["ProvisioningArtifacts"] = [
            {k: d[k] for k in ("Id", "Name", "Description", "CreatedTime", "Guidance")}
            for d in self.state.artifacts.get(product_id, [])
            if d["Active"]
        ]
        return response

    @faked
    def _describe_product_as_admin(
        self,
        Id: str | None = None,
        Name: str | None = None,
        AcceptLanguage: str | None = None,
        SourcePortfolioId: str | None = None,
    ) -> dict:
        view = self._inner.describe_product(**({"Id": Id} if Id else {"Name": Name}))
        summary = view["ProductViewSummary"]
        return {
            "ProductViewDetail": {"ProductViewSummary": summary, "Status": "AVAILABLE"},
            "ProvisioningArtifactSummaries": [
                {k: d[k] for k in ("Id", "Name", "Description", "CreatedTime")}
                for d in self.state.artifacts.get(summary["ProductId"], [])
            ],
        }

    # --- provisioning artifacts ---------------------------------------------------------------
    @faked
    def _create_provisioning_artifact(
        self, ProductId: str, Parameters: dict, IdempotencyToken: str, AcceptLanguage: str | None = None
    ) -> dict:
        replay = self.state.tokens.get(("create_provisioning_artifact", IdempotencyToken))
        if replay is not None:  # the API returns the first result for a repeated token
            return replay
        self._product("create_provisioning_artifact", ProductId)
        detail = self._add_artifact("create_provisioning_artifact", ProductId, Parameters)
        response = {
            "ProvisioningArtifactDetail": dict(detail),
            "Info": dict(self.state.info[detail["Id"]]),
            "Status": "AVAILABLE",
        }
        self.state.tokens[("create_provisioning_artifact", IdempotencyToken)] = response
        return response

    @faked
    def _update_provisioning_artifact(
        self,
        ProductId: str,
        ProvisioningArtifactId: str,
        Name: str | None = None,
        Description: str | None = None,
        Active: bool | None = None,
        Guidance: str | None = None,
        AcceptLanguage: str | None = None,
    ) -> dict:
        detail = self._artifact("update_provisioning_artifact", ProductId, ProvisioningArtifactId)
        if Guidance is not None and Guidance not in ("DEFAULT", "DEPRECATED"):
            raise self._error(
                "update_provisioning_artifact",
                "InvalidParametersException",
                f"Guidance {Guidance!r} is not DEFAULT or DEPRECATED",
            )
        for key, value in (("Name", Name), ("Description", Description), ("Active", Active), ("Guidance", Guidance)):
            if value is not None:
                detail[key] = value
        return {"ProvisioningArtifactDetail": dict(detail), "Info": dict(self.state.info[detail["Id"]]), "Status": "AVAILABLE"}

    @faked
    def _list_provisioning_artifacts(self, ProductId: str, AcceptLanguage: str | None = None) -> dict:
        self._product("list_provisioning_artifacts", ProductId)
        return {"ProvisioningArtifactDetails": [dict(d) for d in self.state.artifacts.get(ProductId, [])]}

    @faked
    def _describe_provisioning_artifact(
        self,
        ProvisioningArtifactId: str | None = None,
        ProductId: str | None = None,
        ProvisioningArtifactName: str | None = None,
        ProductName: str | None = None,
        Verbose: bool | None = None,
        IncludeProvisioningArtifactParameters: bool | None = None,
        AcceptLanguage: str | None = None,
    ) -> dict:
        if ProductId is None:
            if ProductName is None:
                raise self._error(
                    "describe_provisioning_artifact", "InvalidParametersException", "ProductId or ProductName is required"
                )
            ProductId = self._inner.describe_product(Name=ProductName)["ProductViewSummary"]["ProductId"]
        self._product("describe_provisioning_artifact", ProductId)
        for detail in self.state.artifacts.get(ProductId, []):
            if detail["Id"] == ProvisioningArtifactId or (
                ProvisioningArtifactId is None and detail["Name"] == ProvisioningArtifactName
            ):
                return {
                    "ProvisioningArtifactDetail": dict(detail),
                    "Info": dict(self.state.info[detail["Id"]]),
                    "Status": "AVAILABLE",
                }
        raise self._error(
            "describe_provisioning_artifact",
            "ResourceNotFoundException",
            f"provisioning artifact {ProvisioningArtifactId or ProvisioningArtifactName} not found in product {ProductId}",
        )

    @faked
    def _delete_provisioning_artifact(
        self, ProductId: str, ProvisioningArtifactId: str, AcceptLanguage: str | None = None
    ) -> dict:
        detail = self._artifact("delete_provisioning_artifact", ProductId, ProvisioningArtifactId)
        artifacts = self.state.artifacts[ProductId]
        if len(artifacts) == 1:  # a product must keep at least one artifact
            raise self._error(
                "delete_provisioning_artifact",
                "InvalidParametersException",
                f"{ProvisioningArtifactId} is the last provisioning artifact of {ProductId}",
            )
        artifacts.remove(detail)
        return {}

    # --- portfolios: association and constraints ----------------------------------------------
    @faked
    def _associate_product_with_portfolio(
        self, ProductId: str, PortfolioId: str, SourcePortfolioId: str | None = None, AcceptLanguage: str | None = None
    ) -> dict:
        self._product("associate_product_with_portfolio", ProductId)
        self._portfolio("associate_product_with_portfolio", PortfolioId)
        self.state.associations.add((PortfolioId, ProductId))
        return {}

    @faked
    def _list_portfolios_for_product(
        self, ProductId: str, AcceptLanguage: str | None = None, PageToken: str | None = None, PageSize: int | None = None
    ) -> dict:
        self._product("list_portfolios_for_product", ProductId)
        ids = {pf for pf, pr in self.state.associations if pr == ProductId}
        details = [p for p in self._inner.list_portfolios()["PortfolioDetails"] if p["Id"] in ids]
        return {"PortfolioDetails": details}

    @faked
    def _create_constraint(
        self,
        PortfolioId: str,
        ProductId: str,
        Parameters: str,
        Type: str,
        IdempotencyToken: str,
        Description: str | None = None,
        AcceptLanguage: str | None = None,
    ) -> dict:
        replay = self.state.tokens.get(("create_constraint", IdempotencyToken))
        if replay is not None:
            return replay
        method = "create_constraint"
        if Type not in _CONSTRAINT_TYPES:
            raise self._error(method, "InvalidParametersException", f"Type {Type!r} is not one of {_CONSTRAINT_TYPES}")
        try:
            json.loads(Parameters)
        except ValueError as err:
            raise self._error(method, "InvalidParametersException", f"Parameters is not JSON: {err}") from err
        if (PortfolioId, ProductId) not in self.state.associations:
            raise self._error(
                method, "ResourceNotFoundException", f"product {ProductId} is not associated with portfolio {PortfolioId}"
            )
        detail = {
            "ConstraintId": self._new_id("cons-"),
            "Type": Type,
            "Description": Description or "",
            "Owner": self._inner.describe_portfolio(Id=PortfolioId)["PortfolioDetail"]["ARN"].split(":")[4],
            "ProductId": ProductId,
            "PortfolioId": PortfolioId,
        }
        self.state.constraints.append({**detail, "Parameters": Parameters})
        response = {"ConstraintDetail": detail, "ConstraintParameters": Parameters, "Status": "AVAILABLE"}
        self.state.tokens[(method, IdempotencyToken)] = response
        return response

    @faked
    def _list_constraints_for_portfolio(
        self,
        PortfolioId: str,
        ProductId: str | None = None,
        PageSize: int | None = None,
        PageToken: str | None = None,
        AcceptLanguage: str | None = None,
    ) -> dict:
        self._portfolio("list_constraints_for_portfolio", PortfolioId)
        return {
            "ConstraintDetails": [
                {k: c[k] for k in ("ConstraintId", "Type", "Description", "Owner", "ProductId", "PortfolioId")}
                for c in self.state.constraints
                if c["PortfolioId"] == PortfolioId and ProductId in (None, c["ProductId"])
            ]
        }

    def _constraint(self, method: str, constraint_id: str) -> dict[str, Any]:
        for constraint in self.state.constraints:
            if constraint["ConstraintId"] == constraint_id:
                return constraint
        raise self._error(method, "ResourceNotFoundException", f"constraint {constraint_id} not found")

    @staticmethod
    def _constraint_view(c: dict[str, Any]) -> dict[str, Any]:
        return {
            "ConstraintDetail": {k: c[k] for k in ("ConstraintId", "Type", "Description", "Owner", "ProductId", "PortfolioId")},
            "ConstraintParameters": c["Parameters"],
            "Status": "AVAILABLE",
        }

    @faked
    def _describe_constraint(self, Id: str, AcceptLanguage: str | None = None) -> dict:
        return self._constraint_view(self._constraint("describe_constraint", Id))

    @faked
    def _update_constraint(
        self, Id: str, Description: str | None = None, Parameters: str | None = None, AcceptLanguage: str | None = None
    ) -> dict:
        constraint = self._constraint("update_constraint", Id)
        if Parameters is not None:
            try:
                json.loads(Parameters)
            except ValueError as err:
                raise self._error("update_constraint", "InvalidParametersException", f"Parameters is not JSON: {err}") from err
            constraint["Parameters"] = Parameters
        if Description is not None:
            constraint["Description"] = Description
        return self._constraint_view(constraint)
