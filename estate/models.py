"""The `bakehouse:` namespace as pydantic models: every key, its JSON type and the rules AWS sets on it.

Pure (no Pulumi). `extra="forbid"` makes a typo or a stray key an error. The role parsers
(components/<role>/...) add the rules that need the whole estate (which envs exist, which account
builds) and take each section's keys, choices and ranges from here (`section_keys`, `choices`,
`bounds`), so a key is declared once; estate/validate.py runs both in one pass. `make schema` exports
`StackKeys`' JSON schema.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt
from pydantic.alias_generators import to_camel

from handlers.contract import ACCOUNT_ID, ENV_NAME, FAMILY, REGION, ROLE_NAME

from .aws_rules import RECURRING_SCHEDULE, is_recurring_schedule, rfc1918_network


def _matches(pattern: re.Pattern[str], allowed: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(allowed)
        return value

    return AfterValidator(check)


def _recurring(value: str) -> str:
    if not is_recurring_schedule(value):
        raise ValueError(f"a recurring EventBridge Scheduler expression: {RECURRING_SCHEDULE}")
    return value


def _rfc1918(value: str) -> str:
    if rfc1918_network(value) is None:
        raise ValueError("a private IPv4 network (RFC 1918: inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)")
    return value


IAM_NAME_ALLOWED = "an IAM name of ASCII letters, digits and +=,.@_- ({} characters at most)"
# The editor schema carries the ASCII patterns; validation uses the contract's regexes (re.ASCII).
RoleName = Annotated[
    str,
    _matches(ROLE_NAME, IAM_NAME_ALLOWED.format(64)),
    Field(json_schema_extra={"pattern": r"^[A-Za-z0-9_+=,.@-]{1,64}$"}),
]
Schedule = Annotated[
    str, AfterValidator(_recurring), Field(json_schema_extra={"pattern": r"^(rate\([1-9][0-9]* [a-z]+\)|cron\(.+\))$"})
]
Cidr = Annotated[str, AfterValidator(_rfc1918), Field(json_schema_extra={"format": "ipv4-network (RFC 1918)"})]
EnvName = Annotated[str, _matches(ENV_NAME, "an env name: 2-16 lower-case letters and digits, starting with a letter")]
Family = Annotated[str, _matches(FAMILY, "a family name: 2-31 lower-case letters, digits and dashes, starting with a letter")]
Region = Annotated[str, _matches(REGION, "a region name like eu-west-1")]
AccountId = Annotated[str, _matches(ACCOUNT_ID, "a 12-digit account id (quoted)")]
# An owner or subscriber address, as the org and security stacks check it (the editor schema carries it too).
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
Email = Annotated[str, _matches(EMAIL, "an email address"), Field(json_schema_extra={"pattern": f"^{EMAIL.pattern}$"})]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


# --- stack keys every role shares ------------------------------------------------------------------
Role = Literal["org", "security", "build", "workload"]
ROLES: tuple[Role, ...] = typing.get_args(Role)
MIN_AZS, MAX_AZS = 1, 6


class Network(Model):
    cidr: Cidr
    azs: StrictInt | None = Field(default=None, ge=MIN_AZS, le=MAX_AZS)


# --- bakehouse:factory (build) ---------------------------------------------------------------------
class FactoryFamily(Model):
    base: Literal["al2023", "ubuntu2404"]
    engine: Literal["ssm", "packer"] | None = None


class Rescan(Model):
    schedule: Schedule | None = None
    # Scan instances launched at once; keeps well inside default EC2 vCPU quotas.
    batch_size: StrictInt | None = Field(default=None, ge=1, le=50)


class Lifecycle(Model):
    schedule: Schedule | None = None
    keep: StrictInt | None = Field(default=None, ge=1, le=50)
    keep_days: StrictInt | None = Field(default=None, ge=0, le=3650)
    grace_days: StrictInt | None = Field(default=None, ge=1, le=365)
    prod_retention_years: StrictInt | None = Field(default=None, ge=1, le=10)
    dry_run: StrictBool | None = None


class Subscription(Model):
    protocol: Literal["email", "https", "sqs", "lambda"]
    endpoint: str


class Subscriptions(Model):
    approvers: list[Subscription] | None = None
    notifications: list[Subscription] | None = None


class CatalogTagOptions(Model):
    owner: str | None = None
    cost_centre: str | None = None


class MemoryCapture(Model):
    version: str
    sha256: str
    source: str


class Factory(Model):
    families: dict[Family, FactoryFamily] | None = None
    regions: list[Region] | None = None
    target_envs: list[EnvName] | None = None
    workload_ous: list[str] | None = None
    auto_approve_envs: list[EnvName] | None = None
    approvers: list[str] | None = None
    severity_threshold: Literal["CRITICAL", "HIGH", "MEDIUM"] | None = None
    max_catalog_versions: StrictInt | None = Field(default=None, ge=1, le=20)
    launch_role_names: list[RoleName] | None = None
    egress_domains: list[str] | None = None
    rescan: Rescan | None = None
    lifecycle: Lifecycle | None = None
    approver_principals: list[str] | None = None
    subscriptions: Subscriptions | None = None
    catalog_tag_options: CatalogTagOptions | None = None
    catalog_regional_portfolios: StrictBool | None = None
    rebuild_schedule: Schedule | None = None
    memory_capture: MemoryCapture | None = None
    canary_env: EnvName | None = None
    # "off", or a recurring expression (the role parser checks which).
    forced_rebuild_schedule: str | None = None


# --- bakehouse:workload ----------------------------------------------------------------------------
class App(Model):
    family: Family | None = None
    instance_type: str | None = None
    parameters: dict[str, str] | None = None
    secrets: list[str] | None = None
    log_retention_days: StrictInt | None = None


class SharedEndpoints(Model):
    transit_gateway_id: str
    hub_cidr: Cidr
    hosted_zone_ids: dict[str, str]


class Egress(Model):
    mode: Literal["transit-gateway", "peering"]
    target_id: str
    destination_cidr: Cidr
    # 22 and 3389 are refused too (components/workload/workload_config.py): a proxy is not a way in.
    proxy_port: StrictInt | None = Field(default=None, ge=1, le=65535)


class WorkloadNetwork(Model):
    interface_endpoints: list[str] | None = None
    gateway_endpoints: list[Literal["s3", "dynamodb"]] | None = None
    endpoint_mode: Literal["per-vpc", "shared"] | None = None
    shared: SharedEndpoints | None = None
    egress: Egress | None = None


class IncidentResponse(Model):
    # GuardDuty severities run 1.0-8.9 (low < 4, medium < 7, high < 9); a strict float takes an int too.
    min_severity: StrictFloat | None = Field(default=None, ge=1.0, le=8.9)
    forensic_source: str | None = None


class Fleet(Model):
    # Auto Scaling's MaxInstanceLifetime is 86,400-31,536,000 seconds.
    max_instance_lifetime_days: StrictInt | None = Field(default=None, ge=1, le=365)
    report_schedule: Schedule | None = None


class Workload(Model):
    ami_families: list[Family] | None = None
    app: App | None = None
    image_keys: dict[Region, str] | None = None
    network: WorkloadNetwork | None = None
    incident_response: IncidentResponse | None = None
    fleet: Fleet | None = None


# --- bakehouse:org and bakehouse:security ----------------------------------------------------------
class Org(Model):
    account_emails: dict[str, Email] | None = None
    account_access_role_name: RoleName | None = None
    prod_envs: list[EnvName] | None = None
    trail_log_retention_days: StrictInt | None = None
    github_repository: str | None = None


MAX_DAYS = 36500  # a century: S3 retention and lifecycle days


class Security(Model):
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] | None = None
    object_lock_days: StrictInt | None = Field(default=None, ge=1, le=MAX_DAYS)
    glacier_after_days: StrictInt | None = Field(default=None, ge=1, le=MAX_DAYS)
    expire_after_days: StrictInt | None = Field(default=None, ge=1, le=MAX_DAYS)
    organization_root_id: str | None = None
    alert_emails: list[Email] | None = None


# --- the whole namespace ---------------------------------------------------------------------------
class ProjectKeys(Model):
    """Pulumi.yaml's project-level keys (a stack file may override them)."""

    organization_id: str | None = None
    home_region: Region | None = None
    allowed_regions: list[Region] | None = None
    deploy_role_name: RoleName | None = None
    accounts: dict[str, AccountId] | None = None


# Which role reads which section: a section on another role's stack would be silently ignored.
SECTION_ROLES = {"network": ("build", "workload"), "factory": ("build",), "workload": ("workload",), "org": ("org",)}
SECTION_ROLES["security"] = ("security",)
# `bakehouse:secret.<name>`: the workload app's secrets (components/workload/workload_config.py).
SECRET_PREFIX = "secret."


class StackKeys(ProjectKeys):
    """Every `bakehouse:` key but the `secret.<name>` ones, which a workload names freely."""

    role: Role
    region: Region | None = None
    env: EnvName | None = None
    network: Network | None = None
    provider_role_arn: str | None = None
    factory: Factory | None = None
    workload: Workload | None = None
    org: Org | None = None
    security: Security | None = None


# --- the models as the one source of each section's keys and choices -------------------------------
def keys_of(model: type[BaseModel]) -> tuple[str, ...]:
    """The keys a section takes, as written in a stack file (the fields' camelCase aliases)."""
    return tuple(info.alias or name for name, info in model.model_fields.items())


def model_at(path: Sequence[str | int], root: type[BaseModel] = StackKeys) -> type[BaseModel] | None:
    """The model of the section at `path` under the `bakehouse:` namespace (map keys and list positions
    walked through: ("factory", "families", "al2023") is FactoryFamily), or None if no model is there."""
    kind: Any = root
    for part in path:
        kind = _unwrap(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            info = next((f for n, f in kind.model_fields.items() if (f.alias or n) == part), None)
            if info is None:
                return None
            kind = info.annotation
        elif typing.get_origin(kind) in (dict, list):
            kind = typing.get_args(kind)[-1]
        else:
            return None
    kind = _unwrap(kind)
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def section_keys(path: str) -> tuple[str, ...]:
    """The keys of the section at a dotted path like "workload.network.egress" (what the role parsers
    accept, so a key added to a model is accepted everywhere at once)."""
    model = model_at(path.split("."))
    if model is None:
        raise LookupError(f"estate/models.py has no section at bakehouse:{path}")
    return keys_of(model)


def choices(model: type[BaseModel], field: str) -> tuple[Any, ...]:
    """The values a Literal field (or a list of them) allows, in the model's order."""
    kind = _unwrap(model.model_fields[field].annotation)
    if typing.get_origin(kind) is list:
        kind = _unwrap(typing.get_args(kind)[0])
    if typing.get_origin(kind) is not Literal:
        raise TypeError(f"{model.__name__}.{field} is not a Literal")
    return typing.get_args(kind)


def bounds(model: type[BaseModel], field: str) -> tuple[Any, Any]:
    """The (ge, le) a numeric field declares, None where it declares none: the role parsers check and
    name the same range, so it is written once."""
    metadata = model.model_fields[field].metadata
    low = next((m.ge for m in metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in metadata if isinstance(m, Le)), None)
    return low, high


def _unwrap(kind: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` -> X."""
    while True:
        origin = typing.get_origin(kind)
        if origin is Annotated:
            kind = typing.get_args(kind)[0]
        elif origin in (typing.Union, types.UnionType):
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        else:
            return kind
