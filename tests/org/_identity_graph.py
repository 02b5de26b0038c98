"""Who can become which role: the estate's trusts and permissions as a graph, walked from a GitHub
OIDC token. Built from a recorded org run (roles, their inline and managed policies, each role's
account from its provider), the management bootstrap template, and the access role Organizations
creates in every member account. Role-to-role steps are judged by the estate's one evaluator
(tests/iam/evaluate.py: identity policy of the caller + trust policy of the target, as AWS weighs
them). The first step, a GitHub token becoming a role, is matched here: IAM checks an OIDC
provider's `sub`/`aud` claims as `<issuer>:sub` keys, which the evaluator's service data for
sts:AssumeRoleWithWebIdentity does not list (IAM User Guide, "Available keys for AWS OIDC federation")."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

from tests.iam.evaluate import Simulation, simulate, wildcard_match

ISSUER = "token.actions.githubusercontent.com"
BOOTSTRAP = Path(__file__).resolve().parents[2] / "bootstrap" / "management.yaml"
# What the two AWS managed policies the estate attaches allow, as far as assuming roles goes.
MANAGED = {
    "arn:aws:iam::aws:policy/AdministratorAccess": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    },
    # ReadOnlyAccess grants Get/List/Describe-style reads and no sts:AssumeRole.
    "arn:aws:iam::aws:policy/ReadOnlyAccess": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["iam:Get*", "iam:List*", "ec2:Describe*"], "Resource": "*"}],
    },
}


@dataclass
class Role:
    arn: str
    trust: dict[str, Any]
    policies: list[dict[str, Any]] = field(default_factory=list)

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]

    @property
    def name(self) -> str:
        return self.arn.rsplit("/", 1)[-1]


def _account(arn: str) -> str:
    return arn.split(":")[4]


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _token_matches(condition: Mapping[str, Any], claims: Mapping[str, str]) -> bool:
    for operator, pairs in condition.items():
        if operator not in ("StringEquals", "StringLike"):
            raise AssertionError(f"a GitHub trust uses {operator}; this matcher knows StringEquals/StringLike")
        for key, expected in pairs.items():
            if key not in claims:
                return False
            test = (lambda p, v: p == v) if operator == "StringEquals" else wildcard_match
            if not any(test(p, claims[key]) for p in _as_list(expected)):
                return False
    return True


class IdentityGraph:
    def __init__(self, roles: Iterable[Role], organization_id: str = "o-exampleorg01"):
        self.roles = {r.arn: r for r in roles}
        pairs = [(a, b) for a in self.roles for b in self.roles if a != b]
        # every role of the estate is in its one organization: the org keys a cross-account call carries
        verdicts = simulate(
            [
                Simulation(
                    a,
                    "sts:AssumeRole",
                    b,
                    context={
                        "aws:PrincipalArn": a,
                        "aws:PrincipalAccount": _account(a),
                        "aws:PrincipalOrgID": organization_id,
                        "aws:ResourceAccount": _account(b),
                        "aws:ResourceOrgID": organization_id,
                    },
                    identity=self.roles[a].policies,
                    resource_policy=self.roles[b].trust,
                )
                for a, b in pairs
            ]
        )
        self.edges = {pair for pair, verdict in zip(pairs, verdicts, strict=True) if verdict.allowed}

    def web_identity(self, subject: str, management: str) -> set[str]:
        """Roles a GitHub token with this `sub` (and audience sts.amazonaws.com) becomes directly."""
        provider = f"arn:aws:iam::{management}:oidc-provider/{ISSUER}"
        claims = {f"{ISSUER}:sub": subject, f"{ISSUER}:aud": "sts.amazonaws.com"}
        found = set()
        for arn, role in self.roles.items():
            for stmt in _as_list(role.trust["Statement"]):
                principal = stmt.get("Principal", {})
                if (
                    stmt["Effect"] == "Allow"
                    and "sts:AssumeRoleWithWebIdentity" in _as_list(stmt["Action"])
                    and isinstance(principal, Mapping)
                    and provider in _as_list(principal.get("Federated", []))
                    and _token_matches(stmt.get("Condition", {}), claims)
                ):
                    found.add(arn)
        return found

    def may_assume(self, caller: Role, target: Role) -> bool:
        return (caller.arn, target.arn) in self.edges

    def reachable(self, start: Iterable[str]) -> set[str]:
        seen, frontier = set(start), list(start)
        while frontier:
            caller = frontier.pop()
            for a, b in self.edges:
                if a == caller and b not in seen:
                    seen.add(b)
                    frontier.append(b)
        return seen

    def from_subject(self, subject: str, management: str) -> set[str]:
        return self.reachable(self.web_identity(subject, management))


def _account_of_provider(run) -> dict[str, str]:
    return {r.name: r.inputs["allowedAccountIds"][0] for r in run.resources if r.is_provider}


def _real_ids(run, ids: Mapping[str, str]):
    """The mocks name a new account by its resource ("<name>-id"); put the configured ids back."""
    swaps = {f"{r.name}-id": ids[r.inputs["tags"]["bakehouse:account"]] for r in run.of_type("aws:organizations/account:Account")}

    def fix(text: str) -> str:
        for mock, real in swaps.items():
            text = text.replace(mock, real)
        return text

    return fix


def roles_of_run(run, ids: Mapping[str, str]) -> list[Role]:
    fix = _real_ids(run, ids)
    accounts = {name: fix(account) for name, account in _account_of_provider(run).items()}
    roles: dict[str, Role] = {}
    by_id, by_name = {}, {}
    for r in run.of_type("aws:iam/role:Role"):
        name = r.inputs.get("name", r.name)  # an auto-named role: its resource name stands in
        role = Role(f"arn:aws:iam::{accounts[r.provider_name]}:role/{name}", json.loads(fix(r.inputs["assumeRolePolicy"])))
        roles[role.arn] = role
        by_id[f"{r.name}-id"] = role
        by_name[(r.provider_name, name)] = role
    for p in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        by_id[p.inputs["role"]].policies.append(json.loads(fix(p.inputs["policy"])))
    for a in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        by_name[(a.provider_name, a.inputs["role"])].policies.append(MANAGED[a.inputs["policyArn"]])
    return list(roles.values())


def _resolve(value: Any, account: str, parameters: Mapping[str, Any]) -> Any:
    """Enough of CloudFormation's intrinsics for the bootstrap template: Ref, Sub, Join, Split."""
    if isinstance(value, list):
        return [_resolve(v, account, parameters) for v in value]
    if not isinstance(value, Mapping):
        return value
    if "Ref" in value:
        return parameters[value["Ref"]]
    if "Fn::Sub" in value:
        return value["Fn::Sub"].replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", account)
    if "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        resolved = _resolve(parts, account, parameters)
        flat = [x for p in resolved for x in (p if isinstance(p, list) else [p])]
        return sep.join(flat)
    if "Fn::Split" in value:
        sep, text = value["Fn::Split"]
        return _resolve(text, account, parameters).split(sep)
    return {k: _resolve(v, account, parameters) for k, v in value.items()}


def bootstrap_template() -> dict[str, Any]:
    decoded, problems = decode_str(BOOTSTRAP.read_text())
    assert not problems, problems
    return json.loads(json.dumps(decoded))


def roles_of_bootstrap(management: str, operators: list[str]) -> list[Role]:
    template = bootstrap_template()
    parameters = {name: spec.get("Default") for name, spec in template["Parameters"].items()}
    parameters["OperatorRoleArns"] = operators
    roles = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        props = _resolve(resource["Properties"], management, parameters)
        role = Role(f"arn:aws:iam::{management}:role/{props['RoleName']}", props["AssumeRolePolicyDocument"])
        role.policies += [MANAGED[arn] for arn in props.get("ManagedPolicyArns", [])]
        role.policies += [p["PolicyDocument"] for p in props.get("Policies", [])]
        roles.append(role)
    return roles


def access_roles(management: str, members: Iterable[str], name: str = "OrganizationAccountAccessRole") -> list[Role]:
    """What Organizations creates in an account it creates: admin, trusted by the management account."""
    trust = {
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{management}:root"}, "Action": "sts:AssumeRole"}]
    }
    return [
        Role(f"arn:aws:iam::{m}:role/{name}", trust, [MANAGED["arn:aws:iam::aws:policy/AdministratorAccess"]]) for m in members
    ]


def estate_graph(run, ids: Mapping[str, str], operators: list[str]) -> IdentityGraph:
    """`ids`: account key -> id, as bakehouse:accounts has them."""
    management = ids["management"]
    declared = roles_of_run(run, ids)
    members = set(ids.values()) - {management}
    return IdentityGraph([*declared, *roles_of_bootstrap(management, operators), *access_roles(management, members)])
