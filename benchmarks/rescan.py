"""Rescan launches: N running instances over K unique AMIs across the workload accounts -> K scan
instances, not N (the cost argument for deduplicating before launching).

    .venv/bin/python benchmarks/rescan.py [--instances 500] [--amis 12] [--batch 10]

Runs the real rescan (discover -> launch -> collect -> cleanup) in-process against moto, with the
recording Inspector fake covering each scan instance it sees and reporting nothing. Prints the
candidates found, scan instances launched, peak scan instances alive, API calls by operation, and
the wall time. moto answers without network latency, so the time is the handler's own work plus
moto's, not what AWS would take.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BUILD_REGION = "eu-west-1"
ACCOUNTS = {"dev": "222222222222", "uat": "333333333333", "prod": "444444444444"}


@dataclass(frozen=True)
class Measurement:
    running_instances: int
    unique_amis: int
    candidates: int
    launches: int
    peak_alive: int
    left_running: int
    api_calls: dict[str, int]
    seconds: float


def measure(instances: int = 500, amis: int = 12, batch: int = 10) -> Measurement:
    for key, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": BUILD_REGION, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}.items():
        os.environ.setdefault(key, value)
    import boto3
    from moto import mock_aws

    from handlers.rescan import Clients, RescanRequest, rescan
    from tests.fakes.seed import golden_ami
    from tests.handlers._operations_fakes import FakeAutomation, InspectorThatScans, LaunchLog

    calls: Counter[str] = Counter()

    def count(model, **_):
        calls[model.name] += 1

    with mock_aws():
        c = lambda s: boto3.client(s, region_name=BUILD_REGION)  # noqa: E731
        ec2, ssm, s3 = c("ec2"), c("ssm"), c("s3")
        images = [golden_ami(ec2, f"bakehouse-fam{n}-1", {"bakehouse:family": f"fam{n}"}) for n in range(amis)]
        s3.create_bucket(Bucket="bench-evidence", CreateBucketConfiguration={"LocationConstraint": BUILD_REGION})
        key = c("kms").create_key()["KeyMetadata"]["Arn"]
        s3.put_bucket_encryption(Bucket="bench-evidence", ServerSideEncryptionConfiguration={"Rules": [
            {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]})
        c("iam").create_instance_profile(InstanceProfileName="scan")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/20")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
        sg = ec2.create_security_group(GroupName="scan", Description="scan", VpcId=vpc)["GroupId"]
        topic = c("sns").create_topic(Name="bakehouse-security")["TopicArn"]

        workload = {}
        for account in ACCOUNTS.values():
            creds = c("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/BakehouseImageScanner",
                                         RoleSessionName="bench")["Credentials"]
            session = boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                                    aws_session_token=creds["SessionToken"], region_name=BUILD_REGION)
            workload[account] = (session.client("ec2"), session.client("ssm"))
            for client in workload[account]:
                client.meta.events.register("before-call.*.*", count)
        # Spread the instances over accounts and AMIs, every AMI in use somewhere.
        per_slot: Counter[tuple[str, str]] = Counter()
        for n in range(instances):
            per_slot[(list(ACCOUNTS.values())[n % len(ACCOUNTS)], images[n % amis])] += 1
        for (account, image), number in per_slot.items():
            workload[account][0].run_instances(ImageId=image, MinCount=number, MaxCount=number)
        calls.clear()

        log = LaunchLog(ec2)
        for client in (ec2, ssm, s3):
            client.meta.events.register("before-call.*.*", count)
        inspector = InspectorThatScans(c("inspector2"), ec2, {}, after_polls=0, s3=s3)
        clients = Clients(log, ssm, s3, c("sns"), inspector, FakeAutomation(ssm, {"Bakehouse-Pipeline"}),
                          workload.__getitem__)
        request = RescanRequest(
            accounts=tuple(ACCOUNTS.items()), subnet_id=subnet, security_group_ids=(sg,), instance_profile="scan",
            evidence_bucket="bench-evidence", topic_arn=topic, execution_id="bench",
            pipeline_role_arn="arn:aws:iam::123456789012:role/BakehouseFactoryAutomation", batch_size=batch)
        started = time.perf_counter()
        result = rescan(request, clients, sleep=lambda s: None)
        seconds = time.perf_counter() - started
        left = ec2.describe_instances(Filters=[{"Name": "tag:bakehouse:purpose", "Values": ["rescan"]},
                                               {"Name": "instance-state-name", "Values": ["pending", "running"]}])
        for name in [k for k in calls if k.startswith("ListCoverage") or k.startswith("ListFindings")]:
            calls.pop(name)
        calls.update({k: len(inspector.calls_to(k)) for k in ("list_coverage", "list_findings")})
        return Measurement(instances, amis, result.candidates, log.launches, log.peak,
                           sum(len(r["Instances"]) for r in left["Reservations"]), dict(calls), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--amis", type=int, default=12)
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args()
    m = measure(args.instances, args.amis, args.batch)
    print(f"rescan: {m.running_instances} running instances over {m.unique_amis} unique AMIs in "
          f"{len(ACCOUNTS)} workload accounts")
    print(f"  candidates found   {m.candidates}")
    print(f"  scan launches      {m.launches}   (one per unique AMI; naive per-instance: {m.running_instances})")
    print(f"  peak alive         {m.peak_alive}   (batch size {args.batch})")
    print(f"  left running       {m.left_running}")
    print(f"  wall time          {m.seconds:.2f} s (in-process moto, no network latency)")
    print("  API calls          " + ", ".join(f"{k} {v}" for k, v in sorted(m.api_calls.items())))
    if m.launches != m.unique_amis or m.left_running:
        sys.exit(f"FAIL: expected {m.unique_amis} launches and none left running")


if __name__ == "__main__":
    main()
