"""The security account's incident responders: the only principals the workloads' break-glass roles trust."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from estate.naming import BREAK_GLASS_ROLE, RESPONDER_ROLE, role_arn

from ..lib.iam import document, statement

MAX_SESSION_SECONDS = 3600
# People reach the role from the security account's identities (IAM Identity Center or IAM users)
# that carry this tag; the tag is the membership list, kept outside this code.
RESPONDER_TAG = ("bakehouse:team", "security-responders")
# Read-only across the security account's services; acting happens only through break-glass.
READ_ONLY_POLICY_ARN = "arn:aws:iam::aws:policy/SecurityAudit"


@dataclass(frozen=True)
class RespondersArgs:
    security_account_id: str
    workload_account_ids: Sequence[str]


def trust_statements(args: RespondersArgs) -> list[dict]:
    key, value = RESPONDER_TAG
    return [
        statement(
            "TaggedRespondersWithMfa",
            ["sts:AssumeRole", "sts:TagSession"],
            principals={"AWS": f"arn:aws:iam::{args.security_account_id}:root"},
            conditions={
                "Bool": {"aws:MultiFactorAuthPresent": "true"},
                "NumericLessThan": {"aws:MultiFactorAuthAge": str(MAX_SESSION_SECONDS)},
                "StringEquals": {f"aws:PrincipalTag/{key}": value},
            },
        )
    ]


def permission_statements(args: RespondersArgs) -> list[dict]:
    """The break-glass role by name in the accounts of this role's organization, not this account's:
    one ARN per workload account passed IAM's 10,240 inline characters at about 190 envs. IAM User
    Guide, "AWS global condition context keys": aws:ResourceOrgID against ${aws:PrincipalOrgID}. Only
    workload stacks declare the role, and each trusts only this one (components/workload/break_glass.py)."""
    return [
        statement(
            "AssumeWorkloadBreakGlass",
            ["sts:AssumeRole"],
            [role_arn("*", BREAK_GLASS_ROLE)],
            conditions={
                "StringEquals": {"aws:ResourceOrgID": "${aws:PrincipalOrgID}"},
                "StringNotEquals": {"aws:ResourceAccount": args.security_account_id},
            },
        )
    ]


class Responders(pulumi.ComponentResource):
    def __init__(self, name: str, args: RespondersArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:security:Responders", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            f"{name}-role",
            name=RESPONDER_ROLE,
            description="Incident responders: read-only here, break-glass into workloads (MFA, one hour)",
            assume_role_policy=document(*trust_statements(args)),
            max_session_duration=MAX_SESSION_SECONDS,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(f"{name}-read-only", role=self.role.name, policy_arn=READ_ONLY_POLICY_ARN, opts=child)
        aws.iam.RolePolicy(f"{name}-break-glass", role=self.role.id, policy=document(*permission_statements(args)), opts=child)
        self.arn = self.role.arn
        self.register_outputs({"arn": self.arn})
