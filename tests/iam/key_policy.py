"""The questions the KMS tests ask of a key policy, put to the one evaluator (tests/iam/evaluate.py):
may this caller do this with the key on the key policy alone, or only with its own IAM policy too?

- "alone": the request with no identity policy. AWS allows it when the key policy names the caller
  itself in the key's account (a service principal; a role, including a service-linked role, which
  gets nothing from IAM delegation).
- "with IAM": the same request with an identity policy that allows everything: the most any IAM
  policy of the caller could add. A key policy naming the caller's account (`:root`) only delegates,
  and a caller in another account always needs both (AWS KMS Developer Guide, "Key policies in AWS
  KMS" and "Allowing users in other accounts to use a KMS key").
- A recreated role: a key policy holds a role principal as the role's unique id, so after the role is
  deleted and created again under the same ARN the statement names the old id (IAM User Guide, "AWS
  JSON policy elements: Principal", role principals). The policy is evaluated with the caller's ARN in
  Principal replaced by such an id, which matches no caller.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.iam.evaluate import Simulation, Verdict, simulate

ALLOW, DELEGATED, DENY, IMPLICIT_DENY = "Allow", "Delegated", "Deny", "ImplicitDeny"
REGION = "eu-west-1"
ALLOW_EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass(frozen=True)
class Caller:
    """Who makes the request. `arn` is a role ARN (aws:PrincipalArn) or a service principal name."""

    arn: str
    service: bool = False
    recreated: bool = False  # a role deleted and created again under the same ARN (a new unique id)

    @property
    def account(self) -> str | None:
        return None if self.service else self.arn.split(":")[4]

    def context(self) -> dict[str, Any]:
        if self.service:
            return {}
        return {
            "aws:PrincipalArn": self.arn,
            "aws:PrincipalAccount": self.account,
            "kms:CallerAccount": self.account,
            "aws:PrincipalType": "AssumedRole",
        }


@dataclass(frozen=True)
class KeyVerdict:
    decision: str  # ALLOW (the key policy alone), DELEGATED (needs the caller's IAM too), DENY, IMPLICIT_DENY
    sids: tuple[str, ...] = ()  # the key policy statements that decided it
    alone: Verdict | None = None
    with_iam: Verdict | None = None

    @property
    def allowed(self) -> bool:
        return self.decision == ALLOW

    @property
    def allowed_with_iam(self) -> bool:
        return self.decision in (ALLOW, DELEGATED)


def key_arn(account: str, region: str = REGION) -> str:
    return f"arn:aws:kms:{region}:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _unique_id(arn: str) -> str:
    return "AROA" + hashlib.sha256(arn.encode()).hexdigest()[:17].upper()


def _as_after_recreation(policy: Mapping[str, Any], role_arn: str) -> dict[str, Any]:
    def principal(value: Any) -> Any:
        if isinstance(value, list):
            return [principal(v) for v in value]
        return _unique_id(role_arn) if value == role_arn else value

    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    return {
        **policy,
        "Statement": [
            {**s, "Principal": {k: principal(v) for k, v in s["Principal"].items()}}
            if isinstance(s.get("Principal"), Mapping)
            else s
            for s in statements
        ],
    }


def evaluate(
    policy: str | Mapping[str, Any],
    caller: Caller,
    action: str,
    context: Mapping[str, Any] | None = None,
    key_account: str | None = None,
    region: str = REGION,
) -> KeyVerdict:
    doc = json.loads(policy) if isinstance(policy, str) else dict(policy)
    if caller.recreated:
        doc = _as_after_recreation(doc, caller.arn)
    resource = key_arn(key_account or caller.account or "123456789012", region)
    request = {**caller.context(), **(context or {})}
    alone = Simulation(caller.arn, action, resource, request, resource_policy=doc)
    # A service principal has no IAM policy to add.
    with_iam = (
        alone
        if caller.service
        else Simulation(caller.arn, action, resource, request, identity=(ALLOW_EVERYTHING,), resource_policy=doc)
    )
    first, second = simulate([alone, with_iam])
    for verdict in (first, second):
        if verdict.denied_by("resource"):
            return KeyVerdict(DENY, tuple(verdict.denied_by("resource")), first, second)
    if first.allowed:
        return KeyVerdict(ALLOW, tuple(first.allowed_by("resource")), first, second)
    if second.allowed:
        return KeyVerdict(DELEGATED, tuple(second.allowed_by("resource")), first, second)
    return KeyVerdict(IMPLICIT_DENY, (), first, second)
