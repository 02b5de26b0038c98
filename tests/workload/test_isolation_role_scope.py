"""The incident-response automation role's grants for issue 16's steps, each scoped as narrowly as AWS
lets it be: evidence copies only for the security account, rules only on isolation groups, its own
executions, the forensic-source parameter."""

from __future__ import annotations

import re

from tests.iam.evaluate import allowed
from tests.workload._incident_response_support import ACCOUNT, REGION, SECURITY, role_policy

SNAP = f"arn:aws:ec2:{REGION}::snapshot/snap-0123456789abcdef0"
GROUP = f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-0123456789abcdef0"


def _policy(stack_run):
    return role_policy(stack_run("prod"), "prod-incident-response-automation-role")


def _security(stack_run) -> str:
    return stack_run("prod").exports.get("securityAccountId") or SECURITY


def test_evidence_copies_may_be_shared_with_the_security_account_only(stack_run):
    policy, security = _policy(stack_run), _security(stack_run)
    copy = {"aws:ResourceTag/bakehouse:copy-of": "snap-0aaa"}
    assert allowed(policy, "ec2:ModifySnapshotAttribute", SNAP, {**copy, "ec2:Add/userId": security})
    assert not allowed(policy, "ec2:ModifySnapshotAttribute", SNAP, {**copy, "ec2:Add/userId": "999999999999"})
    assert not allowed(policy, "ec2:ModifySnapshotAttribute", SNAP, {"ec2:Add/userId": security})


def test_snapshot_copies_must_name_their_original(stack_run):
    policy = _policy(stack_run)
    assert allowed(policy, "ec2:CopySnapshot", SNAP, {"aws:RequestTag/bakehouse:copy-of": "snap-0aaa"})
    assert not allowed(policy, "ec2:CopySnapshot", SNAP)


def test_ingress_may_be_opened_only_on_isolation_groups(stack_run):
    policy = _policy(stack_run)
    assert allowed(policy, "ec2:AuthorizeSecurityGroupIngress", GROUP, {"aws:ResourceTag/bakehouse:purpose": "isolation"})
    assert not allowed(policy, "ec2:AuthorizeSecurityGroupIngress", GROUP, {"aws:ResourceTag/bakehouse:purpose": "app"})


def test_the_role_reads_its_own_executions_and_the_forensic_source_only(stack_run):
    policy = _policy(stack_run)
    own = re.search(r'"ec2:DescribeInstanceAttribute".*?arn:aws:ec2:[a-z0-9-]+:(\d{12}):instance', policy).group(1)
    assert allowed(policy, "ssm:GetAutomationExecution", f"arn:aws:ssm:{REGION}:{own}:automation-execution/e-1")
    assert not allowed(policy, "ssm:GetAutomationExecution", f"arn:aws:ssm:{REGION}:999999999999:automation-execution/e-1")
    assert allowed(
        policy, "ssm:GetParameter", f"arn:aws:ssm:{REGION}:{own}:parameter/bakehouse/incident-response/forensic-source"
    )
    assert not allowed(policy, "ssm:GetParameter", f"arn:aws:ssm:{REGION}:{own}:parameter/bakehouse/prod/secrets/db")
