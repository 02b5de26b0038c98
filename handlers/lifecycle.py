"""AMI lifecycle: keep what is needed, deprecate the rest, later deregister it everywhere.

A pure `plan` decides per image from facts (age, approval, prod use, deprecation time, whether it
is the published `latest`); `execute` carries the decisions out in the home region and in every
region the image was copied to (copies carry the tag bakehouse:source-ami). Dry run stops after
the plan. The deprecation time EC2 keeps on the image is the record the grace period counts from,
so a rerun finds everything where the previous run left it.

An image any env's /bakehouse/<env>/ami/* parameter still names is kept, whatever its age: the
parameters are read in each workload account and region through its BakehouseImageScanner role (an
account's own copy counts for its source). While any env's parameters cannot be read nothing is
deregistered. A failure on one image is recorded and the run goes on; the run then raises
LifecycleIncomplete naming every failure, so the invocation fails and the dead-letter alarm fires.
"""

from __future__ import annotations

import calendar
import enum
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import ClientError

from handlers.common import (
    REGION,
    TAG_FAMILY,
    TAG_RAN_IN,
    TAG_SOURCE_AMI,
    AwsClient,
    BakehouseError,
    EventReader,
    MalformedEvent,
    assumed_session,
    client,
    env_and_account,
    parameter_value,
    tags_to_dict,
)
from handlers.contract import ACCOUNT_ID, ENV_NAME, FAMILY, TAG_APPROVED, TAG_PROD_LAST_SEEN, TAG_VULNERABLE, env_ami_path
from handlers.contract import IMAGE_PARAMETER as LATEST_PARAMETER
from handlers.contract import IMAGE_SCANNER_ROLE as SCANNER_ROLE
from handlers.targets import read_targets

ACCOUNT_ENV = re.compile(f"{ENV_NAME.pattern}={ACCOUNT_ID.pattern}")
# EC2 refuses a deprecation time in the past; a minute ahead takes effect at once in practice.
DEPRECATION_LEAD = timedelta(minutes=1)


class Action(str, enum.Enum):
    KEEP = "keep"
    DEPRECATE = "deprecate"
    WAIT = "wait"  # deprecated, grace period still running
    DEREGISTER = "deregister"


class LifecycleFailed(BakehouseError):
    def __init__(self, image_id: str, region: str, reason: str):
        super().__init__(f"image {image_id} in {region}: {reason}")


class LifecycleIncomplete(LifecycleFailed):
    """Raised after everything else was done; `result` is the run's full report. A LifecycleFailed, so
    callers that catch one image's failure catch the run that carried on past it too."""

    def __init__(self, failures: Sequence[str], result: dict[str, Any]):
        BakehouseError.__init__(self, "lifecycle finished with failures: " + "; ".join(failures))
        self.result = result


@dataclass(frozen=True)
class RetentionPolicy:
    keep_newest: int  # approved images per family
    keep_days: int
    grace_days: int
    prod_retention_years: int


@dataclass(frozen=True)
class ImageFacts:
    image_id: str
    family: str
    created: datetime
    approved: bool = True
    vulnerable: bool = False
    ran_in_prod: bool = False
    prod_last_seen: datetime | None = None
    deprecation_time: datetime | None = None
    current: bool = False  # the value of /bakehouse/images/<family>/latest
    named_by: tuple[str, ...] = ()  # the env parameters (account:name) whose value is this image
    pins_unknown: bool = False  # an env's parameters could not be read: never deregister


@dataclass(frozen=True)
class Decision:
    image_id: str
    family: str
    action: Action
    reason: str


def _add_years(when: datetime, years: int) -> datetime:
    year = when.year + years
    day = min(when.day, calendar.monthrange(year, when.month)[1])  # 29 February -> 28 February
    return when.replace(year=year, day=day)


def plan(images: Iterable[ImageFacts], policy: RetentionPolicy, now: datetime) -> list[Decision]:
    """One decision per image, newest first within each family. Pure: no AWS, no clock."""
    by_family: dict[str, list[ImageFacts]] = {}
    for image in images:
        by_family.setdefault(image.family, []).append(image)
    decisions = []
    for family in sorted(by_family):
        ordered = sorted(by_family[family], key=lambda i: (i.created, i.image_id), reverse=True)
        # A vulnerable image is no fallback for anyone, so it does not hold one of the N places.
        newest = {i.image_id for i in [i for i in ordered if i.approved and not i.vulnerable][: policy.keep_newest]}
        for image in ordered:
            action, reason = _decide(image, image.image_id in newest, policy, now)
            decisions.append(Decision(image.image_id, family, action, reason))
    return decisions


def _decide(image: ImageFacts, among_newest: bool, policy: RetentionPolicy, now: datetime) -> tuple[Action, str]:
    if image.current:
        return Action.KEEP, "published as the family's latest image"
    if image.named_by:
        return Action.KEEP, "named by " + ", ".join(image.named_by)
    if image.ran_in_prod:
        since = max(image.created, image.prod_last_seen or image.created)
        until = _add_years(since, policy.prod_retention_years)
        if now < until:
            return Action.KEEP, f"ran in prod; retained until {until:%Y-%m-%d}"
    if among_newest:
        return Action.KEEP, f"one of the {policy.keep_newest} newest approved images"
    if now - image.created < timedelta(days=policy.keep_days):
        return Action.KEEP, f"younger than {policy.keep_days} days"
    if image.deprecation_time is None:
        return Action.DEPRECATE, "older than the retention window and not among the newest"
    ends = image.deprecation_time + timedelta(days=policy.grace_days)
    if now < ends:
        return Action.WAIT, f"deprecated; grace period ends {ends:%Y-%m-%d %H:%M}"
    if image.pins_unknown:
        return Action.WAIT, "an env's AMI parameters could not be read; not deregistered until they can"
    return Action.DEREGISTER, f"deprecated and the {policy.grace_days}-day grace period is over"


# --- facts from AWS ----------------------------------------------------------------------------
def _time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _creation_time(image: dict[str, Any]) -> datetime:
    created = _time(image["CreationDate"])
    if created is None:  # EC2 dates every image it registers
        raise BakehouseError(f"{image['ImageId']}: no CreationDate")
    return created


@dataclass(frozen=True)
class Copy:
    region: str
    image_id: str
    snapshot_ids: tuple[str, ...]
    deprecated: bool
    ran_in_prod: bool


@dataclass(frozen=True)
class Inventory:
    facts: tuple[ImageFacts, ...]
    snapshots: Mapping[str, tuple[str, ...]]  # source image id -> its snapshots (home region)
    copies: Mapping[str, tuple[Copy, ...]]  # source image id -> copies elsewhere


def _snapshots(image: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(
        m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", []) if "Ebs" in m and m["Ebs"].get("SnapshotId")
    )


def _owned_images(ec2: AwsClient, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pages = ec2.get_paginator("describe_images").paginate(Owners=["self"], Filters=filters)
    return [image for page in pages for image in page["Images"]]


def inventory(
    ec2_for: Callable[[str], Any],
    ssm: AwsClient,
    home: str,
    copy_regions: Sequence[str],
    families: Sequence[str] = (),
    pins: Mapping[str, tuple[str, ...]] | None = None,
    pins_unknown: bool = False,
) -> Inventory:
    """pins: image id (source or any copy) -> the env parameters naming it."""
    pins = pins or {}
    home_ec2 = ec2_for(home)
    sources = [
        i
        for i in _owned_images(home_ec2, [{"Name": "tag-key", "Values": [TAG_FAMILY]}])
        if TAG_SOURCE_AMI not in tags_to_dict(i.get("Tags"))
    ]
    copies: dict[str, list[Copy]] = {}
    for region in copy_regions:
        if region == home:
            continue
        for image in _owned_images(ec2_for(region), [{"Name": "tag-key", "Values": [TAG_SOURCE_AMI]}]):
            tags = tags_to_dict(image.get("Tags"))
            copies.setdefault(tags[TAG_SOURCE_AMI], []).append(
                Copy(
                    region,
                    image["ImageId"],
                    _snapshots(image),
                    bool(image.get("DeprecationTime")),
                    tags.get(TAG_RAN_IN) == "prod",
                )
            )
    latest: dict[str, str | None] = {}
    facts = []
    for image in sources:
        tags = tags_to_dict(image.get("Tags"))
        family = tags[TAG_FAMILY]
        if families and family not in families:
            continue
        if family not in latest:
            latest[family] = parameter_value(ssm, LATEST_PARAMETER.format(family=family))
        facts.append(
            ImageFacts(
                image_id=image["ImageId"],
                family=family,
                created=_creation_time(image),
                approved=tags.get(TAG_APPROVED) == "true",
                vulnerable=tags.get(TAG_VULNERABLE) == "true",
                ran_in_prod=tags.get(TAG_RAN_IN) == "prod" or any(c.ran_in_prod for c in copies.get(image["ImageId"], ())),
                prod_last_seen=_time(tags.get(TAG_PROD_LAST_SEEN)),
                deprecation_time=_time(image.get("DeprecationTime")),
                current=latest[family] == image["ImageId"],
                named_by=tuple(
                    sorted(
                        {
                            p
                            for i in (image["ImageId"], *(c.image_id for c in copies.get(image["ImageId"], ())))
                            for p in pins.get(i, ())
                        }
                    )
                ),
                pins_unknown=pins_unknown,
            )
        )
    return Inventory(tuple(facts), {i["ImageId"]: _snapshots(i) for i in sources}, {k: tuple(v) for k, v in copies.items()})


def env_pins(
    accounts: Sequence[tuple[str, str]], regions: Sequence[str], workload: Callable[[str, str], tuple[Any, Any]]
) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """Every image an env's /bakehouse/<env>/ami/* names (an account's own copy also under its
    source, from its bakehouse:source-ami tag), and the accounts/regions that could not be read."""
    pins: dict[str, set[str]] = {}
    failures = []
    for env, account in accounts:
        for region in regions:
            try:
                ec2, ssm = workload(account, region)
                named = [
                    (p["Name"], p["Value"])
                    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=env_ami_path(env), Recursive=True)
                    for p in page["Parameters"]
                ]
                values = sorted({v for _, v in named if v.startswith("ami-")})
                source_of: dict[str, str | None] = {}
                if values:
                    for page in ec2.get_paginator("describe_images").paginate(
                        Owners=["self"], Filters=[{"Name": "image-id", "Values": values}]
                    ):
                        source_of.update({i["ImageId"]: tags_to_dict(i.get("Tags")).get(TAG_SOURCE_AMI) for i in page["Images"]})
            except (ClientError, BakehouseError) as err:
                failures.append(f"account {account} ({env}) in {region}: AMI parameters unreadable: {err}")
                continue
            for name, value in named:
                where = f"{account}:{name} in {region}"
                pins.setdefault(value, set()).add(where)
                source = source_of.get(value)
                if source:
                    pins.setdefault(source, set()).add(where)
    return {k: tuple(sorted(v)) for k, v in pins.items()}, failures


# --- execution -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    decision: Decision
    changes: list[str] = field(default_factory=list)  # "deprecate ami-.. in eu-west-1", ...
    error: str | None = None  # what failed; the run went on with the next image

    def as_dict(self) -> dict[str, Any]:
        d = self.decision
        out = {"ImageId": d.image_id, "Family": d.family, "Action": d.action.value, "Reason": d.reason, "Changes": self.changes}
        if self.error:
            out["Error"] = self.error
        return out


def _targets(inv: Inventory, image_id: str, home: str) -> list[tuple[str, str, tuple[str, ...], bool]]:
    """(region, image, snapshots, already deprecated) - copies first, so a half-done retirement
    still has its source to find the remaining copies by."""
    facts = next(f for f in inv.facts if f.image_id == image_id)
    out = [(c.region, c.image_id, c.snapshot_ids, c.deprecated) for c in inv.copies.get(image_id, ())]
    out.append((home, image_id, inv.snapshots.get(image_id, ()), facts.deprecation_time is not None))
    return out


def execute(
    decisions: Sequence[Decision], inv: Inventory, ec2_for: Callable[[str], Any], home: str, now: datetime, dry_run: bool
) -> list[Outcome]:
    outcomes = []
    for decision in decisions:
        outcome = Outcome(decision)
        outcomes.append(outcome)
        if decision.action not in (Action.DEPRECATE, Action.DEREGISTER):
            continue
        try:
            _carry_out(decision, outcome, inv, ec2_for, home, now, dry_run)
        except (LifecycleFailed, ClientError) as err:
            outcome.error = f"{type(err).__name__}: {err}"
    return outcomes


def _carry_out(
    decision: Decision, outcome: Outcome, inv: Inventory, ec2_for: Callable[[str], Any], home: str, now: datetime, dry_run: bool
) -> None:
    for region, image_id, snapshots, deprecated in _targets(inv, decision.image_id, home):
        if decision.action is Action.DEPRECATE:
            if deprecated:
                continue
            outcome.changes.append(f"deprecate {image_id} in {region}")
            if not dry_run:
                ec2_for(region).enable_image_deprecation(ImageId=image_id, DeprecateAt=now + DEPRECATION_LEAD)
        else:
            outcome.changes.append(f"deregister {image_id} in {region}")
            outcome.changes += [f"delete {s} in {region}" for s in snapshots]
            if not dry_run:
                _retire(ec2_for(region), region, image_id, snapshots)


def _retire(ec2: AwsClient, region: str, image_id: str, snapshots: Sequence[str]) -> None:
    try:
        ec2.deregister_image(ImageId=image_id)
    except ClientError as err:
        if not err.response["Error"]["Code"].startswith("InvalidAMIID"):
            raise LifecycleFailed(image_id, region, f"deregister failed: {err}") from err
    for snapshot in snapshots:
        try:
            ec2.delete_snapshot(SnapshotId=snapshot)
        except ClientError as err:
            if err.response["Error"]["Code"] != "InvalidSnapshot.NotFound":
                raise LifecycleFailed(image_id, region, f"deleting {snapshot} failed: {err}") from err


# --- entry point ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LifecycleRequest:
    copy_regions: tuple[str, ...]
    policy: RetentionPolicy
    families: tuple[str, ...] = ()
    dry_run: bool = True
    # (env, account id): whose AMI parameters pin images. None: every target env, read from
    # /bakehouse/factory/targets (handlers/targets.py); a list names a subset (a rerun for one account).
    accounts: tuple[tuple[str, str], ...] | None = None

    @classmethod
    def parse(cls, event: Any) -> LifecycleRequest:
        r = EventReader("lifecycle", event)
        request = cls(
            copy_regions=r.strings("CopyRegions", REGION, allow_empty=True),
            policy=RetentionPolicy(
                keep_newest=r.integer("KeepNewest", 1, 100),
                keep_days=r.integer("KeepDays", 0, 3650),
                grace_days=r.integer("GraceDays", 0, 365),
                prod_retention_years=r.integer("ProdRetentionYears", 0, 10),
            ),
            families=r.strings("Families", FAMILY, allow_empty=True) if "Families" in r.event else (),
            # Nothing is retired unless the caller says so explicitly.
            dry_run=r.boolean("DryRun", default=True),
            accounts=tuple(env_and_account(a) for a in r.strings("WorkloadAccounts", ACCOUNT_ENV, allow_empty=True))
            if "WorkloadAccounts" in r.event
            else None,
        )
        r.done()
        return request

    @classmethod
    def from_event(cls, event: Any) -> LifecycleRequest:
        """The policy itself, or (as the schedule delivers it) one SQS record from the lifecycle FIFO
        queue whose body is the policy; the event source mapping's batch size is 1."""
        if not (isinstance(event, dict) and "Records" in event):
            return cls.parse(event)
        records = event["Records"]
        if not isinstance(records, list) or len(records) != 1:
            count = len(records) if isinstance(records, list) else records
            raise MalformedEvent("lifecycle", [f"Records holds {count!r}; a batch carries one run"])
        try:
            body = json.loads(records[0].get("body", ""))
        except (AttributeError, TypeError, ValueError):
            raise MalformedEvent("lifecycle", ["Records[0].body is not a JSON object"]) from None
        return cls.parse(body)


def run(
    request: LifecycleRequest,
    ec2_for: Callable[[str], Any],
    ssm: AwsClient,
    home: str,
    now: datetime | None = None,
    workload: Callable[[str, str], tuple[Any, Any]] | None = None,
) -> dict[str, Any]:
    """workload(account, region) -> that account's (ec2, ssm) there, for request.accounts' parameters.
    Raises LifecycleIncomplete, after everything else is done, when anything failed."""
    now = now or datetime.now(UTC)
    pins: dict[str, tuple[str, ...]] = {}
    failures: list[str] = []
    # Unreadable or malformed target parameters raise here: pins unknown, nothing may be retired.
    accounts = read_targets(ssm) if request.accounts is None else request.accounts
    if accounts:
        if workload is None:
            raise ValueError("workload accounts to read pins from but no way to reach them")
        pins, failures = env_pins(accounts, sorted({home, *request.copy_regions}), workload)
    inv = inventory(ec2_for, ssm, home, request.copy_regions, request.families, pins, pins_unknown=bool(failures))
    outcomes = execute(plan(inv.facts, request.policy, now), inv, ec2_for, home, now, request.dry_run)
    failures += [f"{o.decision.image_id}: {o.error}" for o in outcomes if o.error]
    result = {
        "DryRun": request.dry_run,
        "Images": [o.as_dict() for o in outcomes],
        "Counts": {a.value: sum(o.decision.action is a for o in outcomes) for a in Action},
        "Failures": failures,
    }
    if failures:
        raise LifecycleIncomplete(failures, result)
    return result


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = LifecycleRequest.from_event(event)
    session = boto3.Session()
    home = client("ec2", session=session).meta.region_name
    clients: dict[str, Any] = {}

    def ec2_for(region: str) -> AwsClient:
        if region not in clients:
            clients[region] = client("ec2", region, session)
        return clients[region]

    assumed: dict[str, boto3.Session] = {}

    def workload(account: str, region: str) -> tuple[AwsClient, AwsClient]:
        if account not in assumed:
            assumed[account] = assumed_session(
                client("sts", session=session), f"arn:aws:iam::{account}:role/{SCANNER_ROLE}", "bakehouse-lifecycle"
            )
        return client("ec2", region, assumed[account]), client("ssm", region, assumed[account])

    try:
        result = run(request, ec2_for, client("ssm", session=session), home, workload=workload)
    except LifecycleIncomplete as err:
        _print(err.result)
        raise  # the invocation fails: the message is retried, then dead-lettered, and the alarm fires
    _print(result)
    return result


def _print(result: dict[str, Any]) -> None:
    for image in result["Images"]:  # the dry-run report, readable in the execution's output
        print(f"{image['Action']:>10} {image['ImageId']} ({image['Family']}): {image['Reason']}")
        for change in image["Changes"]:
            print(f"{'':>10}   {'would ' if result['DryRun'] else ''}{change}")
        if image.get("Error"):
            print(f"{'':>10}   FAILED: {image['Error']}")
