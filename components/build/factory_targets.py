"""The factory's target accounts as one small parameter per env: `/bakehouse/factory/targets/<env>`
holding the env's account id.

The handlers (distribute, rescan, lifecycle) read them with GetParametersByPath (handlers/targets.py),
so no document parameter, schedule input or settings value lists every account: those grew with the
estate past StartAutomationExecution's 50 values per parameter and the settings parameter's 4,096
characters. Standard-tier parameters: 10,000 per account and region ("Systems Manager service quotas").
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from estate import naming

from .factory_config import FactoryConfig

# handlers/targets.py reads what this writes; the name is the contract's (handlers/contract.py).
TARGETS_PATH = naming.FACTORY_TARGETS_PATH


def target_parameter_name(env: str) -> str:
    return f"{TARGETS_PATH}/{env}"


def target_parameters(name: str, factory: FactoryConfig, opts: pulumi.ResourceOptions) -> list[aws.ssm.Parameter]:
    """One parameter per target env, keyed by env so adding or removing one replaces nothing else."""
    return [
        aws.ssm.Parameter(
            f"{name}-target-{env}",
            name=target_parameter_name(env),
            type="String",
            tier="Standard",
            value=account,
            description=f"Account of the factory's target env {env} (no secret)",
            opts=opts,
        )
        for env, account in zip(factory.target_envs, factory.target_accounts, strict=True)
    ]


def target_path_arns(region: str, account: str) -> list[str]:
    """What ssm:GetParametersByPath is authorized against: the requested path itself (Systems Manager user
    guide, "How Parameter Store authorizes parameter retrieval"), with or without a trailing slash."""
    return [
        f"arn:aws:ssm:{region}:{account}:parameter{TARGETS_PATH}",
        f"arn:aws:ssm:{region}:{account}:parameter{TARGETS_PATH}/*",
    ]
