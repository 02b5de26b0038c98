"""Root of a workload stack (dev, uat, prod: same code, different Pulumi.<stack>.yaml)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from estate.config import ConfigError, EncryptedText, Problems, StackConfig
from estate.naming import (
    BREAK_GLASS_ROLE,
    central_bucket,
    central_bucket_arn,
    env_ami_parameter,
    role_arn,
    security_topic_arn,
)

from ..lib.account_baseline import AccountBaseline, AccountBaselineArgs
from ..lib.account_storage import account_storage
from ..lib.iam import statement
from ..lib.providers import account_provider, stack_role_arn
from .app_access import APP_ROLE_PATH, AppAccess, AppAccessArgs
from .autoscaling_access import AutoScalingAccess, AutoScalingAccessArgs, account_key_statements
from .break_glass import BreakGlass, BreakGlassArgs
from .catalog_access import CatalogAccess, CatalogAccessArgs
from .factory_access import FactoryAccess, FactoryAccessArgs
from .fleet_lifetime import FleetReport, FleetReportArgs, dead_letter_key_statement, fleet_settings
from .incident_response import IncidentResponse, IncidentResponseArgs
from .parameter_hierarchy import ParameterHierarchy, ParameterHierarchyArgs
from .private_network import PrivateNetwork, PrivateNetworkArgs
from .workload_config import WorkloadConfig, load_workload_config, secret_config_key

GLOBAL_EVENTS_REGION = "us-east-1"
# What app teams read through StackReference; docs/workload.md documents each key. Exactly these.
EXPORT_CONTRACT = (
    "vpcId",
    "privateSubnetIds",
    "endpointSecurityGroupId",
    "parameterPrefix",
    "amiParameterName",
    "instanceProfileName",
    "launchTemplateId",
    "kmsKeyArn",
    "logGroupName",
)


def key_statements(cfg: StackConfig, autoscaling_role_arn: pulumi.Input[str]) -> list[dict[str, Any]]:
    """Key policy grants that cannot name their principals directly (a key policy naming a role that
    does not exist yet is rejected), so they name the account and narrow by principal and service;
    and the Auto Scaling service-linked role, which IAM delegation cannot reach, named once it exists."""
    account = f"arn:aws:iam::{cfg.account_id}:root"
    app_roles = f"arn:aws:iam::{cfg.account_id}:role{APP_ROLE_PATH}*"
    in_session = {"Null": {"kms:EncryptionContext:aws:ssm:SessionId": "false"}}
    return [
        # EBS encryption by default: every launch in the account, only through EC2 in this account.
        statement(
            "EbsThroughEc2InThisAccount",
            ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"],
            ["*"],
            principals={"AWS": account},
            conditions={
                "StringEquals": {"kms:ViaService": f"ec2.{cfg.region}.amazonaws.com", "kms:CallerAccount": cfg.account_id}
            },
        ),
        # App instances: their secrets, only through SSM.
        statement(
            "AppRolesSecretsThroughSsm",
            ["kms:Decrypt"],
            ["*"],
            principals={"AWS": account},
            conditions={
                "ArnLike": {"aws:PrincipalArn": app_roles},
                "StringEquals": {"kms:ViaService": f"ssm.{cfg.region}.amazonaws.com"},
            },
        ),
        # Session Manager: the client makes each session's data key and the instance's agent decrypts it,
        # both calling KMS directly under the session's encryption context. Responders come in as break-glass.
        statement(
            "AppRolesSessionKeys",
            ["kms:Decrypt"],
            ["*"],
            principals={"AWS": account},
            conditions={"ArnLike": {"aws:PrincipalArn": app_roles}, **in_session},
        ),
        statement(
            "BreakGlassSessionKeys",
            ["kms:GenerateDataKey"],
            ["*"],
            principals={"AWS": account},
            conditions={"ArnEquals": {"aws:PrincipalArn": role_arn(cfg.account_id, BREAK_GLASS_ROLE)}, **in_session},
        ),
        *account_key_statements(autoscaling_role_arn),
        # The fleet report's scheduler dead-letters into a queue under this key (components/workload/fleet_lifetime.py).
        dead_letter_key_statement(cfg.account_id, cfg.region),
    ]


class WorkloadStack(pulumi.ComponentResource):
    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions, settings: WorkloadConfig | None = None):
        settings = settings or self.settings(cfg)  # first: a bad section declares nothing
        assert cfg.network is not None  # workload stacks always have one (estate.config requires it)
        super().__init__("bakehouse:workload:Stack", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        estate, env = cfg.estate, cfg.env

        self._region_providers: dict[str, pulumi.ProviderResource] = {}
        autoscaling = AutoScalingAccess(
            f"{name}-autoscaling",
            AutoScalingAccessArgs(
                account_id=cfg.account_id,
                home_region=cfg.region,
                image_keys=settings.image_keys,
                providers={r: self._provider_in(name, cfg, r) for r in settings.image_keys if r != cfg.region},
            ),
            opts=child,
        )
        storage = account_storage(name, cfg, self, key_statements=key_statements(cfg, autoscaling.role_arn))
        key_arn = storage.key.arn
        AccountBaseline(
            f"{name}-baseline",
            AccountBaselineArgs.for_estate(estate, cfg.account_id, kms_key_arn=key_arn, workload=True),
            opts=child,
        )

        network = PrivateNetwork(
            f"{name}-network",
            PrivateNetworkArgs(
                cidr=cfg.network.cidr,
                az_names=cfg.network.az_names(cfg.region),
                region=cfg.region,
                account_id=cfg.account_id,
                organization_id=estate.organization_id,
                flow_log_bucket_arn=central_bucket_arn(estate, "flowlogs"),
                options=settings.network,
            ),
            opts=child,
        )

        secrets = {s: pulumi.Config("bakehouse").require_secret(secret_config_key(s)) for s in settings.app.secrets}
        params = ParameterHierarchy(
            f"{name}-parameters",
            ParameterHierarchyArgs(
                env=env,
                kms_key_arn=key_arn,
                ami_families=settings.ami_families,
                parameters=settings.app.parameters,
                secrets=secrets,
            ),
            opts=child,
        )

        ami_parameter = env_ami_parameter(env, settings.app.family)
        app = AppAccess(
            f"{name}-app",
            AppAccessArgs(
                env=env,
                region=cfg.region,
                account_id=cfg.account_id,
                security_account_id=estate.accounts.security,
                home_region=estate.home_region,
                kms_key_arn=key_arn,
                ami_parameter=ami_parameter,
                parameter_names=[f"{params.prefix}/app/{k}" for k in settings.app.parameters]
                + [f"{params.prefix}/secrets/{k}" for k in settings.app.secrets],
                instance_type=settings.app.instance_type,
                log_retention_days=settings.app.log_retention_days,
                vpc_id=network.vpc_id,
                vpc_cidr=cfg.network.cidr,
                gateway_prefix_list_ids=[network.endpoints[g].prefix_list_id for g in settings.network.gateway_endpoints],
                extra_https_cidrs=_peer_cidrs(settings),
                proxy=(egress.destination_cidr, egress.proxy_port) if (egress := settings.network.egress) else None,
                sessions_bucket=central_bucket(estate, "sessions"),
                evidence_bucket=central_bucket(estate, "evidence"),
            ),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[params])),
        )

        FactoryAccess(
            f"{name}-factory-access",
            FactoryAccessArgs(
                env=env,
                account_id=cfg.account_id,
                region=cfg.region,
                build_account_id=estate.accounts.build,
                organization_id=estate.organization_id,
                regions=estate.allowed_regions,
                canary_launch_template_arn=app.launch_template.arn,
            ),
            opts=child,
        )
        BreakGlass(
            f"{name}-break-glass",
            BreakGlassArgs(
                account_id=cfg.account_id,
                security_account_id=estate.accounts.security,
                organization_id=estate.organization_id,
                security_topic_arn=security_topic_arn(estate),
                home_region=estate.home_region,
                region=cfg.region,
                global_events_provider=self._global_events_provider(name, cfg),
            ),
            opts=child,
        )
        CatalogAccess(
            f"{name}-catalog-access",
            CatalogAccessArgs(
                account_id=cfg.account_id,
                region=cfg.region,
                build_account_id=estate.accounts.build,
                kms_key_arn=key_arn,
                image_key_arn=settings.image_keys[cfg.region],
                image_keys=settings.image_keys,
            ),
            opts=child,
        )
        IncidentResponse(
            f"{name}-incident-response",
            IncidentResponseArgs(
                account_id=cfg.account_id,
                region=cfg.region,
                home_region=estate.home_region,
                security_account_id=estate.accounts.security,
                min_severity=settings.isolate_min_severity,
                evidence_bucket=central_bucket(estate, "evidence"),
                security_topic_arn=security_topic_arn(estate),
                kms_key_arn=key_arn,
                access_log_bucket=storage.access_logs.name,
                forensic_source=settings.forensic_source,
            ),
            opts=child,
        )

        fleet = fleet_settings(cfg.sections.get("workload"), Problems(cfg.stack))  # checked in settings()
        self.fleet = FleetReport(
            f"{name}-fleet",
            FleetReportArgs(
                env=env,
                account_id=cfg.account_id,
                region=cfg.region,
                home_region=estate.home_region,
                security_account_id=estate.accounts.security,
                topic_arn=security_topic_arn(estate),
                kms_key_arn=key_arn,
                settings=fleet,
                app_family=settings.app.family,
            ),
            opts=child,
        )

        self.endpoint_cost_usd_monthly = network.endpoint_cost_usd_monthly
        self.exports = {
            "vpcId": network.vpc_id,
            "privateSubnetIds": network.private_subnet_ids,
            "endpointSecurityGroupId": network.endpoint_security_group.id,
            "parameterPrefix": params.prefix,
            "amiParameterName": ami_parameter,
            "instanceProfileName": app.instance_profile.name,
            "launchTemplateId": app.launch_template.id,
            "kmsKeyArn": key_arn,
            "logGroupName": app.log_group.name,
        }
        assert tuple(self.exports) == EXPORT_CONTRACT
        self.register_outputs(self.exports)

    def _global_events_provider(self, name: str, cfg: StackConfig) -> pulumi.ProviderResource | None:
        """Same account and role, in us-east-1: where the STS global endpoint's events are delivered
        (EventBridge user guide: global services deliver their events to us-east-1 only).

        None when the stack already runs there, or when us-east-1 is outside allowedRegions: the region
        SCP would deny the rule. Break-glass use through the global endpoint is then alarmed by the
        organization trail's break-glass metric alarm (org stack), which sees every region."""
        if cfg.region == GLOBAL_EVENTS_REGION or GLOBAL_EVENTS_REGION not in cfg.estate.allowed_regions:
            return None
        return self._provider_in(name, cfg, GLOBAL_EVENTS_REGION)

    def _provider_in(self, name: str, cfg: StackConfig, region: str) -> pulumi.ProviderResource:
        """This account, through the same role, in another region (one provider a region)."""
        if region not in self._region_providers:
            self._region_providers[region] = account_provider(
                f"{name}-{region}",
                account_id=cfg.account_id,
                region=region,
                role_arn=stack_role_arn(cfg),
                tags=cfg.default_tags,
                session_name=f"bakehouse-{cfg.stack}",
                opts=pulumi.ResourceOptions(parent=self),
            )
        return self._region_providers[region]

    @staticmethod
    def settings(cfg: StackConfig) -> WorkloadConfig:
        """Every problem of the `bakehouse:workload` section at once (ConfigError), or its settings;
        a secret stored in plain text in the stack file is one of them."""
        problems = Problems(cfg.stack)
        try:
            settings = load_workload_config(cfg)
        except ConfigError as err:  # reported together with the checks below, in one error
            problems.items.extend(err.problems)
            settings = None
        fleet_settings(cfg.sections.get("workload"), problems)
        encrypted = set(runtime_config.get_config_secret_keys_env())
        for name in settings.app.secrets if settings else ():
            key = f"bakehouse:{secret_config_key(name)}"
            problems.check(
                runtime_config.is_config_secret(key)
                or key in encrypted
                or isinstance(cfg.sections.get(secret_config_key(name)), EncryptedText),
                key,
                "<plain text, redacted>",
                f"an encrypted value: pulumi config set --secret {key} ... (never plain text)",
            )
        # The hub and the egress proxy are other networks reached over a transit gateway or peering: a range
        # inside this VPC's own would be routed locally and never leave it.
        own = ipaddress.ip_network(cfg.network.cidr) if cfg.network else None
        for key, peer in _peer_ranges(settings) if settings and own else ():
            problems.check(
                not ipaddress.ip_network(peer).overlaps(own),
                key,
                peer,
                f"a range outside this VPC's own {own} (bakehouse:network.cidr)",
            )
        # Egress is a network option of the workload section; a top-level key would be silently ignored.
        if "egress" in cfg.sections:
            problems.add(
                "bakehouse:egress",
                cfg.sections["egress"],
                "nothing here: set bakehouse:workload.network.egress (mode, targetId, destinationCidr)",
            )
        # The security topic lives in the home region and EventBridge reaches cross-account targets only
        # within a region, so the alarms and isolation notices work only from there.
        problems.check(
            cfg.region == cfg.estate.home_region,
            "bakehouse:region",
            cfg.region,
            f"the home region {cfg.estate.home_region} (where the security topic is) for workload stacks",
        )
        problems.raise_if_any()
        assert settings is not None  # any problem in the section raised above
        return settings


def _peer_ranges(settings: WorkloadConfig) -> list[tuple[str, str]]:
    ranges = []
    if settings.network.shared:
        ranges.append(("bakehouse:workload.network.shared.hubCidr", settings.network.shared.hub_cidr))
    if settings.network.egress:
        ranges.append(("bakehouse:workload.network.egress.destinationCidr", settings.network.egress.destination_cidr))
    return ranges


def _peer_cidrs(settings: WorkloadConfig) -> list[str]:
    cidrs = []
    if settings.network.shared:
        cidrs.append(settings.network.shared.hub_cidr)
    if settings.network.egress:
        cidrs.append(settings.network.egress.destination_cidr)
    return cidrs
