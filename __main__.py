"""Bakehouse: read and validate the stack's config, build its role's components, export the contract."""

import pulumi

from components.providers import account_provider
from components.roots import build_root
from estate.pulumi_config import load_stack_config

config = load_stack_config()  # raises with every problem before any resource is declared

provider = account_provider(
    f"{config.stack}-account",
    account_id=config.account_id,
    region=config.region,
    role_arn=config.deploy_role_arn,
    tags=config.default_tags,
    session_name=f"bakehouse-{config.stack}",
)
root = build_root(config, pulumi.ResourceOptions(providers=[provider]))

for name, value in root.exports.items():
    pulumi.export(name, value)
