"""Explicit AWS providers: every stack writes into its account through a role there. `pulumi up`
assumes the deploy role; `pulumi preview` (a pull request's run included) assumes the read-only
preview role, the only role the pull-request credentials may reach."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

from estate.config import ConfigError, Problems, StackConfig
from estate.naming import PREVIEW_ROLE, role_arn

# Config key (`bakehouse:providerRoleArn`) naming the role a stack's provider assumes instead, e.g.
# an operator's administrator role for the very first `pulumi up -s org`.
OVERRIDE_KEY = "providerRoleArn"
_ROLE_ARN = re.compile(r"arn:aws:iam::(\d{12}):role/[\w+=,.@/-]{1,512}", re.ASCII)


def reads_through_preview_role(cfg: StackConfig) -> bool:
    """A preview with no override: the pipeline's pull-request credentials reach only preview roles."""
    return pulumi.runtime.is_dry_run() and OVERRIDE_KEY not in cfg.sections


def override_problems(cfg: StackConfig) -> list[str]:
    """`bakehouse:providerRoleArn`, if set, must name a role in the stack's own account."""
    override = cfg.sections.get(OVERRIDE_KEY)
    if override is None:
        return []
    problems = Problems(cfg.stack)
    match = _ROLE_ARN.fullmatch(override) if isinstance(override, str) else None
    problems.check(
        match is not None and match.group(1) == cfg.account_id,
        f"bakehouse:{OVERRIDE_KEY}",
        override,
        f"an IAM role ARN in the stack's account {cfg.account_id}",
    )
    return problems.items


def stack_role_arn(cfg: StackConfig) -> str:
    """The role this run's providers assume in the stack's account: the override if configured,
    else the preview role for a preview (`is_dry_run`) and the deploy role for an update."""
    problems = override_problems(cfg)
    if problems:
        raise ConfigError(cfg.stack, problems)
    override = cfg.sections.get(OVERRIDE_KEY)
    if override is not None:
        return str(override)
    if reads_through_preview_role(cfg):
        return role_arn(cfg.account_id, PREVIEW_ROLE)
    return cfg.deploy_role_arn


def account_provider(
    name: str,
    *,
    account_id: pulumi.Input[str],
    region: str,
    role_arn: pulumi.Input[str],
    tags: Mapping[str, str],
    session_name: str,
    opts: pulumi.ResourceOptions | None = None,
) -> aws.Provider:
    """A provider pinned to one account (allowed_account_ids refuses any other credentials)."""
    return aws.Provider(
        name,
        region=region,
        allowed_account_ids=[account_id],
        assume_roles=[aws.ProviderAssumeRoleArgs(role_arn=role_arn, session_name=session_name)],
        default_tags=aws.ProviderDefaultTagsArgs(tags=dict(tags)),
        opts=opts,
    )
