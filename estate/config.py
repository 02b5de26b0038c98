"""Typed stack configuration, validated once before any resource is declared.

Pure: takes plain mappings (what `pulumi.Config` and the stack YAML files hold) and returns frozen
dataclasses, so it is testable without a Pulumi runtime. Every problem is collected and raised
together, each naming the stack, the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import yaml

# The id and name shapes the handlers check at run time, so config accepts exactly what they do.
from handlers.contract import ACCOUNT_ID as ACCOUNT_ID
from handlers.contract import ENV_NAME as ENV_NAME
from handlers.contract import REGION as REGION
from handlers.contract import ROLE_NAME as ROLE_NAME

from .aws_rules import az_letters, rfc1918_network
from .models import MAX_AZS as MAX_AZS
from .models import MIN_AZS as MIN_AZS
from .models import ROLES as ROLES
from .models import ProjectKeys, Role, section_keys
from .models import keys_of as keys_of

CORE_ACCOUNTS = ("management", "security", "build")
ORG_ID = re.compile(r"o-[a-z0-9]{10,32}")
# /16 leaves room for per-AZ /20s; smaller than /24 cannot hold subnets for endpoints in several AZs.
MIN_PREFIX, MAX_PREFIX = 16, 24
# The build VPC holds three subnet tiers (build, firewall, egress) for up to six AZs: a quarter per tier,
# an eighth of that per AZ, each at least /28 (the smallest subnet AWS allows), so /23 or larger
# (components/build/build_network.py plan_subnets carves it).
BUILD_MAX_PREFIX = 28 - 5
PROJECT_DIR = Path(__file__).resolve().parent.parent

# What the example estate ships and no real estate holds: account ids of one repeated digit and AWS's
# documentation ids, example organization/root ids, mail domains reserved for examples (RFC 2606),
# and ciphertexts that say they are placeholders.
EXAMPLE_ACCOUNT_ID = re.compile(r"(\d)\1{11}|123456789012|111122223333|444455556666")
EXAMPLE_ORG_ID = re.compile(r"o-(example\w*|a1b2c3d4e5)|r-(exam\w*|a1b2)")
EXAMPLE_EMAIL = re.compile(r"[^@\s]+@(\w[\w-]*\.)*example\.(com|net|org)", re.IGNORECASE)
PLACEHOLDER_CIPHERTEXT = re.compile(r"placeholder|example|notarealsecret", re.IGNORECASE)


class ConfigError(ValueError):
    """Raised with every problem of a stack's configuration at once, headed by the stack's file (each
    problem names the file it is in: a project-level key's may be Pulumi.yaml)."""

    def __init__(self, stack: str, problems: list[str], file: str | None = None):
        self.stack = stack
        self.problems = problems
        self.file = file or f"Pulumi.{stack}.yaml"
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{self.file} has {count} {noun}:\n" + "\n".join(f"  - {p}" for p in problems))


class SecretText(str):
    """A config value read as a secret: validated like any text, never shown in a problem."""


class EncryptedText(SecretText):
    """A secret value that was set with `pulumi config set --secret` (encrypted in its stack file)."""


# Keys set in Pulumi.yaml (project-level config, shared by every stack), unless a stack file sets its
# own value (which then wins, as the CLI merges them); every other key lives in the stack's own file.
_PROJECT_KEYS = frozenset(keys_of(ProjectKeys))


def file_for(stack: str, key: str, stack_file_keys: Collection[str] = ()) -> str:
    """The file a `bakehouse:` key's value came from: Pulumi.yaml for a project-level key the stack file
    does not set (`stack_file_keys`: the keys it sets, namespace optional), else the stack's own file."""
    top = re.split(r"[.\[]", key.removeprefix("bakehouse:"), maxsplit=1)[0]
    overridden = top in stack_file_keys or f"bakehouse:{top}" in stack_file_keys
    return "Pulumi.yaml" if top in _PROJECT_KEYS and not overridden else f"Pulumi.{stack}.yaml"


class Problems:
    """Collects validation problems for one stack; `raise_if_any` raises them together."""

    def __init__(self, stack: str, stack_file_keys: Collection[str] = ()):
        self.stack = stack
        self.stack_file_keys = frozenset(stack_file_keys)
        self.items: list[str] = []

    def add(self, key: str, value: Any, allowed: str) -> None:
        where = file_for(self.stack, key, self.stack_file_keys)
        self.items.append(f"stack {self.stack}: {where}: {key} is {_show(value)}; allowed: {allowed}")

    def check(self, ok: bool, key: str, value: Any, allowed: str) -> bool:
        if not ok:
            self.add(key, value, allowed)
        return ok

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.stack, self.items)


def _show(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, SecretText):
        return "a secret (not shown)"
    if isinstance(value, str):
        return f"'{value}'"
    return json.dumps(value, default=str)


@dataclass(frozen=True)
class Accounts:
    """Account ids of the estate, from project-level `bakehouse:accounts`."""

    management: str
    security: str
    build: str
    workloads: Mapping[str, str]  # env name -> account id, e.g. {"dev": "...", "prod": "..."}

    def for_env(self, env: str) -> str:
        return self.workloads[env]

    @property
    def all_ids(self) -> tuple[str, ...]:
        return (self.management, self.security, self.build, *self.workloads.values())


@dataclass(frozen=True)
class NetworkConfig:
    cidr: str
    azs: int

    def az_names(self, region: str) -> tuple[str, ...]:
        # Pinned by letter so adding AZs later appends rather than reorders (reordering replaces subnets);
        # the region's own letters, which config checked the count against.
        return tuple(f"{region}{letter}" for letter in (az_letters(region) or "abcdef")[: self.azs])


@dataclass(frozen=True)
class EstateConfig:
    """What every stack knows of the whole estate (project-level config)."""

    organization_id: str
    accounts: Accounts
    allowed_regions: tuple[str, ...]
    home_region: str
    deploy_role_name: str

    def deploy_role_arn(self, account_id: str) -> str:
        return f"arn:aws:iam::{account_id}:role/{self.deploy_role_name}"


@dataclass(frozen=True)
class StackConfig:
    stack: str
    role: Role
    env: str  # workload env name (dev/uat/prod); the role name for shared stacks
    region: str
    account_id: str
    estate: EstateConfig
    network: NetworkConfig | None = None
    # Role-specific sections (`bakehouse:workload`, `bakehouse:factory`, ...), validated by the
    # capability that owns them through `section()`; kept raw here so this module stays small.
    sections: Mapping[str, Any] = field(default_factory=dict)

    @property
    def default_tags(self) -> dict[str, str]:
        return {
            "bakehouse:stack": self.stack,
            "bakehouse:env": self.env,
            "bakehouse:managed-by": "pulumi",
        }

    @property
    def deploy_role_arn(self) -> str:
        return self.estate.deploy_role_arn(self.account_id)


# Keys the loader reads; everything else under `bakehouse:` is a role section.
_COMMON_KEYS = {"role", "region", "env", "network"}


def parse_stack_config(
    stack: str,
    values: Mapping[str, Any],
    sibling_networks: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    deploying: bool | None = None,
    project_dir: Path = PROJECT_DIR,
    stack_file_keys: Collection[str] = (),
) -> StackConfig:
    """Validate one stack's `bakehouse:` config (project-level keys merged in) into a StackConfig.

    `values` maps keys without the `bakehouse:` prefix to decoded values (objects already parsed).
    `sibling_networks` maps other stacks' names to their `network` sections so overlapping CIDRs
    across the estate are caught in whichever stack is run.
    `deploying` (default: a real engine's update, see `deploying_for_real`) also refuses the example
    estate's values in the stack files under `project_dir`.
    `stack_file_keys`: the keys the stack's own file sets, so a project-level key it overrides is named by it.
    """
    problems = Problems(stack, stack_file_keys)
    if deploying_for_real() if deploying is None else deploying:
        problems.items.extend(example_problems(stack, project_dir))
    estate = _parse_estate(values, problems)

    raw_role = values.get("role")
    role: Role | None = raw_role if _is_role(raw_role) else None
    role_ok = problems.check(role is not None, "bakehouse:role", raw_role, ", ".join(ROLES))

    region = values.get("region", estate.home_region if estate else None)
    if estate is not None:
        problems.check(
            region in estate.allowed_regions,
            "bakehouse:region",
            region,
            ", ".join(estate.allowed_regions),
        )

    env = values.get("env", stack if role == "workload" else raw_role)
    account_id = None
    if role is not None and estate is not None:
        account_id = _account_for(role, env, estate.accounts, problems)

    network = None
    if role in ("workload", "build"):
        network = _parse_network(values.get("network"), problems, role, region if isinstance(region, str) else None)
        if network is not None:
            _check_overlaps(stack, network, sibling_networks or {}, problems)
    elif role_ok and "network" in values:
        problems.add("bakehouse:network", values["network"], f"only on workload and build stacks, not {role}")

    problems.raise_if_any()
    assert role is not None and estate is not None and account_id is not None  # guaranteed by raise_if_any above
    sections = {k: v for k, v in values.items() if k not in _COMMON_KEYS | _PROJECT_KEYS}
    return StackConfig(
        stack=stack,
        role=role,
        env=env,
        region=region,
        account_id=account_id,
        estate=estate,
        network=network,
        sections=sections,
    )


def _is_role(value: object) -> TypeGuard[Role]:
    return value in ROLES


def section(cfg: StackConfig, key: str, parse: Callable[[Mapping[str, Any], Problems], Any]) -> Any:
    """Parse a role-specific section with the stack's problem collector; raises on any problem."""
    problems = Problems(cfg.stack)
    raw = cfg.sections.get(key, {})
    if not isinstance(raw, Mapping):
        problems.add(f"bakehouse:{key}", raw, "an object")
        problems.raise_if_any()
    parsed = parse(raw, problems)
    problems.raise_if_any()
    return parsed


def _parse_estate(values: Mapping[str, Any], problems: Problems) -> EstateConfig | None:
    org_id = values.get("organizationId")
    problems.check(
        isinstance(org_id, str) and bool(ORG_ID.fullmatch(org_id)),
        "bakehouse:organizationId",
        org_id,
        "an organization id like o-abc123defg",
    )

    regions = values.get("allowedRegions")
    if not (isinstance(regions, list) and regions and all(isinstance(r, str) for r in regions)):
        problems.add("bakehouse:allowedRegions", regions, "a non-empty list of region names")
        regions = []
    for r in regions:
        problems.check(bool(REGION.fullmatch(r)), "bakehouse:allowedRegions[]", r, "region names like eu-west-1")

    home = values.get("homeRegion")
    problems.check(home in regions, "bakehouse:homeRegion", home, ", ".join(regions) or "one of allowedRegions")

    role_name = values.get("deployRoleName", "BakehouseDeploy")
    problems.check(
        isinstance(role_name, str) and bool(ROLE_NAME.fullmatch(role_name)),
        "bakehouse:deployRoleName",
        role_name,
        "an IAM role name (1-64 of letters, digits, +=,.@_-)",
    )

    accounts = _parse_accounts(values.get("accounts"), problems)
    # The string checks repeat what the problems above say, for the type checker.
    if accounts is None or problems.items or not isinstance(org_id, str) or not isinstance(home, str):
        return None
    return EstateConfig(org_id, accounts, tuple(regions), home, role_name)


def _parse_accounts(raw: Any, problems: Problems) -> Accounts | None:
    if not isinstance(raw, Mapping):
        problems.add("bakehouse:accounts", raw, "an object of account name -> 12-digit account id")
        return None
    ok = True
    for name in CORE_ACCOUNTS:
        if name not in raw:
            problems.add(f"bakehouse:accounts.{name}", None, "a 12-digit account id")
            ok = False
    for name, account_id in raw.items():
        if name not in CORE_ACCOUNTS and not ENV_NAME.fullmatch(str(name)):
            problems.add("bakehouse:accounts", name, "management, security, build, or a workload env name like dev")
            ok = False
        if not (isinstance(account_id, str) and ACCOUNT_ID.fullmatch(account_id)):
            problems.add(f"bakehouse:accounts.{name}", account_id, "a 12-digit account id (quoted)")
            ok = False
    ids = [v for v in raw.values() if isinstance(v, str)]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    for dupe in dupes:
        problems.add("bakehouse:accounts", dupe, "each account id once (one account per role)")
        ok = False
    if not ok:
        return None
    workloads = {k: v for k, v in raw.items() if k not in CORE_ACCOUNTS}
    return Accounts(raw["management"], raw["security"], raw["build"], workloads)


def _account_for(role: str, env: Any, accounts: Accounts, problems: Problems) -> str | None:
    if role == "org":
        return accounts.management
    if role == "security":
        return accounts.security
    if role == "build":
        return accounts.build
    if env not in accounts.workloads:
        allowed = ", ".join(sorted(accounts.workloads)) or "a workload env named in bakehouse:accounts"
        problems.add("bakehouse:env", env, allowed)
        return None
    return accounts.workloads[env]


def _parse_network(raw: Any, problems: Problems, role: str = "workload", region: str | None = None) -> NetworkConfig | None:
    if not isinstance(raw, Mapping):
        problems.add("bakehouse:network", raw, "an object with cidr and azs")
        return None
    require_keys(raw, "network", problems)
    cidr, azs = raw.get("cidr"), raw.get("azs", 2)
    ok = _check_cidr(cidr, problems)
    if ok and role == "build" and isinstance(cidr, str):
        ok = problems.check(
            ipaddress.ip_network(cidr).prefixlen <= BUILD_MAX_PREFIX,
            "bakehouse:network.cidr",
            cidr,
            f"a /{BUILD_MAX_PREFIX} or larger range on the build stack: it holds three subnet tiers for up to six AZs, "
            "each at least /28",
        )
    ok &= problems.check(
        isinstance(azs, int) and not isinstance(azs, bool) and MIN_AZS <= azs <= MAX_AZS,
        "bakehouse:network.azs",
        azs,
        f"an integer from {MIN_AZS} to {MAX_AZS}",
    )
    letters = az_letters(region) if region else None
    if ok and region and letters is None:
        ok = problems.check(
            False,
            "bakehouse:region",
            region,
            "a region in estate/aws_rules.py AZ_LETTERS: that table lacks it, so its Availability Zones cannot be "
            "checked (add its zone letters from the AWS page Regions and Availability Zones)",
        )
    elif ok and region and letters is not None and isinstance(azs, int):
        ok = problems.check(
            azs <= len(letters),
            "bakehouse:network.azs",
            azs,
            f"at most {len(letters)} in {region} (its zones are {', '.join(region + x for x in letters)})",
        )
    # _check_cidr accepts strings only; the isinstance says so to the type checker.
    return NetworkConfig(cidr, azs) if ok and isinstance(cidr, str) else None


def _check_cidr(cidr: Any, problems: Problems) -> bool:
    allowed = (
        f"a private IPv4 network (RFC 1918: inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16) with a prefix "
        f"from /{MIN_PREFIX} to /{MAX_PREFIX}, e.g. 10.20.0.0/16"
    )
    net = rfc1918_network(cidr)
    ok = net is not None and MIN_PREFIX <= net.prefixlen <= MAX_PREFIX
    return problems.check(ok, "bakehouse:network.cidr", cidr, allowed)


def _check_overlaps(
    stack: str,
    network: NetworkConfig,
    siblings: Mapping[str, Mapping[str, Any]],
    problems: Problems,
) -> None:
    mine = ipaddress.ip_network(network.cidr)
    for other, raw in sorted(siblings.items()):
        if other == stack or not isinstance(raw, Mapping):
            continue
        their_cidr = raw.get("cidr")
        if their_cidr is None:
            continue  # no network section there
        try:
            theirs = ipaddress.ip_network(their_cidr, strict=True)
        except (TypeError, ValueError):
            continue  # that stack's own run reports its bad CIDR
        if mine.overlaps(theirs):
            problems.add("bakehouse:network.cidr", network.cidr, f"a range that does not overlap stack {other}'s {theirs}")


def require_keys(raw: Mapping[str, Any], key: str, problems: Problems) -> None:
    """Reject unknown keys in the section at `key` (a dotted path like "factory.rescan") so a typo is an
    error, not a silently ignored setting. The keys are the section model's (estate/models.py): a key is
    declared once, and a parser run alone refuses what the model pass would."""
    allowed = set(section_keys(key))
    for unknown in sorted(set(raw) - allowed):
        problems.add(
            f"bakehouse:{key}.{unknown}",
            raw[unknown],
            "one of the keys " + ", ".join(sorted(allowed)) + did_you_mean(unknown, allowed),
        )


def did_you_mean(unknown: object, allowed: Iterable[str]) -> str:
    """' (did you mean X?)' for a near miss of one of `allowed`, else ''."""
    close = difflib.get_close_matches(str(unknown), sorted(allowed), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# --- the example estate deploys nowhere ------------------------------------------------------------
def deploying_for_real() -> bool:
    """True only in a real engine's `pulumi up`: previews and the offline mock runs may use examples."""
    from pulumi.runtime import mocks, settings  # imported here: this module stays usable without Pulumi

    monitor = settings.get_monitor()
    if monitor is None or isinstance(monitor, mocks.MockMonitor):
        return False
    return not settings.is_dry_run()


def example_problems(stack: str, project_dir: Path) -> list[str]:
    """Every example id, example email and placeholder ciphertext in Pulumi.yaml and the stack's file,
    named by file and key (ciphertexts are not echoed)."""
    found = []
    for file_name, unwrap in (("Pulumi.yaml", True), (f"Pulumi.{stack}.yaml", False)):
        path = project_dir / file_name
        doc = yaml.safe_load(path.read_text()) if path.exists() else None
        config = (doc or {}).get("config") or {} if isinstance(doc, Mapping) else {}
        for key, raw in config.items():
            value = raw.get("value") if unwrap and isinstance(raw, Mapping) and "value" in raw else raw
            for where, leaf in _leaves(str(key), value):
                if isinstance(leaf, Mapping):  # {"secure": ciphertext}
                    found.append(
                        f"stack {stack}: {file_name}: {where} is a placeholder ciphertext; allowed: a value "
                        f"set with `pulumi config set --secret {key} <value> -s {stack}`"
                    )
                elif _is_example(leaf):
                    found.append(
                        f"stack {stack}: {file_name}: {where} is {_show(leaf)}; allowed: your estate's real "
                        "value (this is an example; the example estate deploys nowhere)"
                    )
    return found


def _leaves(where: str, value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and set(value) == {"secure"}:
        if PLACEHOLDER_CIPHERTEXT.search(str(value["secure"])):
            yield where, value
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _leaves(f"{where}.{key}", inner)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _leaves(f"{where}[{index}]", inner)
    else:
        yield where, value


def _is_example(value: Any) -> bool:
    text = str(value)
    return any(pattern.fullmatch(text) for pattern in (EXAMPLE_ACCOUNT_ID, EXAMPLE_ORG_ID, EXAMPLE_EMAIL))
