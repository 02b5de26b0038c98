"""`/bakehouse/<env>/...` in Parameter Store: app settings, secrets, and the approved AMI ids."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from estate.naming import env_ami_parameter, env_prefix

# The factory's distribution overwrites ami/<family> with the approved image id; until it first
# does, launches resolving the parameter fail, which is the intended outcome for an unapproved estate.
UNPUBLISHED = "unpublished"


@dataclass(frozen=True)
class ParameterHierarchyArgs:
    env: str
    kms_key_arn: pulumi.Input[str]
    ami_families: tuple[str, ...]
    parameters: Mapping[str, str] = field(default_factory=dict)
    # secrets/<name> -> value, always a secret Output (from `pulumi config set --secret`)
    secrets: Mapping[str, pulumi.Output[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.ami_families:
            raise ValueError(f"parameter hierarchy {self.env}: at least one AMI family is required")


class ParameterHierarchy(pulumi.ComponentResource):
    """String parameters for settings, SecureStrings under the environment key for secrets only."""

    def __init__(self, name: str, args: ParameterHierarchyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:workload:ParameterHierarchy", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.prefix = env_prefix(args.env)

        # Settings use insecure_value so previews show and diff them; only secrets/* is secret and encrypted.
        self.app = {
            key: aws.ssm.Parameter(
                f"{name}-app-{_slug(key)}",
                name=f"{self.prefix}/app/{key}",
                type="String",
                tier="Standard",
                insecure_value=value,
                opts=child,
            )
            for key, value in sorted(args.parameters.items())
        }
        self.secrets = {
            key: aws.ssm.Parameter(
                f"{name}-secret-{_slug(key)}",
                name=f"{self.prefix}/secrets/{key}",
                type="SecureString",
                tier="Standard",
                key_id=args.kms_key_arn,
                value=pulumi.Output.secret(value),
                opts=child,
            )
            for key, value in sorted(args.secrets.items())
        }
        # Pulumi creates the name; the factory owns the value (ignore_changes keeps `up` from reverting it).
        self.amis = {
            family: aws.ssm.Parameter(
                f"{name}-ami-{family}",
                name=env_ami_parameter(args.env, family),
                type="String",
                tier="Standard",
                insecure_value=UNPUBLISHED,
                description=f"Approved {family} AMI id, written by the Bakehouse image factory",
                opts=child.merge(pulumi.ResourceOptions(ignore_changes=["value", "insecureValue", "dataType"])),
            )
            for family in args.ami_families
        }
        self.register_outputs({"prefix": self.prefix, "ami_parameters": {f: p.name for f, p in self.amis.items()}})


def _slug(key: str) -> str:
    return key.replace("/", "-").replace(".", "-").replace("_", "-").lower()
