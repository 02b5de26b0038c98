"""Distribution at estate scale: the real handler against a model of AWS, on a scaled clock.

    .venv/bin/python -m benchmarks.distribution [--accounts 200] [--regions 4] [--scale 60] [--seed 13]

handlers.distribute.distribute runs unchanged (its thread pool, polling and back-off) against
in-process clients that model what decides the wall time on AWS, all in modelled seconds that pass
`--scale` times faster than real ones (default 60: a modelled minute takes a real second):

- CopyImage completion: AWS publishes no duration for a standard copy; each region's copy takes a
  time drawn uniformly from 5 to 30 minutes (seeded), an assumption for an 8-30 GiB encrypted AMI
  copied between regions. The handler sees "pending" until then, polling as it does in production.
- EC2 request token buckets, per account, region and action, with AWS's published sizes and refill
  rates (EC2 API reference, "Request throttling for the Amazon EC2 API"): non-mutating Describe*
  100 / 20 per second, CopyImage 100 / 1, CreateTags 100 / 10, ModifyImageAttribute and
  ModifySnapshotAttribute 100 / 5. A call that finds its bucket empty waits for the next token, as
  botocore's adaptive retry mode (handlers.common.RETRY_CONFIG) paces itself.
- A round trip of --latency-ms (default 60 ms) per API call, STS AssumeRole included. SSM calls go to
  each workload account's own quota, one parameter per region: they never share a bucket.
- The shipped default worker count (DistributeRequest.max_workers, the document's MaxWorkers).

Three distributions run from the same seed, each on a fresh model: the shipped design (one launch
permission per region for the workload OU, then each account's tag and parameter) with the default
workers; the same with one worker (the sequential baseline); and the design it replaced (a launch
permission and a snapshot create-volume permission per account per region) with the default
workers. Python's own time per call is scaled up with the rest; at the default scale it is well
under 1% of a run. The document gives the handler 600 s a run and 3 runs; a run that needs more
resumes where the last stopped, so the attempts each design needs are printed too.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import ClientError

from handlers import distribute as dist

REGIONS = ("eu-west-1", "us-east-1", "eu-central-1", "ap-southeast-2", "us-west-2", "eu-north-1")
BUILD = "333333333333"
OU = "arn:aws:organizations::111111111111:ou/o-exampleorg01/ou-ab12-wkld0001"
COPY_MINUTES = (5.0, 30.0)
# (capacity, refill per second): EC2 API reference, "Request throttling for the Amazon EC2 API".
BUCKETS = {"CopyImage": (100, 1), "CreateTags": (100, 10), "ModifyImageAttribute": (100, 5), "ModifySnapshotAttribute": (100, 5)}
NON_MUTATING = (100, 20)
SCRIPT_SECONDS, SCRIPT_ATTEMPTS = 540, 3  # PollTimeoutSeconds inside the 600 s step; maxAttempts


@dataclass
class Model:
    """Modelled AWS: time, token buckets, copies in flight, and what was called."""

    scale: float
    latency: float
    copy_seconds: dict[str, float]
    start: float = field(default_factory=time.perf_counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    tokens: dict[tuple, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)
    calls: Counter = field(default_factory=Counter)  # (who, action)
    throttled: float = 0.0  # modelled seconds the factory's calls waited for a token
    copies: dict[str, tuple[str, float]] = field(default_factory=dict)  # image -> (region, ready at)

    def now(self) -> float:
        return (time.perf_counter() - self.start) * self.scale

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / self.scale)

    def call(self, who: str, region: str, action: str) -> None:
        capacity, refill = BUCKETS.get(action, NON_MUTATING)
        key = (who, region, action)
        while True:
            with self.lock:
                now = self.now()
                tokens, at = self.tokens.get(key, (capacity, now))
                tokens = min(capacity, tokens + (now - at) * refill)
                if tokens >= 1:
                    self.tokens[key] = (tokens - 1, now)
                    self.calls[(who, action)] += 1
                    break
                wait = (1 - tokens) / refill
                self.tokens[key] = (tokens, now)
                if who == "build":
                    self.throttled += wait
            self.sleep(wait)
        self.sleep(self.latency)


class _Paginator:
    def __init__(self, model: Model, region: str):
        self.m, self.region = model, region

    def paginate(self, **_: Any) -> list[dict]:
        self.m.call("build", self.region, "DescribeImages")
        return [{"Images": []}]  # a fresh distribution: no earlier copy to adopt


class BuildEc2:
    """The factory account's EC2 in one region."""

    def __init__(self, model: Model, region: str, images: dict[str, dict]):
        self.m, self.region, self.images = model, region, images

    def describe_images(self, ImageIds: list[str]) -> dict:
        self.m.call("build", self.region, "DescribeImages")
        image = dict(self.images[ImageIds[0]])
        region, ready = self.m.copies.get(image["ImageId"], (self.region, 0.0))
        image["State"] = "available" if self.m.now() >= ready else "pending"
        return {"Images": [image]}

    def get_paginator(self, _: str) -> _Paginator:
        return _Paginator(self.m, self.region)

    def copy_image(self, **params: Any) -> dict:
        self.m.call("build", self.region, "CopyImage")
        image_id = f"ami-{abs(hash((params['SourceImageId'], self.region))) % 16**17:017x}"
        with self.m.lock:
            self.m.copies[image_id] = (self.region, self.m.now() + self.m.copy_seconds[self.region])
            self.images[image_id] = {**self.images[params["SourceImageId"]], "ImageId": image_id}
        return {"ImageId": image_id}

    def create_tags(self, **_: Any) -> dict:
        self.m.call("build", self.region, "CreateTags")
        return {}

    def describe_image_attribute(self, **_: Any) -> dict:
        self.m.call("build", self.region, "DescribeImageAttribute")
        return {"LaunchPermissions": []}

    def modify_image_attribute(self, **_: Any) -> dict:
        self.m.call("build", self.region, "ModifyImageAttribute")
        return {}

    def describe_snapshot_attribute(self, **_: Any) -> dict:
        self.m.call("build", self.region, "DescribeSnapshotAttribute")
        return {"CreateVolumePermissions": []}

    def modify_snapshot_attribute(self, **_: Any) -> dict:
        self.m.call("build", self.region, "ModifySnapshotAttribute")
        return {}


class AccountClient:
    """A workload account's EC2 or SSM through its publisher role: its own quotas."""

    def __init__(self, model: Model, account: str, region: str):
        self.m, self.account, self.region = model, account, region

    def describe_tags(self, **_: Any) -> dict:
        self.m.call(self.account, self.region, "DescribeTags")
        return {"Tags": []}

    def create_tags(self, **_: Any) -> dict:
        self.m.call(self.account, self.region, "CreateTags")
        return {}

    def get_parameter(self, **_: Any) -> dict:
        self.m.call(self.account, self.region, "ssm.GetParameter")
        raise ClientError({"Error": {"Code": "ParameterNotFound", "Message": ""}}, "GetParameter")

    def put_parameter(self, **_: Any) -> dict:
        self.m.call(self.account, self.region, "ssm.PutParameter")
        return {}


class ModelledClients:
    """handlers.distribute.Clients over the model; one AssumeRole per account, as AwsClients does."""

    def __init__(self, model: Model, images: dict[str, dict]):
        self.m, self.images = model, images
        self.lock, self.assumed, self.account_locks = threading.Lock(), set(), {}

    def build(self, service: str, region: str) -> BuildEc2:
        return BuildEc2(self.m, region, self.images)

    def target(self, account_id: str, service: str, region: str) -> AccountClient:
        with self.lock:
            account_lock = self.account_locks.setdefault(account_id, threading.Lock())
        with account_lock:
            if account_id not in self.assumed:
                self.m.call("build", REGIONS[0], "sts.AssumeRole")
                self.assumed.add(account_id)
        return AccountClient(self.m, account_id, region)


def _per_account_share(deliver):
    """The replaced design: each delivery first granted its account launch and snapshot permission."""

    def share_then_deliver(request, target, region, image, clients, sleep):
        ec2 = clients.build("ec2", region)
        ec2.describe_image_attribute(ImageId=image["ImageId"], Attribute="launchPermission")
        ec2.modify_image_attribute(ImageId=image["ImageId"], LaunchPermission={"Add": [{"UserId": target.account_id}]})
        for mapping in image["BlockDeviceMappings"]:
            snapshot = mapping["Ebs"]["SnapshotId"]
            ec2.describe_snapshot_attribute(SnapshotId=snapshot, Attribute="createVolumePermission")
            ec2.modify_snapshot_attribute(
                SnapshotId=snapshot, Attribute="createVolumePermission", OperationType="add", UserIds=[target.account_id]
            )
        return deliver(request, target, region, image, clients, sleep)

    return share_then_deliver


@dataclass
class Run:
    design: str
    workers: int
    modelled_seconds: float
    calls: Counter
    throttled: float
    failures: list[str]

    @property
    def attempts(self) -> int:
        return math.ceil(self.modelled_seconds / SCRIPT_SECONDS)


def _request(n_regions: int, n_accounts: int) -> tuple[dist.DistributeRequest, dict[str, dict]]:
    source = "ami-0123456789abcdef0"
    images = {
        source: {
            "ImageId": source,
            "Name": "bakehouse-al2023-1",
            "State": "available",
            "Tags": [{"Key": dist.TAG_APPROVED, "Value": "true"}],
            "BlockDeviceMappings": [{"Ebs": {"SnapshotId": "snap-0123456789abcdef0"}}],
        }
    }
    regions = REGIONS[:n_regions]
    envs = ("dev", "uat", "prod")
    request = dist.DistributeRequest(
        image_id=source,
        source_region=regions[0],
        family="al2023",
        region_keys=tuple((r, f"arn:aws:kms:{r}:{BUILD}:key/k") for r in regions),
        targets=tuple(dist.Target(f"{100000000000 + i:012d}", envs[i % 3]) for i in range(n_accounts)),
        share_with=(OU,),
        poll_timeout=4 * 3600,
    )  # the shipped PollSeconds and MaxWorkers defaults
    return request, images


def copy_minutes(regions: tuple[str, ...], seed: int) -> dict[str, float]:
    """Each copied region's modelled copy time (the first region holds the original)."""
    rng = random.Random(seed)
    return {r: rng.uniform(*COPY_MINUTES) for r in regions[1:]}


def distribute_once(design: str, workers: int, n_regions: int, n_accounts: int, scale: float, latency: float, seed: int) -> Run:
    request, images = _request(n_regions, n_accounts)
    copy_seconds = {r: 60 * m for r, m in copy_minutes(tuple(r for r, _ in request.region_keys), seed).items()}
    model = Model(scale, latency, copy_seconds)
    real_share, real_deliver = dist._share, dist._deliver
    if design == "per-account share":
        dist._share = lambda ec2, image_id, share_with: False
        dist._deliver = _per_account_share(real_deliver)
    try:
        model.start = time.perf_counter()
        result = dist.distribute(replace(request, max_workers=workers), ModelledClients(model, images), sleep=model.sleep)
        seconds = model.now()
    finally:
        dist._share, dist._deliver = real_share, real_deliver
    return Run(design, workers, seconds, model.calls, model.throttled, result.failures)


def run(
    n_regions: int = 4, n_accounts: int = 200, scale: float = 60.0, latency: float = 0.06, seed: int = 13, quiet: bool = False
) -> dict[str, Run]:
    default = dist.DistributeRequest.__dataclass_fields__["max_workers"].default
    plan = {"shipped": ("OU share", default), "sequential": ("OU share", 1), "replaced": ("per-account share", default)}
    runs = {}
    for name, (design, workers) in plan.items():
        runs[name] = distribute_once(design, workers, n_regions, n_accounts, scale, latency, seed)
        if not quiet:
            r = runs[name]
            print(
                f"  {name:<10} {design:<17} workers={workers:<2} {r.modelled_seconds / 60:6.1f} min modelled  "
                f"script runs needed {r.attempts} (of {SCRIPT_ATTEMPTS})  waited for tokens {r.throttled:6.1f} s  "
                f"failures {len(r.failures)}"
            )
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=4)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--scale", type=float, default=60.0, help="modelled seconds per real second")
    parser.add_argument("--latency-ms", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    copies = ", ".join(f"{r} {m:.1f}" for r, m in copy_minutes(REGIONS[: args.regions], args.seed).items())
    print(
        f"distribution model: {args.accounts} accounts x {args.regions} regions; copies (min) {copies}; "
        f"{args.latency_ms:g} ms a call; EC2 token buckets per account/region/action; clock x{args.scale:g}"
    )
    runs = run(args.regions, args.accounts, args.scale, args.latency_ms / 1000, args.seed)
    shipped, sequential, replaced = runs["shipped"], runs["sequential"], runs["replaced"]
    print("factory-account calls (shipped | replaced):")
    for action in sorted({a for (who, a) in {**shipped.calls, **replaced.calls} if who == "build"}):
        print(f"  {action:<28} {shipped.calls[('build', action)]:6d} | {replaced.calls[('build', action)]:6d}")
    print(
        f"estimated wall time, {args.accounts} accounts x {args.regions} regions: shipped "
        f"{shipped.modelled_seconds / 60:.1f} min; sequential baseline {sequential.modelled_seconds / 60:.1f} min "
        f"({sequential.modelled_seconds / shipped.modelled_seconds:.1f}x); per-account share "
        f"{replaced.modelled_seconds / 60:.1f} min ({replaced.modelled_seconds / shipped.modelled_seconds:.2f}x)"
    )
    return 0 if not any(r.failures for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
