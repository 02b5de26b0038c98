"""How the pipeline reaches the estate: GitHub's OIDC tokens, exchanged in the management account
for short-lived roles that may only assume each account's deploy role. No stored keys anywhere."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from .iam import document, statement

GITHUB_ISSUER = "token.actions.githubusercontent.com"
PREVIEW_ROLE = "BakehouseGitHubPreview"
DEPLOY_ROLE = "BakehouseGitHubDeploy"
# GitHub environments the deploy workflow runs `pulumi up` in (.github/workflows/preview.yml).
DEPLOY_ENVIRONMENTS = ("management", "security", "build", "dev", "uat", "production")
MAX_SESSION_SECONDS = 3600


@dataclass(frozen=True)
class CiAccessArgs:
    management_account_id: str
    repository: str  # owner/name
    deploy_role_name: str  # BakehouseDeploy: the role every stack's provider assumes
    account_ids: Sequence[str]  # every account of the estate


def subjects(args: CiAccessArgs) -> dict[str, list[str]]:
    """The OIDC `sub` claims each role trusts: pull requests preview; only protected environments deploy."""
    return {
        PREVIEW_ROLE: [f"repo:{args.repository}:pull_request"],
        DEPLOY_ROLE: [f"repo:{args.repository}:environment:{env}" for env in DEPLOY_ENVIRONMENTS],
    }


def trust_statement(args: CiAccessArgs, role: str) -> dict:
    return statement(
        "GitHubActionsOfThisRepository", ["sts:AssumeRoleWithWebIdentity"],
        principals={"Federated": f"arn:aws:iam::{args.management_account_id}:oidc-provider/{GITHUB_ISSUER}"},
        conditions={"StringEquals": {f"{GITHUB_ISSUER}:aud": "sts.amazonaws.com",
                                     f"{GITHUB_ISSUER}:sub": subjects(args)[role]}})


def permission_statement(args: CiAccessArgs) -> dict:
    # The stacks' providers assume the deploy role themselves; the pipeline needs nothing else.
    return statement("AssumeTheEstatesDeployRoles", ["sts:AssumeRole", "sts:TagSession"],
                     [f"arn:aws:iam::{account}:role/{args.deploy_role_name}" for account in args.account_ids])


class CiAccess(pulumi.ComponentResource):
    def __init__(self, name: str, args: CiAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:org:CiAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.provider = aws.iam.OpenIdConnectProvider(
            f"{name}-github", url=f"https://{GITHUB_ISSUER}", client_id_lists=["sts.amazonaws.com"], opts=child)
        self.roles = {}
        for role in (PREVIEW_ROLE, DEPLOY_ROLE):
            self.roles[role] = aws.iam.Role(
                f"{name}-{role}", name=role, assume_role_policy=document(trust_statement(args, role)),
                description=f"GitHub Actions of {args.repository}: assumes the estate's deploy roles",
                max_session_duration=MAX_SESSION_SECONDS,
                opts=child.merge(pulumi.ResourceOptions(depends_on=[self.provider])))
            aws.iam.RolePolicy(f"{name}-{role}-policy", role=self.roles[role].id,
                               policy=document(permission_statement(args)), opts=child)
        self.register_outputs({role: r.arn for role, r in self.roles.items()})
