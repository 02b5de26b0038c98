"""The app instance role lets an instance upload its memory capture (and Run Command's output) under
the key layout handlers/isolate.py uses, and nowhere another instance's evidence lives: the
`${ec2:SourceInstanceARN}` policy variable resolved as IAM resolves it."""

from __future__ import annotations

from handlers.isolate import MEMORY_IMAGE, IsolateRequest, capture_commands
from tests.iam.evaluate import allowed

REGION, ACCOUNT, SECURITY = "eu-west-1", "444444444444", "222222222222"
BUCKET = f"bakehouse-evidence-{SECURITY}-{REGION}"
ME, OTHER = "i-0123456789abcdef0", "i-0fedcba9876543210"


def _policy() -> str:
    import json

    from components.workload.app_access import AppAccessArgs, instance_role_statements

    args = AppAccessArgs(
        env="dev",
        region=REGION,
        account_id=ACCOUNT,
        security_account_id=SECURITY,
        home_region=REGION,
        kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k",
        ami_parameter="/bakehouse/dev/ami/al2023",
        parameter_names=(),
        instance_type="t3.micro",
        log_retention_days=30,
        vpc_id="vpc-1",
        vpc_cidr="10.0.0.0/16",
        gateway_prefix_list_ids=(),
        extra_https_cidrs=(),
        sessions_bucket="sessions",
        evidence_bucket=BUCKET,
    )
    return json.dumps({"Version": "2012-10-17", "Statement": instance_role_statements(args)})


def _request(instance_id: str) -> IsolateRequest:
    return IsolateRequest(instance_id, "f-1", BUCKET, f"arn:aws:sns:{REGION}:{SECURITY}:t", region=REGION, account_id=ACCOUNT)


def _as(instance_id: str) -> dict[str, str]:
    return {"ec2:SourceInstanceARN": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance_id}"}


def test_an_instance_may_upload_its_capture_and_command_output_under_its_own_arn():
    policy, prefix = _policy(), _request(ME).prefix
    for key in (MEMORY_IMAGE, MEMORY_IMAGE + ".sha256", "memory-capture-output/cmd/i/awsrunShellScript/0/stdout"):
        assert allowed(policy, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/{prefix}{key}", _as(ME)), key


def test_an_instance_may_not_write_under_another_instance_s_arn():
    policy = _policy()
    assert not allowed(policy, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/{_request(OTHER).prefix}{MEMORY_IMAGE}", _as(ME))


def test_the_capture_uploads_exactly_where_the_role_allows():
    target = f"s3://{BUCKET}/{_request(ME).prefix}{MEMORY_IMAGE}"
    assert any(target in c for c in capture_commands(_request(ME)))
