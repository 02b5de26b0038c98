"""The roles every member account is entered through, declared by the org stack so none is made by
hand: the deploy role (`pulumi up`), the read-only preview role (`pulumi preview`) and
BakehouseReadOnly for people. Each member's provider assumes the access role Organizations created
with the account (`bakehouse:org.accountAccessRoleName`), or, in the pipeline's previews, the
member's preview role, the only role pull requests may reach.

Trusts name the management account and narrow it with `aws:PrincipalArn`, rather than naming the
role: IAM refuses a trust naming a role that does not exist yet, and stores a named role as its
unique id, so recreating that role would silently break the trust (IAM User Guide, "AWS JSON policy
elements: Principal").

People: IAM roles assumed from the management account with MFA, not IAM Identity Center permission
sets. The break-glass path requires `aws:MultiFactorAuthPresent`, which IAM puts in the request
context of sessions made with MFA but which Identity Center sessions do not reliably carry (IAM
User Guide, "AWS global condition context keys"), so people use one identity path that carries it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from estate.config import StackConfig
from estate.naming import (
    GITHUB_PREVIEW_ROLE,
    PREVIEW_ROLE,
    READ_ONLY_ROLE,
    github_deploy_role,
    github_environment,
    role_arn,
)

from ..lib.iam import document, statement
from ..lib.providers import account_provider, reads_through_preview_role

ADMINISTRATOR_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY_ACCESS = "arn:aws:iam::aws:policy/ReadOnlyAccess"
MAX_SESSION_SECONDS = 3600
# A pull request's program runs as the preview role, so it may read configuration but not the
# data the estate holds: objects (logs, evidence, memory captures), secrets, parameters, log events.
PREVIEW_DATA_READS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "secretsmanager:GetSecretValue",
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "ssm:GetParameterHistory",
    "kms:Decrypt",
    "logs:GetLogEvents",
    "logs:FilterLogEvents",
    "logs:StartQuery",
    "logs:StartLiveTail",
    "athena:GetQueryResults",
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "lambda:GetFunction",
    "ec2:GetPasswordData",
    "ec2:GetConsoleOutput",
    "ec2:GetConsoleScreenshot",
)


@dataclass(frozen=True)
class AccountAccessArgs:
    management_account_id: str
    deploy_role_name: str
    access_role_name: str
    members: Mapping[str, pulumi.Input[str]]  # member key (security, build, envs) -> account id
    deployers: Mapping[str, Sequence[str]]  # member key -> management role ARNs its deploy role admits
    previewer: str  # the management role ARN pull requests become
    region: str
    tags: Mapping[str, str]
    through_preview_role: bool  # the pipeline's preview: enter through the member's preview role

    def __post_init__(self) -> None:
        missing = sorted(set(self.members) - set(self.deployers))
        if missing:
            raise ValueError(f"member accounts {', '.join(missing)} have no deployer to trust")


def member_access_args(
    cfg: StackConfig, members: Mapping[str, pulumi.Input[str]], prod_envs: Sequence[str], access_role_name: str
) -> AccountAccessArgs:
    """The org stack's view: each member's deploy role admits its GitHub environment's role and the
    management deploy role (an operator's `pulumi up` of a member stack runs from there)."""
    mgmt = cfg.account_id
    return AccountAccessArgs(
        management_account_id=mgmt,
        deploy_role_name=cfg.estate.deploy_role_name,
        access_role_name=access_role_name,
        members=dict(members),
        deployers={
            key: [role_arn(mgmt, github_deploy_role(github_environment(key, tuple(prod_envs)))), cfg.deploy_role_arn]
            for key in members
        },
        previewer=role_arn(mgmt, GITHUB_PREVIEW_ROLE),
        region=cfg.region,
        tags=cfg.default_tags,
        through_preview_role=reads_through_preview_role(cfg),
    )


def management_principals(sid: str, management_account_id: str, principal_arns: Sequence[str]) -> dict:
    return statement(
        sid,
        ["sts:AssumeRole"],
        principals={"AWS": f"arn:aws:iam::{management_account_id}:root"},
        conditions={"ArnEquals": {"aws:PrincipalArn": list(principal_arns)}},
    )


def people_trust(management_account_id: str) -> dict:
    return statement(
        "PeopleOfTheManagementAccountWithMfa",
        ["sts:AssumeRole"],
        principals={"AWS": f"arn:aws:iam::{management_account_id}:root"},
        conditions={"Bool": {"aws:MultiFactorAuthPresent": "true"}},
    )


def preview_data_deny() -> dict:
    # ReadOnlyAccess grants these reads; they take resource ARNs, and "*" covers every one of them.
    return statement("DenyReadingTheEstatesData", PREVIEW_DATA_READS, ["*"], effect="Deny")


class AccountAccess(pulumi.ComponentResource):
    """Outputs `roles`: (member key, role name) -> Role."""

    def __init__(self, name: str, args: AccountAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:org:AccountAccess", name, None, opts)
        self._prefix = name
        self.roles: dict[tuple[str, str], aws.iam.Role] = {}
        entry_role = PREVIEW_ROLE if args.through_preview_role else args.access_role_name
        for key, account in args.members.items():
            provider = account_provider(
                f"{name}-{key}",
                account_id=account,
                region=args.region,
                role_arn=pulumi.Output.concat("arn:aws:iam::", account, f":role/{entry_role}"),
                tags=args.tags,
                session_name="bakehouse-org-account-access",
                opts=pulumi.ResourceOptions(parent=self),
            )
            inside = pulumi.ResourceOptions(parent=self, provider=provider)
            mgmt = args.management_account_id
            self._role(
                key,
                args.deploy_role_name,
                inside,
                management_principals("ThisEnvironmentsPipelineAndTheManagementDeployRole", mgmt, args.deployers[key]),
                [ADMINISTRATOR_ACCESS],
                "pulumi up: the estate's pipeline and the management deploy role",
            )
            preview = self._role(
                key,
                PREVIEW_ROLE,
                inside,
                management_principals("PullRequestPipelineOnly", mgmt, [args.previewer]),
                [READ_ONLY_ACCESS],
                "pulumi preview: read-only, pull requests only",
            )
            aws.iam.RolePolicy(
                f"{name}-{key}-{PREVIEW_ROLE}-no-data", role=preview.id, policy=document(preview_data_deny()), opts=inside
            )
            self._role(
                key,
                READ_ONLY_ROLE,
                inside,
                people_trust(mgmt),
                [READ_ONLY_ACCESS],
                "people: read-only, from the management account with MFA",
            )
        self.register_outputs({f"{key}/{role}": r.arn for (key, role), r in self.roles.items()})

    def _role(
        self, key: str, role: str, opts: pulumi.ResourceOptions, trust: dict, managed: Sequence[str], purpose: str
    ) -> aws.iam.Role:
        resource = aws.iam.Role(
            f"{self._prefix}-{key}-{role}",
            name=role,
            assume_role_policy=document(trust),
            description=purpose,
            max_session_duration=MAX_SESSION_SECONDS,
            opts=opts,
        )
        for policy in managed:
            aws.iam.RolePolicyAttachment(
                f"{self._prefix}-{key}-{role}-{policy.rsplit('/', 1)[-1]}", role=resource.name, policy_arn=policy, opts=opts
            )
        self.roles[(key, role)] = resource
        return resource
