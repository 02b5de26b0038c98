"""Bakehouse: read and validate the stack's config, build its role's components, export the contract."""

import pulumi

from components.lib.providers import account_provider, stack_role_arn
from components.roots import build_root, role_settings
from estate.pulumi_config import load_validated_config

# One pass: every problem of the stack's config (project keys, stack keys, the role's section, the other
# stack files) in one ConfigError, before any resource, the provider included, is declared.
config, settings = load_validated_config(role_settings)

provider = account_provider(
    f"{config.stack}-account",
    account_id=config.account_id,
    region=config.region,
    # preview role for `pulumi preview`, deploy role for `pulumi up`, or bakehouse:providerRoleArn
    role_arn=stack_role_arn(config),
    tags=config.default_tags,
    session_name=f"bakehouse-{config.stack}",
)
root = build_root(config, settings, pulumi.ResourceOptions(providers=[provider]))

for name, value in root.exports.items():
    pulumi.export(name, value)
