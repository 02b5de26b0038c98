"""Explicit AWS providers: every stack writes into its account by assuming the deploy role there."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws


def account_provider(
    name: str,
    *,
    account_id: str,
    region: str,
    role_arn: str,
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
