"""Distribution parallelism: 4 regions x 20 accounts against a local moto server, parallel vs sequential.

    .venv/bin/python benchmarks/distribution.py [--regions 4] [--accounts 20] [--latency-ms 50] [--workers 20]

The moto server (ThreadedMotoServer on 127.0.0.1, a random free port) runs in a child process.
Moto answers in well under a millisecond of network time, which would make any comparison of
concurrency meaningless: real AWS API calls cost tens of milliseconds of round trip, during which a
sequential distributor sits idle. So every API call is delayed by a fixed --latency-ms in a
botocore `before-send` hook (the request still goes to moto and does its real work); the output
says so. Not modelled: AMI copies complete instantly in moto, while real ones take minutes - which
only widens the gap in favour of parallel regions.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import socket
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REGIONS = ("eu-west-1", "us-east-1", "eu-central-1", "ap-southeast-2", "us-west-2", "eu-north-1")
ENVS = ("dev", "uat", "prod")


def _serve(port: int, ready, stop) -> None:
    """The moto server, in a process of its own as AWS would be: its CPU work must not share the
    distributor's GIL, or the benchmark would measure one interpreter's lock, not the handler."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per call otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    ready.set()
    stop.wait()
    server.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Run:
    workers: int
    seconds: float
    calls: Counter
    failures: list[str]
    region_images: dict[str, str]
    outcomes: Counter


class _LatencyClients:
    """The handler's own AwsClients, on a session whose every request first waits `latency` seconds.

    Workload-account EC2 goes through tests/fakes SharedImageTagsEc2 (moto cannot tag an image shared
    with an account); the fake's own look-ups at the server stand in for the one real CreateTags call.
    """

    def __new__(cls, latency: float, counter: Counter, lock: threading.Lock):
        import boto3

        from handlers.distribute import AwsClients
        from tests.fakes import SharedImageTagsEc2

        class TaggingClients(AwsClients):
            shared_tags: dict = {}

            def target(self, account_id, service, region):
                inner = super().target(account_id, service, region)
                if service != "ec2":
                    return inner
                with self._lock:
                    fakes = self.__dict__.setdefault("_fakes", {})
                    if (account_id, region) not in fakes:
                        fakes[(account_id, region)] = SharedImageTagsEc2(
                            inner, account_id, lambda r: self.build("ec2", r), self.shared_tags)
                    return fakes[(account_id, region)]

        session = boto3.Session()

        def delay(event_name: str, **_):
            with lock:
                counter[event_name.split(".", 1)[1]] += 1
            time.sleep(latency)

        session.events.register("before-send", delay)
        return TaggingClients("BakehouseImagePublisher", REGIONS[0], session=session)


def _seed(regions: tuple[str, ...], n_accounts: int):
    import boto3

    from handlers.distribute import DistributeRequest, Target
    from tests.fakes.seed import golden_ami

    ec2 = boto3.client("ec2", region_name=regions[0])
    image = golden_ami(ec2, tags={"bakehouse:approved": "true"})
    keys = {r: boto3.client("kms", region_name=r).create_key()["KeyMetadata"]["Arn"] for r in regions}
    targets = tuple(Target(f"{100000000000 + i:012d}", ENVS[i % 3]) for i in range(n_accounts))
    return DistributeRequest(image_id=image, source_region=regions[0], family="al2023",
                             region_keys=tuple(sorted(keys.items())), targets=targets, poll_seconds=1)


def run(n_regions: int = 4, n_accounts: int = 20, latency: float = 0.05, workers: int = 20,
        quiet: bool = False) -> tuple[Run, Run]:
    """Sequential then parallel distribution of a fresh image on a fresh moto server state."""
    from dataclasses import replace

    from handlers.distribute import distribute

    regions = REGIONS[:n_regions]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "MOTO_EC2_LOAD_DEFAULT_AMIS")}
    os.environ.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_SESSION_TOKEN": "bench", "AWS_DEFAULT_REGION": regions[0],
                       "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"})
    ctx = multiprocessing.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    server = ctx.Process(target=_serve, args=(port, ready, stop), daemon=True)
    server.start()
    if not ready.wait(60):
        raise RuntimeError("moto server did not start within 60 s")
    runs = []
    try:
        for n in (1, workers):
            urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).read()
            request = replace(_seed(regions, n_accounts), max_workers=n)
            counter: Counter = Counter()
            clients = _LatencyClients(latency, counter, threading.Lock())
            start = time.perf_counter()
            result = distribute(request, clients)
            seconds = time.perf_counter() - start
            runs.append(Run(n, seconds, counter, result.failures,
                            result.as_dict()["RegionImageIds"], Counter(o.action for o in result.accounts.values())))
            if not quiet:
                print(f"  max_workers={n:<3} {seconds:7.2f} s  {sum(counter.values()):4d} API calls  "
                      f"outcomes {dict(runs[-1].outcomes)}  failures {len(result.failures)}")
    finally:
        stop.set()
        server.join(10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return runs[0], runs[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", type=int, default=4)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=20)
    args = parser.parse_args()
    print(f"distribution benchmark: {args.regions} regions x {args.accounts} accounts on a local moto server; "
          f"every API call delayed {args.latency_ms:g} ms (botocore before-send hook) to model AWS round trips")
    sequential, parallel = run(args.regions, args.accounts, args.latency_ms / 1000, args.workers)
    print("API calls per run (by operation):")
    for op, n in sorted(parallel.calls.items()):
        print(f"  {op:<28} {n:4d}")
    ratio = sequential.seconds / parallel.seconds
    same = sequential.calls == parallel.calls and sequential.outcomes == parallel.outcomes
    print(f"wall time: sequential {sequential.seconds:.2f} s, parallel ({args.workers} workers) "
          f"{parallel.seconds:.2f} s -> {ratio:.1f}x (target >= 5x); same calls and outcomes: {same}")
    return 0 if same and not sequential.failures and not parallel.failures else 1


if __name__ == "__main__":
    sys.exit(main())
