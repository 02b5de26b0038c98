"""The flow-log analyst path: someone in the security account can run an Athena query over the flow
logs end to end. Each call the query makes is evaluated against the role's policy, and each KMS use
against the key policy that judges it (an account-root principal delegates to the role's IAM policy)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.iam.evaluate import DENY, Simulation, allowed, evaluate, simulate

SECURITY = "222222222222"
REGION = "eu-west-1"
ANALYST = f"arn:aws:iam::{SECURITY}:role/BakehouseFlowLogAnalyst"
RESPONDER = f"arn:aws:iam::{SECURITY}:role/BakehouseResponder"
WORKGROUP = f"arn:aws:athena:{REGION}:{SECURITY}:workgroup/bakehouse-security"
RESULTS = f"bakehouse-athena-results-{SECURITY}-{REGION}"
FLOWLOGS = f"bakehouse-flowlogs-{SECURITY}-{REGION}"
VIA_S3 = f"s3.{REGION}.amazonaws.com"
VIA_ATHENA = f"athena.{REGION}.amazonaws.com"


@pytest.fixture(scope="module")
def sec(stack_run):
    return stack_run("security")


def _of(run, type_token: str, name: str):
    [found] = [r for r in run.of_type(type_token) if r.name == name]
    return found


def _analyst_policy(run) -> dict[str, Any]:
    return json.loads(_of(run, "aws:iam/rolePolicy:RolePolicy", "security-flowlogs-analyst").inputs["policy"])


def key_arn(name: str) -> str:
    # The mock's arn for a key in the security account's provider (tools/mockrun._arn_for).
    return f"arn:aws:kms:{REGION}:{SECURITY}:key/{name}"


def key_use_allowed(
    key_policy: dict[str, Any], role_policy: dict[str, Any], key: str, caller: str, action: str, context: dict[str, str]
) -> bool:
    """KMS's verdict: the key policy judges the caller, and where it names the account root (delegation)
    the caller's IAM policy must allow too. AWS puts the caller's ARN and account in every request."""
    request = {"aws:PrincipalArn": caller, "kms:CallerAccount": caller.split(":")[4], **context}
    [verdict] = simulate([Simulation(caller, action, key, request, identity=(role_policy,), resource_policy=key_policy)])
    return verdict.allowed


@pytest.mark.parametrize("action", ["kms:GenerateDataKey", "kms:Decrypt"])
@pytest.mark.parametrize("via", [VIA_S3, VIA_ATHENA])
def test_analyst_query_may_use_the_results_key_through_s3_and_athena(sec, action, via):
    policy = json.loads(sec.named("security-key-key").inputs["policy"])
    role = _analyst_policy(sec)
    key = key_arn("security-key-key")
    assert key_use_allowed(policy, role, key, ANALYST, action, {"kms:ViaService": via})


def test_results_key_admits_no_one_else_and_no_other_path(sec):
    policy = json.loads(sec.named("security-key-key").inputs["policy"])
    role = _analyst_policy(sec)
    key = key_arn("security-key-key")
    assert not key_use_allowed(policy, role, key, ANALYST, "kms:Decrypt", {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"})
    assert not key_use_allowed(policy, role, key, RESPONDER, "kms:Decrypt", {"kms:ViaService": VIA_S3})
    assert not key_use_allowed(
        policy, role, key, "arn:aws:iam::444444444444:role/BakehouseFlowLogAnalyst", "kms:Decrypt", {"kms:ViaService": VIA_S3}
    )


def test_analyst_reads_flow_log_objects_through_the_flowlog_key(sec):
    policy = json.loads(sec.named("security-archive-flowlogs-key-key").inputs["policy"])
    key = key_arn("security-archive-flowlogs-key-key")
    assert key_use_allowed(policy, _analyst_policy(sec), key, ANALYST, "kms:Decrypt", {"kms:ViaService": VIA_S3})


def test_analyst_may_run_the_query_and_read_what_it_touches(sec):
    role = _analyst_policy(sec)
    glue = f"arn:aws:glue:{REGION}:{SECURITY}"
    calls = [
        ("athena:StartQueryExecution", WORKGROUP),
        ("athena:GetQueryExecution", WORKGROUP),
        ("athena:GetQueryResults", WORKGROUP),
        ("athena:GetNamedQuery", WORKGROUP),
        ("glue:GetDatabase", f"{glue}:catalog"),
        ("glue:GetDatabase", f"{glue}:database/bakehouse_logs"),
        ("glue:GetTable", f"{glue}:table/bakehouse_logs/vpc_flow_logs"),
        ("s3:ListBucket", f"arn:aws:s3:::{FLOWLOGS}"),
        ("s3:GetObject", f"arn:aws:s3:::{FLOWLOGS}/AWSLogs/444444444444/vpcflowlogs/eu-west-1/2026/11/23/x.log.gz"),
        ("s3:GetBucketLocation", f"arn:aws:s3:::{RESULTS}"),
        ("s3:PutObject", f"arn:aws:s3:::{RESULTS}/bakehouse-security/abc.csv"),
        ("s3:GetObject", f"arn:aws:s3:::{RESULTS}/bakehouse-security/abc.csv"),
    ]
    assert [c for c in calls if not allowed(role, *c)] == []
    assert not allowed(role, "s3:PutObject", f"arn:aws:s3:::{RESULTS}/elsewhere/abc.csv")
    assert not allowed(role, "s3:GetObject", f"arn:aws:s3:::bakehouse-trail-{SECURITY}-{REGION}/AWSLogs/x")
    assert not allowed(role, "athena:StartQueryExecution", f"arn:aws:athena:{REGION}:{SECURITY}:workgroup/primary")


def test_workgroup_writes_results_where_the_analyst_may_and_the_bucket_accepts_them(sec):
    workgroup = [w for w in sec.of_type("aws:athena/workgroup:Workgroup")][0].inputs["configuration"]
    result = workgroup["resultConfiguration"]
    assert result["outputLocation"] == f"s3://{RESULTS}/bakehouse-security/"
    assert result["encryptionConfiguration"]["kmsKeyArn"] == key_arn("security-key-key")
    bucket_policy = json.loads(sec.named("security-athena-results-policy").inputs["policy"])
    put = {
        "aws:SecureTransport": "true",
        "s3:TlsVersion": "1.3",
        "s3:x-amz-server-side-encryption": "aws:kms",
        "s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn("security-key-key"),
    }
    assert evaluate(bucket_policy, "s3:PutObject", f"arn:aws:s3:::{RESULTS}/bakehouse-security/a.csv", put) != DENY


def test_analyst_role_is_for_security_account_people_with_mfa(sec):
    role = _of(sec, "aws:iam/role:Role", "security-flowlogs-analyst")
    assert role.inputs["name"] == "BakehouseFlowLogAnalyst"
    [trust] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{SECURITY}:root"}
    with_mfa = {"aws:MultiFactorAuthPresent": "true", "aws:MultiFactorAuthAge": "60"}
    assert allowed({"Statement": [trust]}, "sts:AssumeRole", ANALYST, with_mfa)
    assert not allowed({"Statement": [trust]}, "sts:AssumeRole", ANALYST, {"aws:MultiFactorAuthPresent": "false"})
    assert not allowed({"Statement": [trust]}, "sts:AssumeRole", ANALYST, {})
