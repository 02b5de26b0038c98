"""The one policy evaluator the tests use: @cloud-copilot/iam-simulate (npm, pinned in package-lock.json).

It evaluates a request the way AWS does — identity policies, SCPs through the OU chain (root first),
resource policies, permission boundaries, endpoint policies — and drops context keys that the
service does not put in that action's request context (`ignored_context_keys`), so a condition on a
key AWS never sends cannot be satisfied in a test either.

One node process serves the whole session; `simulate` sends a batch in one round trip.
`allowed(policy, action, resource, context)` asks the narrower question the stack tests ask: does
this one document grant the request? (A resource policy's Principal is then not judged; pass
`principal=` to have it judged too.)
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("simulate.cjs")
ALLOW, DENY, IMPLICIT_DENY = "Allow", "Deny", "ImplicitDeny"
DEFAULT_ACCOUNT = "123456789012"
FULL_AWS_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "FullAWSAccess", "Effect": "Allow", "Action": "*", "Resource": "*"}],
}

Document = Mapping[str, Any]


@dataclass(frozen=True)
class Simulation:
    """One request and every policy AWS would weigh for it."""

    principal: str
    action: str
    resource: str = "*"
    context: Mapping[str, Any] = field(default_factory=dict)
    identity: Sequence[Document] = ()
    # (name, documents) per level, root first, then each OU down to the account, as AWS walks them.
    scps: Sequence[tuple[str, Sequence[Document]]] = ()
    resource_policy: Document | None = None
    boundaries: Sequence[Document] = ()
    endpoint_policies: Sequence[Document] = ()
    resource_account: str | None = None
    # Judge an ARN that no resource type of the service matches without the type and context-key
    # checks instead of refusing it (see simulate.cjs); the verdict says so.
    lenient: bool = False

    def as_json(self) -> dict[str, Any]:
        account = self.resource_account or account_of(self.resource) or account_of(self.principal)
        body: dict[str, Any] = {
            "request": {
                "principal": self.principal,
                "action": self.action,
                "resource": {"resource": self.resource, "accountId": account},
                "contextVariables": {k: _context_value(v) for k, v in self.context.items()},
            },
            "identityPolicies": [{"name": f"identity-{i}", "policy": _doc(d)} for i, d in enumerate(self.identity)],
            "serviceControlPolicies": [
                {
                    "orgIdentifier": name,
                    "policies": [{"name": _name(d, f"{name}-{i}"), "policy": _doc(d)} for i, d in enumerate(docs)],
                }
                for name, docs in self.scps
            ],
            "resourceControlPolicies": [],
            "lenient": self.lenient,
        }
        if self.resource_policy is not None:
            body["resourcePolicy"] = _doc(self.resource_policy)
        if self.boundaries:
            body["permissionBoundaryPolicies"] = [
                {"name": f"boundary-{i}", "policy": _doc(d)} for i, d in enumerate(self.boundaries)
            ]
        if self.endpoint_policies:
            body["vpcEndpointPolicies"] = [
                {"name": f"endpoint-{i}", "policy": _doc(d)} for i, d in enumerate(self.endpoint_policies)
            ]
        return body


@dataclass(frozen=True)
class Verdict:
    result: str  # Allowed | ExplicitlyDenied | ImplicitlyDenied
    deny: tuple[tuple[str, str | None, str | None], ...] = ()  # (part, policy name, Sid) of matching Denys
    ignored_context_keys: tuple[str, ...] = ()
    untyped_resource: bool = False
    parts: Mapping[str, str] = field(default_factory=dict)  # each part's own result: "identity", "scp", ...
    allow: tuple[tuple[str, str | None, str | None], ...] = ()  # (part, policy name, Sid) of matching Allows

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"

    def denied_by(self, part: str) -> list[str]:
        """Sids of the Deny statements of one part ("scp", "identity", "resource", ...) that matched."""
        return sorted({sid or "" for p, _, sid in self.deny if p == part})

    def allowed_by(self, part: str) -> list[str]:
        """Sids of the Allow statements of one part that matched."""
        return sorted({sid or "" for p, _, sid in self.allow if p == part})


def account_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and re.fullmatch(r"\d{12}", parts[4]) else None


def _context_value(value: Any) -> str | list[str]:
    if isinstance(value, list | tuple | set):
        return [_context_value(v) for v in value]  # type: ignore[misc]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _doc(policy: str | Document) -> dict[str, Any]:
    return json.loads(policy) if isinstance(policy, str) else dict(policy)


def _name(policy: str | Document, default: str) -> str:
    return str(_doc(policy).get("Id") or default)


class _Node:
    """The harness process, started on first use and kept for the session."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> subprocess.Popen[str]:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed: the IAM evaluator (@cloud-copilot/iam-simulate) runs under node")
        if not (ROOT / "node_modules" / "@cloud-copilot" / "iam-simulate").exists():
            # package-lock.json pins it; the registry is reachable wherever the suite runs
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True, capture_output=True, timeout=300)
        proc = subprocess.Popen(
            [node, str(HARNESS)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        atexit.register(proc.kill)
        return proc

    def ask(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.proc = self.start()
            assert self.proc.stdin and self.proc.stdout
            self.proc.stdin.write(json.dumps(batch) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the IAM evaluator (tests/iam/simulate.cjs) exited without an answer")
        return json.loads(line)


_NODE = _Node()


def simulate(batch: Sequence[Simulation]) -> list[Verdict]:
    """Evaluate every simulation of the batch in one round trip to the evaluator."""
    if not batch:
        return []
    answers = _NODE.ask([s.as_json() for s in batch])
    verdicts = []
    for simulation, answer in zip(batch, answers, strict=True):
        if answer["result"] == "Error":
            raise ValueError(f"the evaluator refused {simulation.action} on {simulation.resource}: {answer['errors']}")
        verdicts.append(
            Verdict(
                answer["result"],
                tuple((d["part"], d["policy"], d["sid"]) for d in answer["deny"]),
                tuple(answer.get("ignoredContextKeys", ())),
                bool(answer.get("untypedResource")),
                answer.get("parts", {}),
                tuple((a["part"], a["policy"], a["sid"]) for a in answer.get("allow", ())),
            )
        )
    return verdicts


def with_full_aws_access(levels: Sequence[tuple[str, Sequence[Document]]]) -> list[tuple[str, list[Document]]]:
    """SCP levels as AWS has them: FullAWSAccess attached at every level beside the estate's deny lists."""
    return [(name, [FULL_AWS_ACCESS, *docs]) for name, docs in levels]


# --- the single-document question the stack tests ask -------------------------------------------


def _without_principal(policy: str | Document) -> dict[str, Any]:
    doc = _doc(policy)
    statements = doc["Statement"] if isinstance(doc["Statement"], list) else [doc["Statement"]]
    # A trust policy's statements name no Resource: the role they are attached to is the resource.
    return {
        **doc,
        "Statement": [
            {
                **({} if "Resource" in s or "NotResource" in s else {"Resource": "*"}),
                **{k: v for k, v in s.items() if k not in ("Principal", "NotPrincipal")},
            }
            for s in statements
        ],
    }


def _single(
    policy: str | Document, action: str, resource: str, context: Mapping[str, Any] | None, principal: str | None
) -> Simulation:
    context = dict(context or {})
    who = (
        principal
        or context.get("aws:PrincipalArn")
        or f"arn:aws:iam::{account_of(resource) or DEFAULT_ACCOUNT}:role/bakehouse-evaluated-principal"
    )
    if principal is None:
        # The document alone, as an identity policy of a principal in the resource's account.
        return Simulation(
            who, action, resource, context, identity=(_without_principal(policy),), resource_account=account_of(who), lenient=True
        )
    return Simulation(who, action, resource, context, resource_policy=_doc(policy), lenient=True)


def evaluate(
    policy: str | Document, action: str, resource: str, context: Mapping[str, Any] | None = None, principal: str | None = None
) -> str:
    verdict = simulate([_single(policy, action, resource, context, principal)])[0]
    # The document's own answer: AWS would also want a key policy for KMS, a trust policy for STS...
    result = verdict.parts.get("identity" if principal is None else "resource", verdict.result)
    return {"Allowed": ALLOW, "ExplicitlyDenied": DENY}.get(result, IMPLICIT_DENY)


def allowed(
    policy: str | Document, action: str, resource: str, context: Mapping[str, Any] | None = None, principal: str | None = None
) -> bool:
    return evaluate(policy, action, resource, context, principal) == ALLOW


def wildcard_match(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    """IAM's string wildcards: only * and ? are special (fnmatch would also treat [ ] as a class)."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None
