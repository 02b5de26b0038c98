"""The organization as the org stack records it (OUs, accounts, SCP attachments) and requests judged
against its SCPs with the one IAM evaluator (tests/iam/evaluate.py), through the OU chain each account sits in,
root first. Shared by the SCP tests (tests/org/test_org_scps*.py, tests/security/test_security_stack.py) and by
tests/iam/scp_fit.py."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.iam.evaluate import Simulation, Verdict, simulate, with_full_aws_access

MGMT, SECURITY, BUILD, DEV, UAT, PROD = (
    "111111111111",
    "222222222222",
    "333333333333",
    "444444444444",
    "555555555555",
    "666666666666",
)
ACCOUNT_KEYS = {"security": SECURITY, "build": BUILD, "dev": DEV, "uat": UAT, "prod": PROD}
ROOT = "root"


# --- requests, judged by the one evaluator (tests/iam/evaluate.py) ----------------------------------


@dataclass(frozen=True)
class Request:
    action: str
    resources: tuple[str, ...] = ("*",)
    principal: str = "arn:aws:iam::444444444444:role/app"
    context: dict[str, Any] = field(default_factory=dict)

    def keys(self) -> dict[str, Any]:
        # aws:PrincipalArn is always present; other keys only when the request carries them.
        return {"aws:PrincipalArn": self.principal, "aws:RequestedRegion": "eu-west-1", **self.context}


def scp_verdicts(levels: list[tuple[str, list[dict[str, Any]]]], request: Request) -> list[Verdict]:
    """One verdict per resource (AWS authorizes each resource of a request on its own), FullAWSAccess
    attached at every level beside the estate's deny lists, as in the organization."""
    return simulate(
        [
            Simulation(request.principal, request.action, resource, request.keys(), scps=with_full_aws_access(levels))
            for resource in request.resources
        ]
    )


def denied_by(levels: list[tuple[str, list[dict[str, Any]]]], request: Request) -> list[str]:
    """Sids of the SCP Deny statements that match (the estate's SCPs are deny lists over FullAWSAccess)."""
    return sorted({sid for verdict in scp_verdicts(levels, request) for sid in verdict.denied_by("scp")})


def statement_applies(stmt: dict[str, Any], request: Request) -> bool:
    """Whether one Deny statement, as the only SCP, denies the request."""
    levels = [(ROOT, [{"Version": "2012-10-17", "Statement": [stmt]}])]
    return any(v.result == "ExplicitlyDenied" for v in scp_verdicts(levels, request))


# --- the recorded organization ---------------------------------------------------------------------


class OrgView:
    def __init__(self, run):
        self.run = run
        self.ous = {r.name: r for r in run.of_type("aws:organizations/organizationalUnit:OrganizationalUnit")}
        self.ou_by_id = {f"{name}-id": name for name in self.ous}
        self.policies = {r.name: r for r in run.of_type("aws:organizations/policy:Policy")}
        self.policy_by_id = {f"{name}-id": r for name, r in self.policies.items()}
        self.attachments = run.of_type("aws:organizations/policyAttachment:PolicyAttachment")
        self.accounts = {r.inputs["tags"]["bakehouse:account"]: r for r in run.of_type("aws:organizations/account:Account")}

    def target_of(self, attachment) -> str:
        # The mocks leave the organization's root id unknown; the attachment's own name says root.
        if attachment.name.endswith("-root"):
            return ROOT
        return self.ou_by_id[attachment.inputs["targetId"]]

    def chain(self, account_key: str) -> list[str]:
        """The OU names from the account's OU up to the root, then the root."""
        chain, parent = [], self.accounts[account_key].inputs["parentId"]
        while parent in self.ou_by_id:
            ou = self.ou_by_id[parent]
            chain.append(ou)
            parent = self.ous[ou].inputs.get("parentId")
        return [*chain, ROOT]

    def levels(
        self,
        account_key: str,
        policy_type: str = "SERVICE_CONTROL_POLICY",
    ) -> list[tuple[str, list[dict[str, Any]]]]:
        """The documents attached at each level of the account's chain, root first, as AWS walks it."""
        levels = []
        for target in reversed(self.chain(account_key)):
            docs = [
                json.loads(self.policy_by_id[a.inputs["policyId"]].inputs["content"])
                for a in self.attachments
                if self.target_of(a) == target and self.policy_by_id[a.inputs["policyId"]].inputs["type"] == policy_type
            ]
            levels.append((target, docs))
        return levels

    def effective(self, account_key: str, policy_type: str = "SERVICE_CONTROL_POLICY") -> list[dict[str, Any]]:
        targets = set(self.chain(account_key))
        docs = []
        for attachment in self.attachments:
            policy = self.policy_by_id[attachment.inputs["policyId"]]
            if self.target_of(attachment) in targets and policy.inputs["type"] == policy_type:
                docs.append(json.loads(policy.inputs["content"]))
        return docs


@pytest.fixture(scope="module")
def org(stack_run):
    return OrgView(stack_run("org"))


def role_arn(account: str, name: str = "app") -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def denied(org: OrgView, account_key: str, request: Request) -> list[str]:
    return denied_by(org.levels(account_key), request)
