"""The `bakehouse:factory` section of the build stack, validated into a frozen value.

Pure (no Pulumi): every problem is collected with the stack's `Problems`, so one error lists them
all, naming the key, the value and what is allowed, before any resource is declared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from estate import models, naming
from estate.aws_rules import RECURRING_SCHEDULE, is_recurring_schedule
from estate.config import ROLE_NAME, Problems, StackConfig, require_keys, section
from estate.stack_files import stack_files

PROJECT_DIR = Path(__file__).resolve().parents[2]
SECTION = "factory"
# The choices are the models' (estate/models.py), declared once.
BASES = models.choices(models.FactoryFamily, "base")
SEVERITIES = models.choices(models.Factory, "severity_threshold")
# Build engines: SSM Automation's BuildImage, or Packer in CodeBuild (components/build/packer_pipeline.py).
ENGINES = models.choices(models.FactoryFamily, "engine")
# Where the Packer engine downloads its pinned release and plugins (checked by SHA-256 in the buildspec).
PACKER_RELEASES_DOMAIN = "releases.hashicorp.com"
# The one environment whose images must always pass a human: auto-approval there is refused.
PROTECTED_ENV = "prod"
# A weekly rebuild of every published family: OS security updates reach images whose base AWS has not replaced.
DEFAULT_FORCED_REBUILD = "rate(7 days)"
# Where each candidate runs as a canary while it is validated (handlers/dev_canary.py); never the
# protected env, whose images wait for approval.
DEFAULT_CANARY_ENV = "dev"
FAMILY = naming.FAMILY
OU_ID = re.compile(r"ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}")
DOMAIN = re.compile(r"\.?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
# The role people assume to answer the factory's aws:approve steps (components/build/factory_roles.py).
APPROVER_ROLE = "BakehouseImageApprover"
# IAM names are ASCII (IAM user guide, "IAM and AWS STS quotas"); \w alone would admit any letter.
PRINCIPAL = re.compile(r"arn:aws:iam::(\d{12}):(role|user)/[\w+=,.@/-]+", re.ASCII)
# SNS protocols a factory topic may deliver to (models.Subscription's protocols), and what their endpoints look like.
SUBSCRIPTION_ENDPOINTS = {
    "email": re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,63}"),
    "https": re.compile(r"https://[^\s]+"),
    "sqs": re.compile(r"arn:aws:sqs:[a-z0-9-]+:\d{12}:[\w.-]+"),
    "lambda": re.compile(r"arn:aws:lambda:[a-z0-9-]+:\d{12}:function:[\w-]+"),
}
# Topics whose silence would hide something: an image nobody is asked to approve waits forever.
REQUIRED_SUBSCRIBERS = ("approvers",)
TOPICS = models.keys_of(models.Subscriptions)
# The golden image's memory-capture tool (packer/scripts/55-memory-capture.sh): AVML's static binary as
# microsoft/avml publishes it on GitHub (outside the build firewall's allow-list, so tools/release.py
# downloads it in CI, checks it against the pinned SHA-256 and keeps it in the scripts bucket).
AVML_SOURCE = re.compile(r"https://github\.com/microsoft/avml/releases/download/v(?P<version>[^/]+)/avml(-minimal)?")
SEMVER = re.compile(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?")
SHA256 = re.compile(r"[0-9a-f]{64}")

DEFAULT_EGRESS = (
    # Amazon Linux 2023 mirrors; its S3-hosted repositories go through the S3 gateway endpoint instead.
    "cdn.amazonlinux.com",
    # Ubuntu: the regional EC2 mirrors and the security pocket.
    ".ec2.archive.ubuntu.com",
    "security.ubuntu.com",
)


@dataclass(frozen=True)
class Family:
    name: str
    base: str  # al2023 | ubuntu2404
    engine: str = "ssm"  # ssm | packer


@dataclass(frozen=True)
class RescanSettings:
    schedule: str
    batch_size: int


@dataclass(frozen=True)
class LifecycleSettings:
    schedule: str
    keep: int
    keep_days: int
    grace_days: int
    prod_retention_years: int
    dry_run: bool


@dataclass(frozen=True)
class Subscription:
    protocol: str
    endpoint: str


@dataclass(frozen=True)
class MemoryCapture:
    version: str
    sha256: str  # lower-case hex; the AMI's bakehouse:avml-sha256 tag carries it
    source: str  # the GitHub release asset tools/release.py downloads

    def as_settings(self) -> dict[str, str]:
        return {"version": self.version, "sha256": self.sha256, "source": self.source}


@dataclass(frozen=True)
class FactoryConfig:
    families: tuple[Family, ...]
    regions: tuple[str, ...]  # distribution regions (the home region always holds the original)
    target_envs: tuple[str, ...]  # workload envs whose accounts receive the images
    target_accounts: tuple[str, ...]  # their account ids, in target_envs order
    workload_ous: tuple[str, ...]  # OUs the catalog portfolio is shared to
    auto_approve_envs: tuple[str, ...]
    approvers: tuple[str, ...]  # IAM principals (ARNs) who may approve an image
    severity_threshold: str
    max_catalog_versions: int
    launch_role_names: tuple[str, ...]  # principals (by role name) allowed to launch from the portfolio
    egress_domains: tuple[str, ...]
    rescan: RescanSettings
    lifecycle: LifecycleSettings
    # Who may assume the approver role (people's roles, e.g. SSO permission-set roles in the estate).
    approver_principals: tuple[str, ...] = ()
    # topic (approvers | notifications) -> its subscribers
    subscriptions: Mapping[str, tuple[Subscription, ...]] = field(default_factory=dict)
    # catalogTagOptions: what every catalog launch is tagged with beside its env
    catalog_owner: str | None = None
    catalog_cost_centre: str | None = None
    # catalogRegionalPortfolios: a portfolio and product in each distribution region too (default off)
    catalog_regions: tuple[str, ...] = ()
    # When the base-image check runs (handlers/base_image_check.py): a family is rebuilt when AWS has
    # published a newer base than the one its image was built from.
    rebuild_schedule: str = "rate(1 day)"
    # forcedRebuildSchedule: every published family is rebuilt on this clock even when its base is
    # unchanged, so the OS updates the build applies reach the images; None ("off"): never forced.
    forced_rebuild_schedule: str | None = DEFAULT_FORCED_REBUILD
    # memoryCapture: the pinned AVML build the release uploads and every image carries (None: not set;
    # the bundle then carries no pins and the build stops at its memory-capture step).
    memory_capture: MemoryCapture | None = None
    # canaryEnv: where each candidate runs as a canary before approval (handlers/dev_canary.py)
    canary_env: str = DEFAULT_CANARY_ENV

    @property
    def catalog_tag_options(self) -> dict[str, tuple[str, ...]]:
        """TagOption key -> allowed values on the portfolio and product (components/build/service_catalog.py)."""
        options: dict[str, tuple[str, ...]] = {"env": self.target_envs}
        if self.catalog_owner:
            options["owner"] = (self.catalog_owner,)
        if self.catalog_cost_centre:
            options["cost-centre"] = (self.catalog_cost_centre,)
        return options

    @property
    def packer_families(self) -> tuple[Family, ...]:
        return tuple(f for f in self.families if f.engine == "packer")

    def as_settings(self) -> dict[str, Any]:
        """What the handlers and documents read at runtime (the factory settings parameter)."""
        return {
            "families": {f.name: f.base for f in self.families},
            # tools/release.py: a packer family is released through its CodePipeline, not Bakehouse-Pipeline.
            "engines": {f.name: f.engine for f in self.families},
            "regions": list(self.regions),
            # Nothing per env: the targets are one parameter each under /bakehouse/factory/targets
            # (components/build/factory_targets.py), keeping this within the Standard tier's 4,096 characters.
            "autoApproveEnvs": list(self.auto_approve_envs),
            "severityThreshold": self.severity_threshold,
            "maxCatalogVersions": self.max_catalog_versions,
            "rescanBatchSize": self.rescan.batch_size,
            "lifecycle": {
                "keep": self.lifecycle.keep,
                "keepDays": self.lifecycle.keep_days,
                "graceDays": self.lifecycle.grace_days,
                "prodRetentionYears": self.lifecycle.prod_retention_years,
                "dryRun": self.lifecycle.dry_run,
            },
            **({"memoryCapture": self.memory_capture.as_settings()} if self.memory_capture else {}),
            "canaryEnv": self.canary_env,
        }

    @property
    def approval_environment(self) -> str:
        """The most protected env an image reaches decides its approval: one pass serves every target."""
        if PROTECTED_ENV in self.target_envs:
            return PROTECTED_ENV
        return "dev" if set(self.target_envs) == {"dev"} else "uat"

    @property
    def auto_approve(self) -> bool:
        return all(env in self.auto_approve_envs for env in self.target_envs)


# Keys of the removed copy-mode distribution: refused with the reason rather than as mere typos.
_REMOVED_KEYS = ("distributionMode", "distribution")


def factory_config(cfg: StackConfig, project_dir: Path = PROJECT_DIR) -> FactoryConfig:
    """Parse and validate `bakehouse:factory` of the build stack; raises ConfigError with every problem."""
    consumers = consumer_families(project_dir)
    return section(cfg, SECTION, lambda raw, problems: parse_factory(raw, cfg, problems, consumers))


def consumer_families(project_dir: Path) -> dict[str, tuple[str, ...]]:
    """env -> the AMI families its workload stack file reads (`bakehouse:workload.amiFamilies`)."""
    found = {}
    for stack, config in stack_files(project_dir).items():
        workload = config.get("bakehouse:workload")
        if config.get("bakehouse:role") == "workload" and isinstance(workload, Mapping):
            families = workload.get("amiFamilies")
            if isinstance(families, list):
                found[str(config.get("bakehouse:env", stack))] = tuple(str(f) for f in families)
    return found


def parse_factory(
    raw: Mapping[str, Any], cfg: StackConfig, problems: Problems, consumers: Mapping[str, Sequence[str]] | None = None
) -> FactoryConfig | None:
    key = f"bakehouse:{SECTION}"
    for removed in _REMOVED_KEYS:
        if removed in raw:
            problems.add(
                f"{key}.{removed}",
                raw[removed],
                "nothing: copy distribution was removed; images are "
                "shared with each target account (the key policies admit them through EC2)",
            )
    require_keys({k: v for k, v in raw.items() if k not in _REMOVED_KEYS}, SECTION, problems)
    workloads = cfg.estate.accounts.workloads

    families = _families(raw.get("families"), problems)

    other_regions = [r for r in cfg.estate.allowed_regions if r != cfg.region]
    regions = _strings(
        raw.get("regions", []),
        f"{key}.regions",
        problems,
        allow_empty=True,
        allowed=", ".join(other_regions) or "none (only the home region is allowed)",
        valid=lambda r: r in other_regions,
    )

    envs = _strings(
        raw.get("targetEnvs", sorted(workloads)),
        f"{key}.targetEnvs",
        problems,
        allowed=", ".join(sorted(workloads)),
        valid=lambda e: e in workloads,
    )

    ous = _strings(
        raw.get("workloadOus"),
        f"{key}.workloadOus",
        problems,
        allowed="organizational unit ids like ou-ab12-cd34ef56",
        valid=lambda o: bool(OU_ID.fullmatch(o)),
    )

    auto = _strings(
        raw.get("autoApproveEnvs", []),
        f"{key}.autoApproveEnvs",
        problems,
        allow_empty=True,
        allowed=", ".join(e for e in sorted(envs) if e != PROTECTED_ENV)
        + f" (never {PROTECTED_ENV}: its images always need a human approval)",
        valid=lambda e: e in envs and e != PROTECTED_ENV,
    )

    approvers = _strings(
        raw.get("approvers"),
        f"{key}.approvers",
        problems,
        allowed=f"IAM role or user ARNs in the build account, e.g. arn:aws:iam::{cfg.account_id}:role/BakehouseImageApprover",
        valid=lambda a: bool(re.fullmatch(rf"arn:aws:iam::{cfg.account_id}:(role|user)/[\w+=,.@/-]+", a, re.ASCII)),
    )

    approver_role = f"arn:aws:iam::{cfg.account_id}:role/{APPROVER_ROLE}"
    if approvers and approver_role not in approvers:
        problems.add(
            f"{key}.approvers",
            list(approvers),
            f"a list including {approver_role}, the role the approver principals assume to approve",
        )
    estate_accounts = set(cfg.estate.accounts.all_ids)
    principals = _strings(
        raw.get("approverPrincipals"),
        f"{key}.approverPrincipals",
        problems,
        allowed="IAM role or user ARNs in the estate's accounts (the people who approve images)",
        valid=lambda p: bool((m := PRINCIPAL.fullmatch(p)) and m.group(1) in estate_accounts),
    )
    subscriptions = _subscriptions(raw.get("subscriptions"), f"{key}.subscriptions", problems)

    severity = raw.get("severityThreshold", "HIGH")
    problems.check(severity in SEVERITIES, f"{key}.severityThreshold", severity, ", ".join(SEVERITIES))

    max_versions = _integer(
        raw.get("maxCatalogVersions", 3), f"{key}.maxCatalogVersions", models.Factory, "max_catalog_versions", problems
    )

    launch_roles = _strings(
        raw.get("launchRoleNames", []),
        f"{key}.launchRoleNames",
        problems,
        allow_empty=True,
        allowed="IAM role names (1-64 of letters, digits, +=,.@_-)",
        valid=lambda n: bool(ROLE_NAME.fullmatch(n)),
    )

    domains = _strings(
        raw.get("egressDomains", list(DEFAULT_EGRESS)),
        f"{key}.egressDomains",
        problems,
        allowed="lower-case domain names, a leading dot for a whole subdomain (e.g. .ubuntu.com); no wildcards, no IP addresses",
        valid=lambda d: bool(DOMAIN.fullmatch(d)),
    )

    rescan = _rescan(raw.get("rescan", {}), f"{key}.rescan", problems)
    owner, cost_centre = _catalog_tag_options(raw.get("catalogTagOptions", {}), f"{key}.catalogTagOptions", problems)
    regional = raw.get("catalogRegionalPortfolios", False)
    problems.check(isinstance(regional, bool), f"{key}.catalogRegionalPortfolios", regional, "true or false")
    lifecycle = _lifecycle(raw.get("lifecycle", {}), f"{key}.lifecycle", problems)
    rebuild_schedule = _schedule(raw.get("rebuildSchedule", "rate(1 day)"), f"{key}.rebuildSchedule", problems)
    forced = raw.get("forcedRebuildSchedule", DEFAULT_FORCED_REBUILD)
    forced_rebuild_schedule = (
        None if forced == "off" else _schedule(forced, f"{key}.forcedRebuildSchedule", problems, also='or "off"')
    )
    memory_capture = _memory_capture(raw.get("memoryCapture"), f"{key}.memoryCapture", problems)
    canary_env = raw.get("canaryEnv", DEFAULT_CANARY_ENV)
    problems.check(
        canary_env in envs and canary_env != PROTECTED_ENV,
        f"{key}.canaryEnv",
        canary_env,
        "one of the target envs "
        + ", ".join(e for e in envs if e != PROTECTED_ENV)
        + f" (never {PROTECTED_ENV}: it sees images only after approval)",
    )

    if any(f.engine == "packer" for f in families) and PACKER_RELEASES_DOMAIN not in domains:
        problems.add(
            f"{key}.egressDomains",
            list(domains),
            f"{PACKER_RELEASES_DOMAIN} among them while a family builds with engine packer: "
            "CodeBuild downloads the pinned Packer release and plugins from there",
        )

    built = {f.name for f in families}
    for env in envs:
        # A family a target env reads but nobody builds leaves its parameter empty forever.
        for family in (consumers or {}).get(env, ()):
            if families and family not in built:
                problems.add(f"{key}.families", sorted(built), f"every family the target envs read; stack {env} reads {family}")

    if problems.items:
        return None
    return FactoryConfig(
        families=families,
        regions=regions,
        target_envs=envs,
        target_accounts=tuple(workloads[e] for e in envs),
        workload_ous=ous,
        auto_approve_envs=auto,
        approvers=approvers,
        severity_threshold=severity,
        max_catalog_versions=max_versions,
        launch_role_names=launch_roles,
        egress_domains=domains,
        rescan=rescan,
        lifecycle=lifecycle,
        approver_principals=principals,
        subscriptions=subscriptions,
        catalog_regions=regions if regional is True else (),
        catalog_owner=owner,
        catalog_cost_centre=cost_centre,
        rebuild_schedule=rebuild_schedule,
        forced_rebuild_schedule=forced_rebuild_schedule,
        memory_capture=memory_capture,
        canary_env=canary_env,
    )


def _memory_capture(raw: Any, key: str, problems: Problems) -> MemoryCapture | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.add(key, raw, "an object {version, sha256, source}")
        return None
    require_keys(raw, key.removeprefix("bakehouse:"), problems)
    version, sha256, source = raw.get("version"), raw.get("sha256"), raw.get("source")
    ok = problems.check(
        isinstance(version, str) and bool(SEMVER.fullmatch(version)),
        f"{key}.version",
        version,
        "an AVML release version like 0.14.0",
    )
    ok &= problems.check(
        isinstance(sha256, str) and bool(SHA256.fullmatch(sha256)),
        f"{key}.sha256",
        sha256,
        "the release asset's SHA-256: 64 lower-case hex digits",
    )
    match = AVML_SOURCE.fullmatch(source) if isinstance(source, str) else None
    ok &= problems.check(
        match is not None,
        f"{key}.source",
        source,
        "AVML's GitHub release asset, https://github.com/microsoft/avml/releases/download/v<version>/avml",
    )
    if match and ok:
        ok &= problems.check(
            match.group("version") == version,
            f"{key}.source",
            source,
            f"the asset of the pinned version, .../download/v{version}/avml",
        )
    return MemoryCapture(version, sha256, source) if ok else None


# Service Catalog TagOption values: 1-256 characters (API reference, CreateTagOption).
TAG_OPTION_VALUE = re.compile(r"[\w .:/=+@-]{1,256}")


def _catalog_tag_options(raw: Any, key: str, problems: Problems) -> tuple[str | None, str | None]:
    if not isinstance(raw, Mapping):
        problems.add(key, raw, "an object {owner: ..., costCentre: ...}")
        return None, None
    require_keys(raw, key.removeprefix("bakehouse:"), problems)
    values = []
    for name in ("owner", "costCentre"):
        value = raw.get(name)
        if value is not None and not (isinstance(value, str) and TAG_OPTION_VALUE.fullmatch(value)):
            problems.add(f"{key}.{name}", value, "1-256 letters, digits, spaces and _ . : / = + @ -")
            value = None
        values.append(value)
    return values[0], values[1]


def _families(raw: Any, problems: Problems) -> tuple[Family, ...]:
    key = f"bakehouse:{SECTION}.families"
    if not isinstance(raw, Mapping) or not raw:
        problems.add(
            key,
            raw,
            "an object of family name -> {base: " + " | ".join(BASES) + ", engine: " + " | ".join(ENGINES) + " (default ssm)}",
        )
        return ()
    families = []
    for name, spec in raw.items():
        if not FAMILY.fullmatch(str(name)):
            problems.add(key, name, "family names of 2-31 lower-case letters, digits and dashes, starting with a letter")
            continue
        if not isinstance(spec, Mapping):
            problems.add(f"{key}.{name}", spec, "an object with base: " + " | ".join(BASES))
            continue
        require_keys(spec, f"{SECTION}.families.{name}", problems)
        base = spec.get("base")
        engine = spec.get("engine", "ssm")
        good_engine = problems.check(engine in ENGINES, f"{key}.{name}.engine", engine, ", ".join(ENGINES))
        if problems.check(base in BASES, f"{key}.{name}.base", base, ", ".join(BASES)) and good_engine:
            families.append(Family(str(name), base, engine))
    return tuple(families)


def _subscriptions(raw: Any, key: str, problems: Problems) -> dict[str, tuple[Subscription, ...]]:
    shape = "an object of topic (" + ", ".join(TOPICS) + ") -> a list of {protocol, endpoint}"
    if not isinstance(raw, Mapping):
        problems.add(key, raw, shape)
        return {}
    require_keys(raw, key.removeprefix("bakehouse:"), problems)
    found: dict[str, tuple[Subscription, ...]] = {}
    for topic in TOPICS:
        entries = raw.get(topic, [])
        required = topic in REQUIRED_SUBSCRIBERS
        if not isinstance(entries, list) or (required and not entries):
            problems.add(
                f"{key}.{topic}",
                entries,
                ("a non-empty" if required else "a")
                + " list of {protocol, endpoint}"
                + (": nobody would hear of images awaiting approval" if required else ""),
            )
            continue
        subs = []
        for entry in entries:
            protocol = entry.get("protocol") if isinstance(entry, Mapping) else None
            endpoint = entry.get("endpoint") if isinstance(entry, Mapping) else None
            pattern = SUBSCRIPTION_ENDPOINTS.get(protocol)
            if (
                not isinstance(entry, Mapping)
                or set(entry) != set(models.keys_of(models.Subscription))
                or pattern is None
                or not isinstance(endpoint, str)
                or not pattern.fullmatch(endpoint)
            ):
                problems.add(
                    f"{key}.{topic}[]",
                    entry,
                    "{protocol, endpoint} with protocol one of "
                    + ", ".join(SUBSCRIPTION_ENDPOINTS)
                    + " and an endpoint of that protocol",
                )
                continue
            subs.append(Subscription(protocol, endpoint))
        found[topic] = tuple(subs)
    return found


def _rescan(raw: Any, key: str, problems: Problems) -> RescanSettings | None:
    if not isinstance(raw, Mapping):
        problems.add(key, raw, "an object with " + ", ".join(models.keys_of(models.Rescan)))
        return None
    require_keys(raw, key.removeprefix("bakehouse:"), problems)
    schedule = _schedule(raw.get("schedule", "rate(1 day)"), f"{key}.schedule", problems)
    batch = _integer(raw.get("batchSize", 10), f"{key}.batchSize", models.Rescan, "batch_size", problems)
    return RescanSettings(schedule, batch)


def _lifecycle(raw: Any, key: str, problems: Problems) -> LifecycleSettings | None:
    if not isinstance(raw, Mapping):
        problems.add(key, raw, "an object with " + ", ".join(models.keys_of(models.Lifecycle)))
        return None
    require_keys(raw, key.removeprefix("bakehouse:"), problems)
    schedule = _schedule(raw.get("schedule", "rate(1 day)"), f"{key}.schedule", problems)
    keep = _integer(raw.get("keep", 3), f"{key}.keep", models.Lifecycle, "keep", problems)
    keep_days = _integer(raw.get("keepDays", 30), f"{key}.keepDays", models.Lifecycle, "keep_days", problems)
    grace = _integer(raw.get("graceDays", 14), f"{key}.graceDays", models.Lifecycle, "grace_days", problems)
    years = _integer(
        raw.get("prodRetentionYears", 1), f"{key}.prodRetentionYears", models.Lifecycle, "prod_retention_years", problems
    )
    dry_run = raw.get("dryRun", False)
    problems.check(isinstance(dry_run, bool), f"{key}.dryRun", dry_run, "true or false")
    return LifecycleSettings(schedule, keep, keep_days, grace, years, dry_run is True)


def _schedule(value: Any, key: str, problems: Problems, also: str = "") -> str:
    problems.check(
        is_recurring_schedule(value),
        key,
        value,
        f"a recurring EventBridge Scheduler expression: {RECURRING_SCHEDULE}" + (f" {also}" if also else ""),
    )
    return value if isinstance(value, str) else ""


def _integer(value: Any, key: str, model: type[models.Model], field: str, problems: Problems) -> int:
    """An integer in the range the model's field declares (estate/models.py, the one place it is written)."""
    low, high = models.bounds(model, field)
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    problems.check(ok, key, value, f"an integer from {low} to {high}")
    return value if ok else low


def _strings(
    value: Any,
    key: str,
    problems: Problems,
    *,
    allowed: str,
    valid,
    allow_empty: bool = False,
) -> tuple[str, ...]:
    if not isinstance(value, list) or (not value and not allow_empty):
        problems.add(key, value, f"a {'' if allow_empty else 'non-empty '}list of: {allowed}")
        return ()
    good = []
    for item in value:
        if isinstance(item, str) and valid(item):
            good.append(item)
        else:
            problems.add(f"{key}[]", item, allowed)
    dupes = sorted({i for i in good if good.count(i) > 1})
    for dupe in dupes:
        problems.add(key, dupe, "each entry once")
    return tuple(dict.fromkeys(good))
