"""Distribute an approved AMI across regions and accounts, resuming wherever a previous run stopped.

Two phases share one bounded thread pool: one task per region makes (or finds) the region's
encrypted copy and shares it with the workload OUs (or the organization) in a single launch
permission call, and as each region's copy becomes available one task per account, through the
account's BakehouseImagePublisher role, tags the account's view of it approved (the tag the
approved-AMI Config rule reads there) and writes the account's /bakehouse/<env>/ami/<family>
parameter. The factory's own API work per region is therefore the same for 3 accounts or 500;
only what must live in each account is done per account. Images are shared, never copied into
the accounts: the factory's keys admit the workload accounts through EC2
(components/build/factory_keys.py). Snapshots are not shared: launching needs only the image's launch
permission and the key (EC2 user guide, "Share an AMI with organizations or OUs"), and
ModifySnapshotAttribute cannot name an OU.

Every write is preceded by a look: copies are found by their bakehouse:source-ami tag (or, for a
copy that a crash left untagged, by its deterministic name), permissions and parameters are compared
before they are changed. A rerun after a partial failure therefore redoes nothing that succeeded.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3
from botocore.exceptions import ClientError

from handlers.common import (
    ACCOUNT_ID,
    AMI_ID,
    REGION,
    RETRY_CONFIG,
    TAG_FAMILY,
    TAG_SOURCE_AMI,
    BakehouseError,
    EventReader,
    client,
    poll,
    tags_to_dict,
)
from handlers.contract import (
    APPROVED_IMAGE_TAG,
    ENV_AMI_PARAMETER,
    FAMILY,
    IMAGE_PUBLISHER_ROLE,
    ROLE_NAME,
    TAG_APPROVED,
    TAG_PREFIX,
)
from handlers.contract import ENV_NAME as ENV
from handlers.targets import read_targets

# APPROVED_IMAGE_TAG (handlers/contract.py): what the workload accounts' approved-AMI Config rule looks for.
KMS_KEY = re.compile(r"arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):\d{12}:(key|alias)/[A-Za-z0-9/_-]+")
# The ARN patterns EC2 accepts in a launch permission; a bare o-/ou- id is an error there
# (EC2 user guide, "Share an AMI with organizations or OUs": ARN format).
ORG_ARN = re.compile(r"arn:aws[a-z-]*:organizations::\d{12}:organization/(?P<org>o-[a-z0-9]{10,32})")
OU_ARN = re.compile(r"arn:aws[a-z-]*:organizations::\d{12}:ou/(?P<org>o-[a-z0-9]{10,32})/ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}")
# Parameters of the removed copy mode: refused by name, so an old caller learns why.
REMOVED_COPY_MODE = ("Mode", "AccountKmsKey")
_FAILED_STATES = ("failed", "error", "invalid", "deregistered")


class ImageNotDistributable(BakehouseError):
    """The source AMI is missing, not available, or not approved."""


class CopyFailed(BakehouseError):
    """An AMI copy ended in a failed state."""


class NotSharedWithAccount(BakehouseError):
    """A target account cannot see the shared image: it is in none of the OUs it is shared with."""


class DistributionIncomplete(BakehouseError):
    """Some regions or accounts were not served; rerunning resumes from where this run stopped."""


@dataclass(frozen=True)
class Target:
    account_id: str
    env: str


@dataclass(frozen=True)
class DistributeRequest:
    image_id: str
    source_region: str
    family: str
    region_keys: tuple[tuple[str, str], ...]  # (region, KMS key ARN of the factory key there)
    # None: every target env, read from /bakehouse/factory/targets (handlers/targets.py) in the home
    # region; a list names a subset (a rerun for one account).
    targets: tuple[Target, ...] | None
    share_with: tuple[str, ...] = ()  # organization or OU ARNs given launch permission on every region's image
    max_workers: int = 8
    publisher_role: str = IMAGE_PUBLISHER_ROLE
    poll_seconds: float = 15.0
    poll_timeout: float = 3600.0

    @classmethod
    def parse(cls, event: Any) -> DistributeRequest:
        read = EventReader("distribute", event)
        image_id = read.string("ImageId", AMI_ID)
        source_region = read.string("SourceRegion", REGION)
        family = read.string("Family", FAMILY)
        region_keys = _read_regions(read)
        targets = _read_accounts(read)
        share_with = _read_share_with(read)
        for removed in REMOVED_COPY_MODE:
            if removed in read.event:
                read.problems.append(f"{removed}: copy distribution was removed; images are shared with each account")
        request = cls(
            image_id=image_id,
            source_region=source_region,
            family=family,
            region_keys=region_keys,
            targets=targets,
            share_with=share_with,
            max_workers=read.integer("MaxWorkers", 1, 64, 8),
            publisher_role=read.string("PublisherRole", ROLE_NAME, IMAGE_PUBLISHER_ROLE),
            poll_seconds=read.integer("PollSeconds", 0, 300, 15),
            poll_timeout=read.integer("PollTimeoutSeconds", 1, 4 * 3600, 3600),
        )
        read.done()
        return request


def _read_regions(read: EventReader) -> tuple[tuple[str, str], ...]:
    value = read.event.get("Regions")
    if not isinstance(value, dict) or not value:
        read.problems.append(f"Regions is {value!r}, expected a non-empty object of region -> KMS key ARN")
        return ()
    for region, key in value.items():
        if not isinstance(region, str) or not REGION.fullmatch(region):
            read.problems.append(f"Regions has {region!r}, expected a region name")
            continue
        match = KMS_KEY.fullmatch(key) if isinstance(key, str) else None
        if match is None:
            read.problems.append(f"Regions[{region}] is {key!r}, expected a KMS key ARN")
        elif match["region"] != region:
            read.problems.append(f"Regions[{region}] is a key in {match['region']}; copies need a key in {region}")
    return tuple(sorted(value.items()))


def _read_accounts(read: EventReader) -> tuple[Target, ...] | None:
    value = read.event.get("Accounts")
    if value is None or value == []:  # the documents' default: the target parameters decide
        return None
    if not isinstance(value, list):
        read.problems.append(f"Accounts is {value!r}, expected a list of {{AccountId, Env}}")
        return ()
    targets = []
    for i, item in enumerate(value):
        account = item.get("AccountId") if isinstance(item, dict) else None
        env = item.get("Env") if isinstance(item, dict) else None
        if not isinstance(account, str) or not ACCOUNT_ID.fullmatch(account):
            read.problems.append(f"Accounts[{i}].AccountId is {account!r}, expected 12 digits")
        if not isinstance(env, str) or not ENV.fullmatch(env):
            read.problems.append(f"Accounts[{i}].Env is {env!r}, expected to match {ENV.pattern}")
        targets.append(Target(str(account), str(env)))
    if len({t.account_id for t in targets}) != len(targets):
        read.problems.append("Accounts lists an account more than once")
    return tuple(targets)


def _read_share_with(read: EventReader) -> tuple[str, ...]:
    value = read.event.get("ShareWith")
    if not isinstance(value, list) or not value:
        read.problems.append(
            f"ShareWith is {value!r}, expected a non-empty list of organization or OU ARNs, e.g. "
            "arn:aws:organizations::<management account>:ou/o-.../ou-... (the build stack passes "
            "bakehouse:factory.workloadOus as OU ARNs)"
        )
        return ()
    orgs = set()
    for i, arn in enumerate(value):
        match = (ORG_ARN.fullmatch(arn) or OU_ARN.fullmatch(arn)) if isinstance(arn, str) else None
        if match is None:
            read.problems.append(
                f"ShareWith[{i}] is {arn!r}, expected an organization or OU ARN "
                "(arn:aws:organizations::<management account>:organization/o-... or :ou/o-.../ou-...)"
            )
        else:
            orgs.add(match["org"])
    if len(orgs) > 1:
        read.problems.append(
            f"ShareWith names more than one organization ({', '.join(sorted(orgs))}); "
            "images go to this organization's workload OUs only"
        )
    if len(set(map(str, value))) != len(value):
        read.problems.append("ShareWith lists an ARN more than once")
    return tuple(str(v) for v in value)


# --- results ------------------------------------------------------------------------------------
@dataclass
class Outcome:
    image_id: str | None
    action: str  # source | copied | existing (regions); shared | unchanged | failed | skipped (accounts)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ImageId": self.image_id, "Action": self.action}
        if self.error:
            out["Error"] = self.error
        return out


@dataclass
class DistributionResult:
    source_image_id: str
    family: str
    regions: dict[str, Outcome] = field(default_factory=dict)
    accounts: dict[tuple[str, str], Outcome] = field(default_factory=dict)  # (account, region)

    @property
    def failures(self) -> list[str]:
        out = [f"region {r}: {o.error}" for r, o in sorted(self.regions.items()) if o.action == "failed"]
        out += [
            f"account {a} in {r}: {o.error}" for (a, r), o in sorted(self.accounts.items()) if o.action in ("failed", "skipped")
        ]
        return out

    def as_dict(self) -> dict[str, Any]:
        accounts: dict[str, dict[str, Any]] = {}
        for (account, region), outcome in sorted(self.accounts.items()):
            accounts.setdefault(account, {})[region] = outcome.as_dict()
        return {
            "SourceImageId": self.source_image_id,
            "Family": self.family,
            "RegionImageIds": {r: o.image_id for r, o in sorted(self.regions.items()) if o.image_id},
            "Regions": {r: o.as_dict() for r, o in sorted(self.regions.items())},
            "Accounts": accounts,
            "Failures": self.failures,
        }


# --- client seam --------------------------------------------------------------------------------
class Clients(Protocol):
    def build(self, service: str, region: str) -> Any: ...  # the factory's own account
    def target(self, account_id: str, service: str, region: str) -> Any: ...  # through the publisher role


class AwsClients:
    """Clients from the ambient credentials and from the publisher role, built once and shared.

    One boto3 session serves every account (assumed credentials are passed per client), so each
    service model is loaded once rather than once per account - at 20 accounts that dominates.
    boto3 clients are thread-safe, sessions are not: creation happens under a lock.
    """

    def __init__(self, publisher_role: str, home_region: str, session: boto3.Session | None = None):
        self._role, self._home = publisher_role, home_region
        self._lock = threading.Lock()
        self._session = session or boto3.Session()
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._credentials: dict[str, dict[str, str]] = {}
        self._account_locks: dict[str, threading.Lock] = {}

    def build(self, service: str, region: str) -> Any:
        with self._lock:
            key = ("", service, region)
            if key not in self._clients:
                self._clients[key] = client(service, region, session=self._session)
            return self._clients[key]

    def target(self, account_id: str, service: str, region: str) -> Any:
        sts = self.build("sts", self._home)
        with self._lock:
            account_lock = self._account_locks.setdefault(account_id, threading.Lock())
        # One AssumeRole per account, and accounts do not queue behind each other's round trips.
        with account_lock:
            if account_id not in self._credentials:
                self._credentials[account_id] = sts.assume_role(
                    RoleArn=f"arn:aws:iam::{account_id}:role/{self._role}", RoleSessionName=f"bakehouse-distribute-{account_id}"
                )["Credentials"]
        with self._lock:
            key = (account_id, service, region)
            if key not in self._clients:
                creds = self._credentials[account_id]
                self._clients[key] = self._session.client(
                    service,
                    region_name=region,
                    config=RETRY_CONFIG,
                    aws_access_key_id=creds["AccessKeyId"],
                    aws_secret_access_key=creds["SecretAccessKey"],
                    aws_session_token=creds["SessionToken"],
                )
            return self._clients[key]


# --- work ---------------------------------------------------------------------------------------
def _image(ec2: Any, image_id: str) -> dict[str, Any] | None:
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as err:
        if err.response["Error"]["Code"].startswith("InvalidAMIID"):
            return None
        raise
    return images[0] if images else None


def _source(request: DistributeRequest, clients: Clients) -> dict[str, Any]:
    image = _image(clients.build("ec2", request.source_region), request.image_id)
    if image is None:
        raise ImageNotDistributable(f"{request.image_id}: no such image in {request.source_region}")
    if image.get("State") != "available":
        raise ImageNotDistributable(f"{request.image_id}: state is {image.get('State')}, expected available")
    if tags_to_dict(image.get("Tags")).get(TAG_APPROVED) != "true":
        raise ImageNotDistributable(f"{request.image_id}: not tagged {TAG_APPROVED}=true; approve it first")
    return image


def _copy_description(family: str, source_id: str) -> str:
    return f"bakehouse {family} copy of {source_id}"


def _find_copy(ec2: Any, source_id: str, name: str, family: str) -> dict[str, Any] | None:
    """An existing copy of source_id in this account and region, healing a copy left untagged.

    A crash between copy_image and create_tags leaves a copy without the tag; EC2 would then refuse
    a second copy of the same name, so it is found by name - but adopted only if its description
    (set in the copy call itself) says it is a copy of this source.
    """
    paginator = ec2.get_paginator("describe_images")
    by_tag = [{"Name": f"tag:{TAG_SOURCE_AMI}", "Values": [source_id]}]
    by_name = [{"Name": "name", "Values": [name]}, {"Name": "description", "Values": [_copy_description(family, source_id)]}]
    for filters in (by_tag, by_name):
        found = [
            i
            for page in paginator.paginate(Owners=["self"], Filters=filters)
            for i in page["Images"]
            if i.get("State") not in _FAILED_STATES and i["ImageId"] != source_id
        ]
        if found:
            image: dict[str, Any] = sorted(found, key=lambda i: i.get("CreationDate", ""))[0]
            if tags_to_dict(image.get("Tags")).get(TAG_SOURCE_AMI) != source_id:
                ec2.create_tags(Resources=[image["ImageId"]], Tags=[{"Key": TAG_SOURCE_AMI, "Value": source_id}])
            return image
    return None


def _wait_available(ec2: Any, image_id: str, request: DistributeRequest, sleep: Callable[[float], None] | None) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        image = _image(ec2, image_id)
        state = image.get("State") if image else "missing"
        if state in _FAILED_STATES or image is None:
            reason = (image or {}).get("StateReason", {}).get("Message", "")
            raise CopyFailed(f"{image_id}: copy is {state} {reason}".strip())
        return image if state == "available" else None

    return poll(
        check,
        f"copy {image_id}",
        first_delay=request.poll_seconds,
        max_delay=max(request.poll_seconds, 60),
        timeout=request.poll_timeout,
        sleep=sleep,
    )


def _copy(
    ec2: Any,
    source: dict[str, Any],
    source_region: str,
    kms_key: str,
    family: str,
    request: DistributeRequest,
    sleep: Callable[[float], None] | None,
    token: str,
) -> tuple[dict[str, Any], str]:
    """Find or make an encrypted copy of `source` through `ec2`, tagged with the original AMI id."""
    existing = _find_copy(ec2, request.image_id, source["Name"], family)
    if existing is not None:
        image_id, action = existing["ImageId"], "existing"
    else:
        image_id = ec2.copy_image(
            SourceImageId=source["ImageId"],
            SourceRegion=source_region,
            Name=source["Name"],
            Description=_copy_description(family, request.image_id),
            Encrypted=True,
            KmsKeyId=kms_key,
            ClientToken=token[:64],
        )["ImageId"]
        # Provenance travels with the copy so each region can be audited alone.
        provenance = {k: v for k, v in tags_to_dict(source.get("Tags")).items() if k.startswith(TAG_PREFIX)}
        provenance.update({TAG_SOURCE_AMI: request.image_id, TAG_FAMILY: family})
        ec2.create_tags(Resources=[image_id], Tags=[{"Key": k, "Value": v} for k, v in sorted(provenance.items())])
        action = "copied"
    return _wait_available(ec2, image_id, request, sleep), action


def _region_copy(
    request: DistributeRequest,
    source: dict[str, Any],
    region: str,
    kms_key: str,
    clients: Clients,
    sleep: Callable[[float], None] | None,
) -> tuple[dict[str, Any], str]:
    ec2 = clients.build("ec2", region)
    if region == request.source_region:
        image, action = source, "source"
    else:
        image, action = _copy(
            ec2, source, request.source_region, kms_key, request.family, request, sleep, f"bakehouse-{request.image_id}-{region}"
        )
    _share(ec2, image["ImageId"], request.share_with)
    return image, action


def _permission(arn: str) -> dict[str, str]:
    return {"OrganizationArn" if ORG_ARN.fullmatch(arn) else "OrganizationalUnitArn": arn}


def _share(ec2: Any, image_id: str, share_with: tuple[str, ...]) -> bool:
    """One launch permission call per region, adding only the organization/OU ARNs not yet granted."""
    granted = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission").get("LaunchPermissions", [])
    have = {p.get("OrganizationArn") or p.get("OrganizationalUnitArn") for p in granted}
    missing = [_permission(arn) for arn in share_with if arn not in have]
    if missing:
        ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": missing})
    return bool(missing)


def _mark_approved(ec2: Any, image_id: str, account_id: str, share_with: tuple[str, ...]) -> bool:
    """Tag the account's own view of a shared image approved; each account's tags on a shared AMI are
    its own and invisible to the owner (EC2 user guide, "Share an AMI": tags are not shared)."""
    key, value = APPROVED_IMAGE_TAG
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [image_id]}, {"Name": "key", "Values": [key]}])["Tags"]
    if any(t.get("Value") == value for t in tags):
        return False
    try:
        ec2.create_tags(Resources=[image_id], Tags=[{"Key": key, "Value": value}])
    except ClientError as err:
        if err.response["Error"]["Code"] != "InvalidAMIID.NotFound":
            raise
        raise NotSharedWithAccount(
            f"{image_id} is not visible in account {account_id}: the account is in none of ShareWith "
            f"({', '.join(share_with)}); move it into a workload OU or add its OU to "
            "bakehouse:factory.workloadOus"
        ) from err
    return True


def _write_parameter(ssm: Any, name: str, image_id: str) -> bool:
    try:
        if ssm.get_parameter(Name=name)["Parameter"]["Value"] == image_id:
            return False
    except ClientError as err:
        if err.response["Error"]["Code"] != "ParameterNotFound":
            raise
    ssm.put_parameter(
        Name=name,
        Value=image_id,
        Type="String",
        DataType="aws:ec2:image",
        Overwrite=True,
        Description=f"Golden AMI published by the Bakehouse factory ({image_id})",
    )
    return True


def _deliver(
    request: DistributeRequest,
    target: Target,
    region: str,
    image: dict[str, Any],
    clients: Clients,
    sleep: Callable[[float], None] | None,
) -> Outcome:
    image_id = image["ImageId"]
    # The region task shared the image first: the account can only tag an image it may launch.
    changed = _mark_approved(clients.target(target.account_id, "ec2", region), image_id, target.account_id, request.share_with)
    name = ENV_AMI_PARAMETER.format(env=target.env, family=request.family)
    changed = _write_parameter(clients.target(target.account_id, "ssm", region), name, image_id) or changed
    return Outcome(image_id, "shared" if changed else "unchanged")


def _error(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"


def distribute(request: DistributeRequest, clients: Clients, sleep: Callable[[float], None] | None = None) -> DistributionResult:
    """Copy, share and publish; failures are recorded per region/account, never abort the others."""
    if not request.share_with:
        raise ValueError("share_with is empty: an image shared with nobody cannot reach any account")
    source = _source(request, clients)
    targets = request.targets
    if targets is None:  # malformed target parameters fail here, before anything is copied
        targets = tuple(Target(account, env) for env, account in read_targets(clients.build("ssm", request.source_region)))
    result = DistributionResult(request.image_id, request.family)
    with ThreadPoolExecutor(max_workers=request.max_workers, thread_name_prefix="distribute") as pool:
        regions: dict[Future[tuple[dict[str, Any], str]], str] = {
            pool.submit(_region_copy, request, source, region, key, clients, sleep): region for region, key in request.region_keys
        }
        deliveries: dict[Future[Outcome], tuple[str, str]] = {}
        for future in as_completed(regions):
            region = regions[future]
            try:
                image, action = future.result()
            except Exception as err:  # recorded, and the region's accounts are reported skipped
                result.regions[region] = Outcome(None, "failed", _error(err))
                for target in targets:
                    result.accounts[(target.account_id, region)] = Outcome(None, "skipped", f"region {region} failed")
                continue
            result.regions[region] = Outcome(image["ImageId"], action)
            for target in targets:
                deliveries[pool.submit(_deliver, request, target, region, image, clients, sleep)] = (target.account_id, region)
        for delivery in as_completed(deliveries):
            try:
                result.accounts[deliveries[delivery]] = delivery.result()
            except Exception as err:
                result.accounts[deliveries[delivery]] = Outcome(None, "failed", _error(err))
    return result


def handler(events: dict[str, Any], context: Any) -> dict[str, Any]:
    """SSM aws:executeScript entry point. Fails the step when anything was left undone.

    Event: ImageId, SourceRegion, Family, Regions {region: factory KMS key ARN there},
    Accounts [{AccountId, Env}] (absent or empty: every env under /bakehouse/factory/targets),
    ShareWith [organization or OU ARN], MaxWorkers 1-64,
    PublisherRole, PollSeconds, PollTimeoutSeconds. Output: SourceImageId, Family,
    RegionImageIds {region: id}, Regions, Accounts {account: {region: {ImageId, Action}}}, Failures.
    """
    request = DistributeRequest.parse(events)
    result = distribute(request, AwsClients(request.publisher_role, request.source_region))
    if result.failures:
        raise DistributionIncomplete(
            f"{request.image_id}: {len(result.failures)} not done (rerun resumes): " + "; ".join(result.failures[:20])
        )
    return result.as_dict()
