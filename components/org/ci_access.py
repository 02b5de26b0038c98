"""How the pipeline reaches the estate: GitHub's OIDC tokens, exchanged in the management account
for short-lived roles. Pull requests get one role that may assume only the read-only preview roles;
each GitHub environment gets its own role that may assume only the deploy role of the accounts that
environment deploys. No stored keys anywhere.

What the trusts admit, exactly: a token's `sub` names the repository and either `pull_request` or
`environment:<name>`; it does not name the branch. Which branch may enter an environment is the
environment's deployment-branch rule in the repository settings (restrict every environment to
`main`), so that rule, not these trusts, keeps other branches from deploying.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from estate.naming import (
    GITHUB_PREVIEW_ROLE,
    PREVIEW_ROLE,
    github_deploy_role,
    github_environment,
)

from ..lib.iam import document, statement

GITHUB_ISSUER = "token.actions.githubusercontent.com"
MAX_SESSION_SECONDS = 3600


@dataclass(frozen=True)
class CiAccessArgs:
    management_account_id: str
    repository: str  # owner/name
    deploy_role_name: str  # BakehouseDeploy: the role every stack's provider assumes in `pulumi up`
    accounts: Mapping[str, pulumi.Input[str]]  # account key (management, security, build, envs) -> id
    prod_envs: Sequence[str]  # workload envs deployed from the `production` environment
    access_role_name: str  # OrganizationAccountAccessRole: the org stack creates member roles through it

    def environments(self) -> dict[str, list[str]]:
        """GitHub environment -> the account keys it deploys (derived from bakehouse:accounts)."""
        found: dict[str, list[str]] = {}
        for key in self.accounts:
            found.setdefault(github_environment(key, tuple(self.prod_envs)), []).append(key)
        return found


def web_identity_trust(args: CiAccessArgs, subject: str) -> dict:
    # IAM checks :aud and :sub of GitHub's token (IAM User Guide, "Create a role for OpenID Connect federation").
    return statement(
        "GitHubActionsOfThisRepository",
        ["sts:AssumeRoleWithWebIdentity"],
        principals={"Federated": f"arn:aws:iam::{args.management_account_id}:oidc-provider/{GITHUB_ISSUER}"},
        conditions={"StringEquals": {f"{GITHUB_ISSUER}:aud": "sts.amazonaws.com", f"{GITHUB_ISSUER}:sub": subject}},
    )


def assume_statement(sid: str, arns: Sequence[pulumi.Input[str]], conditions: dict | None = None) -> dict:
    return statement(sid, ["sts:AssumeRole"], list(arns), conditions=conditions)


# The role's account is in the caller's organization (the management account's): a role named in
# every account by name and organization rather than one ARN per account, which would pass IAM's
# 10,240-character inline quota at about 180 accounts. IAM User Guide, "AWS global condition context
# keys": aws:ResourceOrgID, compared with the ${aws:PrincipalOrgID} policy variable.
IN_THIS_ORGANIZATION = {"aws:ResourceOrgID": "${aws:PrincipalOrgID}"}


def preview_role_policy(args: CiAccessArgs) -> list[dict]:
    return [
        assume_statement(
            "AssumeTheReadOnlyPreviewRolesOnly", [f"arn:aws:iam::*:role/{PREVIEW_ROLE}"], {"StringEquals": IN_THIS_ORGANIZATION}
        )
    ]


def deploy_role_policy(args: CiAccessArgs, environment: str) -> list[dict]:
    keys = args.environments()[environment]
    arns = [pulumi.Output.concat("arn:aws:iam::", args.accounts[k], f":role/{args.deploy_role_name}") for k in keys]
    statements = [assume_statement("AssumeThisEnvironmentsDeployRoleOnly", arns)]
    if "management" in keys:
        # The org stack declares the member accounts' own roles through the access role Organizations
        # created there; whoever deploys the org stack administers the organization anyway.
        statements.append(
            assume_statement(
                "AssumeTheMembersAccessRole",
                [f"arn:aws:iam::*:role/{args.access_role_name}"],
                {"StringEquals": IN_THIS_ORGANIZATION, "StringNotEquals": {"aws:ResourceAccount": args.management_account_id}},
            )
        )
    return statements


class CiAccess(pulumi.ComponentResource):
    """Outputs `roles`: role name -> Role (the preview role and one deploy role per environment)."""

    def __init__(self, name: str, args: CiAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:org:CiAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.provider = aws.iam.OpenIdConnectProvider(
            f"{name}-github", url=f"https://{GITHUB_ISSUER}", client_id_lists=["sts.amazonaws.com"], opts=child
        )
        after_provider = child.merge(pulumi.ResourceOptions(depends_on=[self.provider]))
        wanted = {
            GITHUB_PREVIEW_ROLE: (
                f"repo:{args.repository}:pull_request",
                preview_role_policy(args),
                "pull requests: may assume only the read-only preview roles",
            )
        }
        for environment in args.environments():
            wanted[github_deploy_role(environment)] = (
                f"repo:{args.repository}:environment:{environment}",
                deploy_role_policy(args, environment),
                f"GitHub environment {environment}: may assume only its accounts' deploy roles",
            )
        self.roles: dict[str, aws.iam.Role] = {}
        for role, (subject, permissions, purpose) in wanted.items():
            self.roles[role] = aws.iam.Role(
                f"{name}-{role}",
                name=role,
                assume_role_policy=document(web_identity_trust(args, subject)),
                description=f"{args.repository} {purpose}",
                max_session_duration=MAX_SESSION_SECONDS,
                opts=after_provider,
            )
            aws.iam.RolePolicy(f"{name}-{role}-policy", role=self.roles[role].id, policy=document(*permissions), opts=child)
        self.register_outputs({role: r.arn for role, r in self.roles.items()})
