"""The roles the stacks declare, made in moto with their trust and policies taken from the mock run,
and boto3 sessions that act as them while moto enforces IAM.

Accounts: the estate's own account ids are kept. moto derives the account of assumed-role
credentials from the role ARN they were issued for, and keeps IAM, EC2, SSM, ... per account, so a
role declared in the build account (333333333333 in Pulumi.build.yaml) is created in moto's
333333333333 and its sessions act there; nothing is rewritten to moto's default 123456789012.

What moto 5.2.5 enforces (moto/iam/access_control.py, docs "IAM-like Access Control"), and so what
`moto_view` keeps of each declared policy:
- Actions: matched with wildcards, Allow and Deny, across the role's inline and managed policies.
- Resources: moto evaluates a statement's Resource only against the ARN it computes for S3
  (bucket / object), SQS (queue), sts:AssumeRole (the role) and IAM calls that name a RoleName; for
  every other service it asks about "*", which no ARN-scoped statement matches. Those statements are
  widened to "*" here, so the run checks that the action is granted, not that the ARN fits (the
  authorization-data checks in tests/policy do that). The resources moto does evaluate are kept.
- Conditions: not evaluated for identity policies (no request context is passed), so every
  Condition is as good as met. Trust policies are not evaluated across accounts, and service
  principals cannot be acted as: the first hop into a role is taken with enforcement off.
- Not evaluated at all: resource policies (bucket, key, topic), KMS key policies and grants, SCPs,
  permission boundaries and session policies.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import boto3
from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin

from tests.handlers._sessions import core_session
from tools.mockrun import StackRun

# Actions for which moto computes the resource ARN it evaluates (see the module docstring).
_ARN_EVALUATED_SERVICES = ("s3", "sqs")
_ARN_EVALUATED_ACTIONS = ("sts:AssumeRole",)
# IAM: moto evaluates the role ARN when the request names a RoleName (moto/iam/utils.is_role_resource).
_IAM_ROLE_ACTIONS = (
    "iam:GetRole",
    "iam:GetRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:ListRolePolicies",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PassRole",
)


@dataclass(frozen=True)
class DeclaredRole:
    stack: str
    account_id: str
    name: str
    path: str
    trust: Mapping[str, Any]
    inline: tuple[tuple[str, Mapping[str, Any]], ...]  # (policy resource name, document)
    managed: tuple[str, ...]  # managed policy ARNs attached

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role{self.path}{self.name}"

    def sids(self) -> set[str]:
        return {s.get("Sid", "") for _, doc in self.inline for s in _statements(doc)}

    def without(self, *sids: str) -> DeclaredRole:
        """The same role with the named statements removed (a negative control); refuses a Sid the
        declared policies do not have, so a renamed statement cannot turn the control into a no-op."""
        unknown = set(sids) - self.sids()
        if unknown:
            raise KeyError(f"{self.name} ({self.stack}) declares no statement {sorted(unknown)}; has {sorted(self.sids())}")
        inline = tuple(
            (name, {**doc, "Statement": [s for s in _statements(doc) if s.get("Sid") not in sids]}) for name, doc in self.inline
        )
        return replace(self, inline=inline)


def _statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return list(statements) if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def declared_roles(run: StackRun) -> dict[str, DeclaredRole]:
    """Every named role of the stack, with its trust, inline policies (on the role or as RolePolicy
    resources) and managed policy attachments, by role name."""
    accounts = {p.name: (p.inputs.get("allowedAccountIds") or [None])[0] for p in run.resources if p.is_provider}
    policies = {f"{p.name}-id": p.inputs for p in run.of_type("aws:iam/policy:Policy")}
    found: dict[str, DeclaredRole] = {}
    by_reference: dict[str, str] = {}  # what a RolePolicy's `role` holds (name, or the mock id) -> name
    for role in run.of_type("aws:iam/role:Role"):
        name = role.inputs.get("name")
        if not name:  # unnamed roles (service plumbing: alarm delivery, event targets) run no handler
            by_reference[f"{role.name}-id"] = ""
            continue
        account = accounts.get(role.provider_name or "")
        if not account:
            raise ValueError(f"role {name} in {run.stack}: its provider names no allowedAccountIds")
        inline = tuple((f"{role.name}-{p['name']}", _json(p["policy"])) for p in role.inputs.get("inlinePolicies") or ())
        found[name] = DeclaredRole(
            run.stack, account, name, role.inputs.get("path") or "/", _json(role.inputs["assumeRolePolicy"]), inline, ()
        )
        by_reference[name] = by_reference[f"{role.name}-id"] = name
    for attached in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        name = by_reference[attached.inputs["role"]]
        if not name:
            continue
        role = found[name]
        found[name] = replace(role, inline=role.inline + ((attached.name, _json(attached.inputs["policy"])),))
    for attached in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        name = by_reference[attached.inputs["role"]]
        if not name:
            continue
        arn = attached.inputs["policyArn"]
        if arn in policies:  # a customer managed policy of this stack: inline it, same effect in moto
            role = found[name]
            found[name] = replace(role, inline=role.inline + ((arn, _json(policies[arn]["policy"])),))
        else:
            found[name] = replace(found[name], managed=found[name].managed + (arn,))
    return found


def _moto_evaluates_arn(action: str) -> bool:
    service = action.split(":", 1)[0].lower()
    return service in _ARN_EVALUATED_SERVICES or action in _ARN_EVALUATED_ACTIONS or action in _IAM_ROLE_ACTIONS


def moto_view(document: Mapping[str, Any]) -> dict[str, Any]:
    """The policy as moto can evaluate it: statements split by whether moto computes the resource
    ARN for their actions; where it does not, Resource becomes "*" (see the module docstring)."""
    out = []
    for statement in _statements(document):
        if "NotAction" in statement or "NotResource" in statement:
            out.append(copy.deepcopy(statement))
            continue
        actions = _as_list(statement["Action"])
        kept = [a for a in actions if _moto_evaluates_arn(a)]
        widened = [a for a in actions if not _moto_evaluates_arn(a)]
        if kept:
            out.append({**copy.deepcopy(statement), "Action": kept})
        if widened:
            part = {**copy.deepcopy(statement), "Action": widened, "Resource": "*"}
            if kept and "Sid" in part:
                part["Sid"] += "AnyResource"  # Sids are unique within a policy
            out.append(part)
    return {"Version": "2012-10-17", "Statement": out}


# --- sessions in moto -----------------------------------------------------------------------------
def session(region: str, credentials: Mapping[str, str] | None = None) -> boto3.Session:
    keys = (
        {}
        if credentials is None
        else {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }
    )
    return boto3.Session(region_name=region, botocore_session=core_session(), **keys)


def admin_session(account_id: str, region: str) -> boto3.Session:
    """Setup credentials inside `account_id` (moto switches account by the assumed role's ARN); only
    usable while enforcement is off, as the role exists nowhere."""
    sts = session(region).client("sts")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/moto-setup", RoleSessionName="setup")["Credentials"]
    return session(region, creds)


def create(role: DeclaredRole, region: str) -> None:
    """Create the role in its account as declared, its inline policies in moto's view."""
    iam = admin_session(role.account_id, region).client("iam")
    iam.create_role(RoleName=role.name, Path=role.path, AssumeRolePolicyDocument=json.dumps(role.trust))
    for index, (name, document) in enumerate(role.inline):
        iam.put_role_policy(
            RoleName=role.name, PolicyName=f"p{index}-{name}"[:128], PolicyDocument=json.dumps(moto_view(document))
        )
    for arn in role.managed:
        iam.attach_role_policy(RoleName=role.name, PolicyArn=arn)


def role_session(role: DeclaredRole, region: str, name: str = "e2e") -> boto3.Session:
    """Credentials of `role`, obtained with enforcement off: its real principal is usually a
    service (ssm.amazonaws.com, lambda.amazonaws.com) that moto cannot act as."""
    sts = admin_session(role.account_id, region).client("sts")
    creds = sts.assume_role(RoleArn=role.arn, RoleSessionName=name)["Credentials"]
    return session(region, creds)


@contextlib.contextmanager
def iam_enforced() -> Iterator[None]:
    """Every request from here on is authenticated and authorized by moto (in-process mock_aws)."""
    before = settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count
    settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = 0, 0
    try:
        yield
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = before


# --- calls a fake answers instead of moto ------------------------------------------------------------
def moto_allows(role: DeclaredRole, action: str) -> bool:
    """moto's own evaluation (as for a request) of `action` on "*" for `role`, as created in moto."""
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.iam.models import iam_backends

    iam = iam_backends[role.account_id]["aws"]
    documents = [iam.get_role_policy(role.name, name)[1] for name in iam.list_role_policies(role.name)]
    documents += list(iam.list_attached_role_policies(role.name)[0])
    results = [IAMPolicy(doc).is_action_permitted(action, "*") for doc in documents]
    return PermissionResult.DENIED not in results and PermissionResult.PERMITTED in results


class Enforced:
    """A fake client (tests/fakes) answering what moto cannot, with moto's IAM decision first:
    `checked` maps a method the fake answers to the IAM action AWS authorizes it as."""

    def __init__(self, fake: Any, role: DeclaredRole, checked: Mapping[str, str]):
        self._fake, self._role, self._checked = fake, role, dict(checked)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._fake, name)
        action = self._checked.get(name)
        if action is None:
            return attr

        def call(**params: Any) -> Any:
            if settings.INITIAL_NO_AUTH_ACTION_COUNT == 0 and not moto_allows(self._role, action):
                from botocore.exceptions import ClientError

                raise ClientError(
                    {
                        "Error": {
                            "Code": "AccessDenied",
                            "Message": (f"User: {self._role.arn} is not authorized to perform: {action}"),
                        }
                    },
                    name,
                )
            return attr(**params)

        return call
