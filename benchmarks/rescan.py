"""Rescan launches: N running instances over K unique AMIs across the workload accounts, plus I
published AMIs nothing runs. Inspector already scans the running instances in place, so the rescan
reads their findings and launches scan instances only for the I idle AMIs - against one scan
instance per published AMI (K + I), and against one per running instance (N).

    .venv/bin/python -m benchmarks.rescan [--instances 500] [--amis 12] [--idle 4] [--uncovered 0]
                                          [--batch 10] [--scan-minutes 30]

Runs the real rescan (discover -> launch -> collect -> cleanup) in-process against moto: each
workload account's Inspector fake covers the instances running there (all but --uncovered of the
AMIs, as if those instances had no SSM agent), the build account's covers each scan instance it
sees, and none reports a finding. Scan-hours are launches x --scan-minutes, an assumption (Inspector
reports an instance minutes after SSM inventory; the document allows WaitSeconds, 1,800 s, for it),
not a measurement. moto answers without network latency, so the wall time is the handler's own
work plus moto's, not what AWS would take.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass

BUILD_REGION = "eu-west-1"
ACCOUNTS = {"dev": "222222222222", "uat": "333333333333", "prod": "444444444444"}


@dataclass(frozen=True)
class Measurement:
    running_instances: int
    unique_amis: int
    idle_amis: int
    candidates: int
    judged_in_place: int
    launches: int
    peak_alive: int
    left_running: int
    api_calls: dict[str, int]
    seconds: float
    scan_minutes: float = 30

    @property
    def baseline_launches(self) -> int:
        """One scan instance per published (candidate) AMI, the seed's economy."""
        return self.candidates

    @property
    def scan_hours(self) -> float:
        return self.launches * self.scan_minutes / 60

    @property
    def baseline_scan_hours(self) -> float:
        return self.baseline_launches * self.scan_minutes / 60


def measure(
    instances: int = 500, amis: int = 12, batch: int = 10, idle: int = 4, uncovered: int = 0, scan_minutes: float = 30
) -> Measurement:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": BUILD_REGION,
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    }.items():
        os.environ.setdefault(key, value)
    import boto3
    from moto import mock_aws

    from handlers.publish import PublishRequest, publish
    from handlers.rescan import Clients, RescanRequest, rescan
    from tests.fakes import FakeInspector2
    from tests.fakes.operations import FakeAutomation, InspectorThatScans, LaunchLog
    from tests.fakes.seed import golden_ami

    calls: Counter[str] = Counter()

    def count(model, **_):
        calls[model.name] += 1

    with mock_aws():
        c = lambda s: boto3.client(s, region_name=BUILD_REGION)  # noqa: E731
        ec2, ssm, s3 = c("ec2"), c("ssm"), c("s3")
        images = [golden_ami(ec2, f"bakehouse-fam{n}-1", {"bakehouse:family": f"fam{n}"}) for n in range(amis)]
        for n in range(idle):  # published, run nowhere: only these need a scan instance
            image = golden_ami(
                ec2, f"bakehouse-idle{n}-1", {"bakehouse:family": f"idle{n}", "bakehouse:inspector-verdict": "PASS"}
            )
            publish(PublishRequest(image, f"idle{n}", "bench"), ec2, ssm)
        s3.create_bucket(Bucket="bench-evidence", CreateBucketConfiguration={"LocationConstraint": BUILD_REGION})
        key = c("kms").create_key()["KeyMetadata"]["Arn"]
        s3.put_bucket_encryption(
            Bucket="bench-evidence",
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]
            },
        )
        c("iam").create_instance_profile(InstanceProfileName="scan")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/20")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
        sg = ec2.create_security_group(GroupName="scan", Description="scan", VpcId=vpc)["GroupId"]
        topic = c("sns").create_topic(Name="bakehouse-security")["TopicArn"]

        workload, inspectors = {}, {}
        for account in ACCOUNTS.values():
            creds = c("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/BakehouseImageScanner", RoleSessionName="bench")[
                "Credentials"
            ]
            session = boto3.Session(
                aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"],
                aws_session_token=creds["SessionToken"],
                region_name=BUILD_REGION,
            )
            workload[account] = (session.client("ec2"), session.client("ssm"))
            inspectors[account] = FakeInspector2(session.client("inspector2"), account_id=account, region=BUILD_REGION)
            for client in workload[account]:
                client.meta.events.register("before-call.*.*", count)
        # Spread the instances over accounts and AMIs, every AMI in use somewhere.
        per_slot: Counter[tuple[str, str]] = Counter()
        for n in range(instances):
            per_slot[(list(ACCOUNTS.values())[n % len(ACCOUNTS)], images[n % amis])] += 1
        for (account, image), number in per_slot.items():
            launched = workload[account][0].run_instances(ImageId=image, MinCount=number, MaxCount=number)
            if image not in images[amis - uncovered :]:  # Inspector scans these where they run
                for instance in launched["Instances"]:
                    inspectors[account].add_coverage(instance["InstanceId"], ami_id=image)
        calls.clear()

        log = LaunchLog(ec2)
        for client in (ec2, ssm, s3):
            client.meta.events.register("before-call.*.*", count)
        inspector = InspectorThatScans(c("inspector2"), ec2, {}, after_polls=0, s3=s3)
        clients = Clients(
            log,
            ssm,
            s3,
            c("sns"),
            inspector,
            FakeAutomation(ssm, {"Bakehouse-Pipeline"}),
            workload.__getitem__,
            findings=inspectors.__getitem__,
        )
        request = RescanRequest(
            accounts=tuple(ACCOUNTS.items()),
            subnet_id=subnet,
            security_group_ids=(sg,),
            instance_profile="scan",
            evidence_bucket="bench-evidence",
            topic_arn=topic,
            execution_id="bench",
            pipeline_role_arn="arn:aws:iam::123456789012:role/BakehouseFactoryAutomation",
            batch_size=batch,
        )
        started = time.perf_counter()
        result = rescan(request, clients, sleep=lambda s: None)
        seconds = time.perf_counter() - started
        left = ec2.describe_instances(
            Filters=[
                {"Name": "tag:bakehouse:purpose", "Values": ["rescan"]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ]
        )
        for name in [k for k in calls if k.startswith("ListCoverage") or k.startswith("ListFindings")]:
            calls.pop(name)
        calls.update({k: len(inspector.calls_to(k)) for k in ("list_coverage", "list_findings")})
        calls.update(
            {f"member {k}": sum(len(i.calls_to(k)) for i in inspectors.values()) for k in ("list_coverage", "list_findings")}
        )
        return Measurement(
            instances,
            amis,
            idle,
            result.candidates,
            len(result.judged_in_place),
            log.launches,
            log.peak,
            sum(len(r["Instances"]) for r in left["Reservations"]),
            dict(calls),
            seconds,
            scan_minutes,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=500)
    parser.add_argument("--amis", type=int, default=12)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--idle", type=int, default=4)
    parser.add_argument("--uncovered", type=int, default=0)
    parser.add_argument("--scan-minutes", type=float, default=30)
    args = parser.parse_args()
    m = measure(args.instances, args.amis, args.batch, args.idle, args.uncovered, args.scan_minutes)
    print(
        f"rescan: {m.running_instances} running instances over {m.unique_amis} unique AMIs in "
        f"{len(ACCOUNTS)} workload accounts, {m.idle_amis} published AMIs run nowhere"
    )
    print(f"  candidates found   {m.candidates}")
    print(f"  judged in place    {m.judged_in_place}   (Inspector's findings where they run)")
    print(
        f"  scan launches      {m.launches}   (one per published AMI: {m.baseline_launches}; "
        f"per running instance: {m.running_instances})"
    )
    print(
        f"  scan-hours         {m.scan_hours:.1f}   (one per published AMI: {m.baseline_scan_hours:.1f}; "
        f"{m.scan_minutes:g} min a scan, assumed)"
    )
    print(f"  peak alive         {m.peak_alive}   (batch size {args.batch})")
    print(f"  left running       {m.left_running}")
    print(f"  wall time          {m.seconds:.2f} s (in-process moto, no network latency)")
    print("  API calls          " + ", ".join(f"{k} {v}" for k, v in sorted(m.api_calls.items())))
    expected = m.idle_amis + args.uncovered
    if m.launches != expected or m.left_running:
        sys.exit(f"FAIL: expected {expected} launches and none left running")


if __name__ == "__main__":
    main()
