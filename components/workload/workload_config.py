"""The `bakehouse:workload` section of a workload stack, validated into frozen settings.

Pure (no Pulumi): dev, uat and prod differ only in this section of their stack files, so every
choice the workload components make from config is parsed, checked and defaulted here, once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from estate import models
from estate.aws_rules import LOG_RETENTION_DAYS, rfc1918_network
from estate.config import Problems, StackConfig, require_keys, section
from handlers.contract import FAMILY

KEY = "workload"
# Interface endpoints a private-only instance needs: Session Manager (ssm, ssmmessages,
# ec2messages), its own APIs, logs and metrics, keys, credentials, secrets and alarms.
DEFAULT_INTERFACE_ENDPOINTS = (
    "ssm",
    "ssmmessages",
    "ec2messages",
    "ec2",
    "logs",
    "monitoring",
    "kms",
    "sts",
    "secretsmanager",
    "sns",
)
# Services an interface endpoint may be configured for; anything else is most likely a typo.
KNOWN_INTERFACE_ENDPOINTS = DEFAULT_INTERFACE_ENDPOINTS + (
    "ecr.api",
    "ecr.dkr",
    "events",
    "sqs",
    "elasticloadbalancing",
    "autoscaling",
    "ssm-contacts",
    "execute-api",
    "xray",
    "kinesis-streams",
    "states",
)
# Always required: without them Session Manager, the only way in, does not work.
REQUIRED_INTERFACE_ENDPOINTS = ("ssm", "ssmmessages", "ec2messages")
# The choices are the models' (estate/models.py), declared once.
GATEWAY_ENDPOINTS = models.choices(models.WorkloadNetwork, "gateway_endpoints")
ENDPOINT_MODES = models.choices(models.WorkloadNetwork, "endpoint_mode")
EGRESS_MODES = models.choices(models.Egress, "mode")
PARAM_NAME = re.compile(r"[a-zA-Z0-9_.-]{1,64}(/[a-zA-Z0-9_.-]{1,64}){0,4}")
TGW_ID = re.compile(r"tgw-[0-9a-f]{8,17}")
PCX_ID = re.compile(r"pcx-[0-9a-f]{8,17}")
ZONE_ID = re.compile(r"Z[A-Z0-9]{1,32}")
INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
# A KMS key ARN (CreateGrant takes only a key id or key ARN, and a key ARN for another account's key;
# an alias is refused: KMS API reference, CreateGrant "KeyId").
KMS_KEY_ARN = re.compile(r"arn:aws:kms:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):key/(mrk-)?[0-9a-f-]{32,36}")


@dataclass(frozen=True)
class SharedEndpoints:
    """Interface endpoints live in a central network account; this VPC reaches them over a
    transit gateway and resolves their names through that account's private hosted zones."""

    transit_gateway_id: str
    hub_cidr: str
    hosted_zone_ids: Mapping[str, str]  # endpoint service -> private hosted zone id


@dataclass(frozen=True)
class Egress:
    """A route to the build account's filtered egress proxy (never a default route)."""

    mode: str
    target_id: str  # tgw-... or pcx-...
    destination_cidr: str
    proxy_port: int = 3128  # where the proxy listens; instances reach it there (and on 443)


@dataclass(frozen=True)
class NetworkOptions:
    interface_endpoints: tuple[str, ...] = DEFAULT_INTERFACE_ENDPOINTS
    gateway_endpoints: tuple[str, ...] = GATEWAY_ENDPOINTS
    endpoint_mode: str = "per-vpc"
    shared: SharedEndpoints | None = None
    egress: Egress | None = None


@dataclass(frozen=True)
class AppOptions:
    family: str
    instance_type: str = "t3.micro"
    parameters: Mapping[str, str] = field(default_factory=dict)  # app/<name> -> value
    secrets: tuple[str, ...] = ()  # secrets/<name>; values from `bakehouse:secret.<name>`
    log_retention_days: int = 365


@dataclass(frozen=True)
class WorkloadConfig:
    ami_families: tuple[str, ...]
    app: AppOptions
    # region -> the build account's key of the images there (its factoryKeyArn / imageKeyArns exports)
    image_keys: Mapping[str, str] = field(default_factory=dict)
    network: NetworkOptions = NetworkOptions()
    isolate_min_severity: float = 7.0
    forensic_source: str | None = None  # CIDR or security group the isolation group admits (docs/operations.md)


def secret_config_key(name: str) -> str:
    """The config key (without the `bakehouse:` namespace) holding secret `name`'s value."""
    return f"{models.SECRET_PREFIX}{name}"


def load_workload_config(cfg: StackConfig) -> WorkloadConfig:
    def parse(raw: Mapping[str, Any], problems: Problems) -> WorkloadConfig | None:
        parsed = _parse(raw, problems, cfg)
        for name in parsed.app.secrets if parsed else ():
            # Checked here so a missing secret is reported with the rest, not as a runtime crash.
            problems.check(
                secret_config_key(name) in cfg.sections,
                f"bakehouse:{secret_config_key(name)}",
                None,
                f"a secret value (pulumi config set --secret bakehouse:{secret_config_key(name)} ...)",
            )
        return parsed

    return section(cfg, KEY, parse)


def _parse(raw: Mapping[str, Any], problems: Problems, cfg: StackConfig) -> WorkloadConfig | None:
    # `fleet` is read by components/workload/fleet_lifetime.py (maximum instance lifetime, fleet report).
    require_keys(raw, KEY, problems)
    families = _families(raw.get("amiFamilies"), problems)
    image_keys = _image_keys(raw.get("imageKeys"), cfg, problems)
    app = _app(raw.get("app", {}), families, problems)
    network = _network(raw.get("network", {}), problems)
    severity = _severity(raw.get("incidentResponse", {}), problems)
    forensic = _forensic_source(raw.get("incidentResponse", {}), problems)
    if problems.items:
        return None
    return WorkloadConfig(
        ami_families=families,
        app=app,
        image_keys=image_keys,
        network=network,
        isolate_min_severity=severity,
        forensic_source=forensic,
    )


def _image_keys(raw: Any, cfg: StackConfig, problems: Problems) -> dict[str, str]:
    """The build account's image keys by region: Auto Scaling launches from its encrypted images only
    with a grant on them, made from this account by key ARN (a StackReference would need a live backend)."""
    key = f"bakehouse:{KEY}.imageKeys"
    build, home, allowed = cfg.estate.accounts.build, cfg.estate.home_region, cfg.estate.allowed_regions
    source = "the build stack's factoryKeyArn (home region) and imageKeyArns exports"
    if not isinstance(raw, Mapping) or not raw:
        problems.add(key, raw, f"an object of region -> key ARN, from {source}")
        return {}
    problems.check(
        home in raw, f"{key}.{home}", raw.get(home), f"the home region's image key (workloads launch there), from {source}"
    )
    for region, arn in raw.items():
        # Grants are made in the key's region: a region outside allowedRegions is denied by the region SCP.
        if not problems.check(
            region in allowed, f"{key}.{region}", arn, "regions of bakehouse:allowedRegions: " + ", ".join(allowed)
        ):
            continue
        match = KMS_KEY_ARN.fullmatch(arn) if isinstance(arn, str) else None
        problems.check(
            bool(match) and match["region"] == region and match["account"] == build,
            f"{key}.{region}",
            arn,
            f"a key ARN arn:aws:kms:{region}:{build}:key/<key id> (not an alias), from {source}",
        )
    return dict(raw)


def _families(raw: Any, problems: Problems) -> tuple[str, ...]:
    allowed = "a non-empty list of AMI family names like al2023 (lowercase, digits, -)"
    if not (isinstance(raw, list) and raw and all(isinstance(f, str) and FAMILY.fullmatch(f) for f in raw)):
        problems.add(f"bakehouse:{KEY}.amiFamilies", raw, allowed)
        return ()
    if len(set(raw)) != len(raw):
        problems.add(f"bakehouse:{KEY}.amiFamilies", raw, "each family once")
    return tuple(raw)


def _app(raw: Any, families: tuple[str, ...], problems: Problems) -> AppOptions | None:
    key = f"bakehouse:{KEY}.app"
    if not isinstance(raw, Mapping):
        problems.add(key, raw, "an object")
        return None
    require_keys(raw, f"{KEY}.app", problems)
    family = raw.get("family", families[0] if families else None)
    problems.check(family in families, f"{key}.family", family, ", ".join(families) or "one of amiFamilies")
    instance_type = raw.get("instanceType", "t3.micro")
    problems.check(
        isinstance(instance_type, str) and bool(INSTANCE_TYPE.fullmatch(instance_type)),
        f"{key}.instanceType",
        instance_type,
        "an EC2 instance type like t3.micro",
    )
    parameters = raw.get("parameters", {})
    if not isinstance(parameters, Mapping):
        problems.add(f"{key}.parameters", parameters, "an object of name -> string value")
        parameters = {}
    for name, value in parameters.items():
        problems.check(
            bool(PARAM_NAME.fullmatch(str(name))),
            f"{key}.parameters",
            name,
            "names of letters, digits, _ . - (up to 5 levels separated by /)",
        )
        problems.check(
            isinstance(value, str) and 0 < len(value) <= 4096,
            f"{key}.parameters.{name}",
            value,
            "a non-empty string of at most 4096 characters (Standard tier)",
        )
        if isinstance(value, str) and _looks_secret(str(name)):
            problems.add(
                f"{key}.parameters.{name}",
                "<redacted>",
                "no secrets in plain String parameters; list the name under app.secrets instead",
            )
    secrets = raw.get("secrets", [])
    if not (isinstance(secrets, list) and all(isinstance(s, str) and PARAM_NAME.fullmatch(s) for s in secrets)):
        problems.add(f"{key}.secrets", secrets, "a list of secret names (letters, digits, _ . - /)")
        secrets = []
    for clash in sorted(set(secrets) & set(parameters)):
        problems.add(f"{key}.secrets", clash, "a name not also used under app.parameters")
    retention = raw.get("logRetentionDays", 365)
    problems.check(
        retention in LOG_RETENTION_DAYS and not isinstance(retention, bool),
        f"{key}.logRetentionDays",
        retention,
        "one of the CloudWatch Logs retention values, e.g. 90, 365, 3653",
    )
    if problems.items:
        return None
    return AppOptions(
        family=family,
        instance_type=instance_type,
        parameters=dict(parameters),
        secrets=tuple(secrets),
        log_retention_days=retention,
    )


def _looks_secret(name: str) -> bool:
    return bool(re.search(r"pass(word)?|secret|token|private[-_]?key|credential", name, re.IGNORECASE))


def _network(raw: Any, problems: Problems) -> NetworkOptions | None:
    key = f"bakehouse:{KEY}.network"
    if not isinstance(raw, Mapping):
        problems.add(key, raw, "an object")
        return None
    require_keys(raw, f"{KEY}.network", problems)
    interface = raw.get("interfaceEndpoints", list(DEFAULT_INTERFACE_ENDPOINTS))
    if not (isinstance(interface, list) and all(isinstance(s, str) for s in interface)):
        problems.add(f"{key}.interfaceEndpoints", interface, "a list of service names")
        interface = []
    for svc in interface:
        problems.check(svc in KNOWN_INTERFACE_ENDPOINTS, f"{key}.interfaceEndpoints[]", svc, ", ".join(KNOWN_INTERFACE_ENDPOINTS))
    for svc in REQUIRED_INTERFACE_ENDPOINTS:
        problems.check(
            svc in interface,
            f"{key}.interfaceEndpoints",
            interface,
            f"a list including {svc} (Session Manager, the only way onto instances, needs it)",
        )
    if len(set(interface)) != len(interface):
        problems.add(f"{key}.interfaceEndpoints", interface, "each service once")
    gateway = raw.get("gatewayEndpoints", list(GATEWAY_ENDPOINTS))
    if not (isinstance(gateway, list) and all(g in GATEWAY_ENDPOINTS for g in gateway)):
        problems.add(f"{key}.gatewayEndpoints", gateway, "a list of " + ", ".join(GATEWAY_ENDPOINTS))
        gateway = []
    if "s3" not in gateway:
        # Session logs, Config and flow logs all write to S3; without a route to it they fail silently.
        problems.add(f"{key}.gatewayEndpoints", gateway, "a list including s3 (session and Config delivery need it)")
    mode = raw.get("endpointMode", "per-vpc")
    problems.check(mode in ENDPOINT_MODES, f"{key}.endpointMode", mode, ", ".join(ENDPOINT_MODES))
    shared = None
    if mode == "shared":
        shared = _shared(raw.get("shared"), tuple(interface), problems)
    elif "shared" in raw:
        problems.add(f"{key}.shared", raw["shared"], "only with endpointMode: shared")
    egress = _egress(raw["egress"], problems) if "egress" in raw else None
    if shared and egress and egress.mode == "transit-gateway" and egress.target_id != shared.transit_gateway_id:
        problems.add(
            f"{key}.egress.targetId",
            egress.target_id,
            f"the shared endpoints' transit gateway {shared.transit_gateway_id} (one attachment per VPC)",
        )
    if problems.items:
        return None
    return NetworkOptions(
        interface_endpoints=tuple(interface), gateway_endpoints=tuple(gateway), endpoint_mode=mode, shared=shared, egress=egress
    )


def _private_cidr(value: Any, problems: Problems, key: str) -> bool:
    return problems.check(
        rfc1918_network(value) is not None,
        key,
        value,
        "a private IPv4 network (RFC 1918: inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16), never 0.0.0.0/0",
    )


def _shared(raw: Any, interface: tuple[str, ...], problems: Problems) -> SharedEndpoints | None:
    key = f"bakehouse:{KEY}.network.shared"
    if not isinstance(raw, Mapping):
        problems.add(key, raw, "an object with transitGatewayId, hubCidr and hostedZoneIds")
        return None
    require_keys(raw, f"{KEY}.network.shared", problems)
    tgw = raw.get("transitGatewayId")
    problems.check(
        isinstance(tgw, str) and bool(TGW_ID.fullmatch(tgw)),
        f"{key}.transitGatewayId",
        tgw,
        "a transit gateway id like tgw-0123456789abcdef0",
    )
    _private_cidr(raw.get("hubCidr"), problems, f"{key}.hubCidr")
    zones = raw.get("hostedZoneIds")
    if not isinstance(zones, Mapping):
        problems.add(f"{key}.hostedZoneIds", zones, "an object of endpoint service -> hosted zone id")
        return None
    for svc in interface:
        problems.check(
            svc in zones,
            f"{key}.hostedZoneIds.{svc}",
            zones.get(svc),
            "the central account's private hosted zone id for that endpoint",
        )
    for svc, zone in zones.items():
        problems.check(svc in interface, f"{key}.hostedZoneIds.{svc}", zone, "only services in interfaceEndpoints")
        problems.check(
            isinstance(zone, str) and bool(ZONE_ID.fullmatch(zone)),
            f"{key}.hostedZoneIds.{svc}",
            zone,
            "a Route 53 hosted zone id like Z0123456789ABC",
        )
    if problems.items:
        return None
    return SharedEndpoints(transit_gateway_id=tgw, hub_cidr=raw["hubCidr"], hosted_zone_ids=dict(zones))


def _egress(raw: Any, problems: Problems) -> Egress | None:
    key = f"bakehouse:{KEY}.network.egress"
    if not isinstance(raw, Mapping):
        problems.add(key, raw, "an object with mode, targetId and destinationCidr")
        return None
    require_keys(raw, f"{KEY}.network.egress", problems)
    mode, target = raw.get("mode"), raw.get("targetId")
    if problems.check(mode in EGRESS_MODES, f"{key}.mode", mode, ", ".join(EGRESS_MODES)):
        pattern = TGW_ID if mode == "transit-gateway" else PCX_ID
        example = "tgw-0123456789abcdef0" if mode == "transit-gateway" else "pcx-0123456789abcdef0"
        problems.check(
            isinstance(target, str) and bool(pattern.fullmatch(target)), f"{key}.targetId", target, f"an id like {example}"
        )
    _private_cidr(raw.get("destinationCidr"), problems, f"{key}.destinationCidr")
    port = raw.get("proxyPort", 3128)
    low, high = models.bounds(models.Egress, "proxy_port")
    port_ok = isinstance(port, int) and not isinstance(port, bool) and low <= port <= high and port not in (22, 3389)
    problems.check(port_ok, f"{key}.proxyPort", port, f"a TCP port from {low} to {high} (not 22 or 3389)")
    if problems.items:
        return None
    return Egress(mode=mode, target_id=target, destination_cidr=raw["destinationCidr"], proxy_port=port)


def _severity(raw: Any, problems: Problems) -> float:
    key = f"bakehouse:{KEY}.incidentResponse"
    if not isinstance(raw, Mapping):
        problems.add(key, raw, "an object")
        return 0.0
    require_keys(raw, f"{KEY}.incidentResponse", problems)
    value = raw.get("minSeverity", 7.0)
    low, high = models.bounds(models.IncidentResponse, "min_severity")
    ok = isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
    problems.check(ok, f"{key}.minSeverity", value, f"a GuardDuty severity from {low} to {high} (7 = high)")
    return float(value) if ok else 0.0


FORENSIC_GROUP = re.compile(r"sg-[0-9a-f]{8,17}")


def _forensic_source(raw: Any, problems: Problems) -> str | None:
    """Who may reach a contained instance: one CIDR (no wider than /16, so isolation stays isolation)
    or one security group id. Absent: the isolation group admits nothing."""
    if not isinstance(raw, Mapping) or raw.get("forensicSource") is None:
        return None
    value = raw["forensicSource"]
    if isinstance(value, str) and FORENSIC_GROUP.fullmatch(value):
        return value
    try:
        network = ipaddress.ip_network(value) if isinstance(value, str) else None
    except ValueError:
        network = None
    ok = network is not None and network.prefixlen >= 16
    problems.check(
        ok,
        f"bakehouse:{KEY}.incidentResponse.forensicSource",
        value,
        "a CIDR of /16 or narrower (host bits zero) or a security group id (sg-...)",
    )
    return value if ok else None
