"""The build account's network: the estate's only egress, filtered by AWS Network Firewall.

Per AZ: a private build subnet whose default route points at the firewall endpoint of its AZ, a
firewall subnet routing on to the NAT gateway, and a public egress subnet (NAT + internet gateway)
whose route back to the build subnet again crosses the firewall, so both directions are inspected.
AWS APIs the builds need are reached through VPC endpoints and never cross the firewall.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from estate.config import NetworkConfig, Problems

# Interface endpoints the SSM-driven build, validation and rescans use from inside the VPC; ecr.api and
# ecr.dkr for the Packer engine's container twin (docker push from CodeBuild; layers go through S3).
INTERFACE_ENDPOINTS = ("ssm", "ssmmessages", "ec2messages", "ec2", "logs", "kms", "sts", "inspector2", "ecr.api", "ecr.dkr")
TIERS = ("build", "firewall", "egress")
MIN_SUBNET_PREFIX = 28  # the smallest subnet AWS allows
HTTP_PORTS = (443, 80)


@dataclass(frozen=True)
class SubnetPlan:
    az: str
    tier: str
    cidr: str


def plan_subnets(stack: str, network: NetworkConfig, region: str) -> dict[tuple[str, str], SubnetPlan]:
    """Carve the VPC into a quarter per tier and an eighth of that per AZ (room for six AZs).

    Keyed by (tier, az) so adding an AZ appends subnets rather than renumbering existing ones.
    """
    vpc = ipaddress.ip_network(network.cidr)
    per_az_prefix = vpc.prefixlen + 2 + 3
    problems = Problems(stack)
    problems.check(
        per_az_prefix <= MIN_SUBNET_PREFIX,
        "bakehouse:network.cidr",
        network.cidr,
        f"a /{MIN_SUBNET_PREFIX - 5} or larger range on the build stack: it holds three subnet tiers "
        f"for up to six AZs, each at least /{MIN_SUBNET_PREFIX}",
    )
    problems.raise_if_any()
    tiers = list(vpc.subnets(new_prefix=vpc.prefixlen + 2))
    plan = {}
    for t, tier in enumerate(TIERS):
        slots = list(tiers[t].subnets(new_prefix=per_az_prefix))
        for i, az in enumerate(network.az_names(region)):
            plan[(tier, az)] = SubnetPlan(az, tier, str(slots[i]))
    return plan


def domain_rules(domains: Sequence[str]) -> aws.networkfirewall.RuleGroupRuleGroupArgs:
    """An allow-list on the TLS SNI and HTTP Host of outbound requests; anything else meets the default drop."""
    return aws.networkfirewall.RuleGroupRuleGroupArgs(
        rules_source=aws.networkfirewall.RuleGroupRuleGroupRulesSourceArgs(
            rules_source_list=aws.networkfirewall.RuleGroupRuleGroupRulesSourceRulesSourceListArgs(
                generated_rules_type="ALLOWLIST",
                target_types=["TLS_SNI", "HTTP_HOST"],
                targets=list(domains),
            )
        ),
        stateful_rule_options=aws.networkfirewall.RuleGroupRuleGroupStatefulRuleOptionsArgs(rule_order="STRICT_ORDER"),
    )


def endpoint_for_az(statuses: Any, az: str) -> str | None:
    """The firewall's endpoint id in one AZ, from the firewall's reported sync states."""
    for status in statuses or ():
        for state in _get(status, "sync_states") or ():
            if _get(state, "availability_zone") == az:
                for attachment in _get(state, "attachments") or ():
                    if _get(attachment, "endpoint_id"):
                        return _get(attachment, "endpoint_id")
    return None


def _get(obj: Any, key: str) -> Any:
    # Provider outputs arrive as typed objects in a real run and as plain dicts (camelCase) from mocks.
    if isinstance(obj, dict):
        return obj.get(key, obj.get("".join(p.capitalize() if i else p for i, p in enumerate(key.split("_")))))
    return getattr(obj, key, None)


@dataclass(frozen=True)
class BuildNetworkArgs:
    stack: str
    network: NetworkConfig
    region: str
    egress_domains: tuple[str, ...]
    kms_key_arn: pulumi.Input[str]  # firewall configuration and rule groups at rest
    logs_kms_key_arn: pulumi.Input[str]  # firewall log groups
    flow_log_bucket_arn: str  # the central flowlogs bucket in the security account
    log_retention_days: int = 365


class BuildNetwork(pulumi.ComponentResource):
    """Private build subnets whose only way out is the firewall's domain allow-list."""

    def __init__(self, name: str, args: BuildNetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:build:BuildNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        plan = plan_subnets(args.stack, args.network, args.region)
        azs = args.network.az_names(args.region)

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.network.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": f"{name}-build"},
            opts=child,
        )
        # A default security group that allows nothing, so a resource left on it is isolated.
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=self.vpc.id, opts=child)
        # Default text format at the bucket root (AWSLogs/<account>/...): what the log-archive bucket
        # policy admits and the central Athena table's partition projection reads.
        aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="s3",
            log_destination=args.flow_log_bucket_arn,
            max_aggregation_interval=60,
            opts=child,
        )

        self.subnets = {
            key: aws.ec2.Subnet(
                f"{name}-{key[0]}-{key[1]}",
                vpc_id=self.vpc.id,
                cidr_block=p.cidr,
                availability_zone=p.az,
                map_public_ip_on_launch=False,
                tags={"Name": f"{name}-{key[0]}-{key[1]}", "bakehouse:tier": key[0]},
                opts=child,
            )
            for key, p in plan.items()
        }
        self.build_subnet_ids = [self.subnets[("build", az)].id for az in azs]

        self.firewall = self._firewall(name, args, azs, child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, opts=child)
        self._routes(name, plan, azs, igw, child)
        self.build_security_group, self.endpoint_security_group = self._security_groups(name, args, child)
        self._endpoints(name, args, child)

        self.build_subnet_arns = [s.arn for s in (self.subnets[("build", az)] for az in azs)]
        self.register_outputs(
            {
                "vpc_id": self.vpc.id,
                "build_subnet_ids": self.build_subnet_ids,
                "build_security_group_id": self.build_security_group.id,
                "firewall_arn": self.firewall.arn,
            }
        )

    def _firewall(self, name, args: BuildNetworkArgs, azs, child) -> aws.networkfirewall.Firewall:
        encryption = {"type": "CUSTOMER_KMS", "key_id": args.kms_key_arn}
        # Capacity is fixed at creation; each domain costs about two rules (SNI + Host), so reserve room
        # to grow the list without replacing the group.
        capacity = max(100, 4 * len(args.egress_domains))
        rules = aws.networkfirewall.RuleGroup(
            f"{name}-egress-allow",
            type="STATEFUL",
            capacity=capacity,
            description="Build egress: OS and agent repositories only",
            rule_group=domain_rules(args.egress_domains),
            encryption_configuration=aws.networkfirewall.RuleGroupEncryptionConfigurationArgs(**encryption),
            opts=child,
        )
        policy = aws.networkfirewall.FirewallPolicy(
            f"{name}-egress-policy",
            firewall_policy=aws.networkfirewall.FirewallPolicyFirewallPolicyArgs(
                # Every packet goes to the stateful engine; nothing is decided statelessly.
                stateless_default_actions=["aws:forward_to_sfe"],
                stateless_fragment_default_actions=["aws:forward_to_sfe"],
                stateful_engine_options=aws.networkfirewall.FirewallPolicyFirewallPolicyStatefulEngineOptionsArgs(
                    rule_order="STRICT_ORDER"
                ),
                # drop_established (not drop_strict) lets the TCP handshake through so the SNI/Host can be
                # read; whatever the allow-list did not pass is then dropped and alerted on.
                stateful_default_actions=["aws:drop_established", "aws:alert_established"],
                stateful_rule_group_references=[
                    aws.networkfirewall.FirewallPolicyFirewallPolicyStatefulRuleGroupReferenceArgs(
                        resource_arn=rules.arn, priority=100
                    )
                ],
            ),
            encryption_configuration=aws.networkfirewall.FirewallPolicyEncryptionConfigurationArgs(**encryption),
            opts=child,
        )
        firewall = aws.networkfirewall.Firewall(
            f"{name}-firewall",
            firewall_policy_arn=policy.arn,
            vpc_id=self.vpc.id,
            subnet_mappings=[
                aws.networkfirewall.FirewallSubnetMappingArgs(subnet_id=self.subnets[("firewall", az)].id) for az in azs
            ],
            delete_protection=True,
            firewall_policy_change_protection=False,
            subnet_change_protection=True,
            encryption_configuration=aws.networkfirewall.FirewallEncryptionConfigurationArgs(**encryption),
            opts=child,
        )
        destinations = []
        for log_type in ("ALERT", "FLOW"):
            group = aws.cloudwatch.LogGroup(
                f"{name}-firewall-{log_type.lower()}",
                name=f"/bakehouse/build/firewall/{log_type.lower()}",
                retention_in_days=args.log_retention_days,
                kms_key_id=args.logs_kms_key_arn,
                opts=child,
            )
            destinations.append(
                aws.networkfirewall.LoggingConfigurationLoggingConfigurationLogDestinationConfigArgs(
                    log_destination={"logGroup": group.name}, log_destination_type="CloudWatchLogs", log_type=log_type
                )
            )
        aws.networkfirewall.LoggingConfiguration(
            f"{name}-firewall-logging",
            firewall_arn=firewall.arn,
            logging_configuration=aws.networkfirewall.LoggingConfigurationLoggingConfigurationArgs(
                log_destination_configs=destinations
            ),
            opts=child,
        )
        return firewall

    def _routes(self, name, plan, azs, igw, child) -> None:
        self.nat_gateways: dict[str, aws.ec2.NatGateway] = {}
        self.route_tables: dict[tuple[str, str], aws.ec2.RouteTable] = {}
        for az in azs:
            endpoint = self.firewall.firewall_statuses.apply(lambda s, az=az: endpoint_for_az(s, az))
            eip = aws.ec2.Eip(f"{name}-nat-ip-{az}", domain="vpc", opts=child)
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{az}",
                subnet_id=self.subnets[("egress", az)].id,
                allocation_id=eip.allocation_id,
                connectivity_type="public",
                opts=child.merge(pulumi.ResourceOptions(depends_on=[igw])),
            )
            self.nat_gateways[az] = nat
            # build -> the firewall endpoint of the same AZ, so inspection stays symmetric
            self._route(name, "build", az, "0.0.0.0/0", child, vpc_endpoint_id=endpoint)
            # firewall -> NAT gateway
            self._route(name, "firewall", az, "0.0.0.0/0", child, nat_gateway_id=nat.id)
            # egress -> internet, and the way back to the build subnet again through the firewall
            self._route(name, "egress", az, "0.0.0.0/0", child, gateway_id=igw.id)
            self._route(name, "egress", az, plan[("build", az)].cidr, child, suffix="return", vpc_endpoint_id=endpoint)

    def _route(self, name, tier, az, destination, child, suffix="default", **target) -> aws.ec2.Route:
        # Separate Route resources (not inline routes) so the S3 gateway endpoint's prefix-list routes
        # in the same tables are not seen as drift.
        if (tier, az) not in self.route_tables:
            table = aws.ec2.RouteTable(
                f"{name}-{tier}-rt-{az}",
                vpc_id=self.vpc.id,
                tags={"Name": f"{name}-{tier}-{az}", "bakehouse:tier": tier},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-{tier}-rta-{az}", subnet_id=self.subnets[(tier, az)].id, route_table_id=table.id, opts=child
            )
            self.route_tables[(tier, az)] = table
        return aws.ec2.Route(
            f"{name}-{tier}-{suffix}-{az}",
            route_table_id=self.route_tables[(tier, az)].id,
            destination_cidr_block=destination,
            opts=child,
            **target,
        )

    def _security_groups(self, name, args: BuildNetworkArgs, child):
        build = aws.ec2.SecurityGroup(
            f"{name}-build-sg",
            vpc_id=self.vpc.id,
            description="Build and scan instances: HTTP/S out (filtered by the firewall), nothing in",
            ingress=[],
            egress=[
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="tcp",
                    from_port=port,
                    to_port=port,
                    cidr_blocks=["0.0.0.0/0"],
                    description=f"TCP {port} via firewall",
                )
                for port in HTTP_PORTS
            ],
            opts=child,
        )
        endpoints = aws.ec2.SecurityGroup(
            f"{name}-endpoints-sg",
            vpc_id=self.vpc.id,
            description="VPC interface endpoints: HTTPS from the VPC",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp", from_port=443, to_port=443, cidr_blocks=[args.network.cidr], description="HTTPS from VPC"
                )
            ],
            egress=[],
            opts=child,
        )
        return build, endpoints

    def _endpoints(self, name, args: BuildNetworkArgs, child) -> None:
        self.endpoints = {
            service: aws.ec2.VpcEndpoint(
                f"{name}-vpce-{service}",
                vpc_id=self.vpc.id,
                vpc_endpoint_type="Interface",
                service_name=f"com.amazonaws.{args.region}.{service}",
                private_dns_enabled=True,
                subnet_ids=self.build_subnet_ids,
                security_group_ids=[self.endpoint_security_group.id],
                opts=child,
            )
            for service in INTERFACE_ENDPOINTS
        }
        # Gateway endpoint: S3 (scripts, AL2023 repositories, agent downloads) never leaves for the internet.
        self.endpoints["s3"] = aws.ec2.VpcEndpoint(
            f"{name}-vpce-s3",
            vpc_id=self.vpc.id,
            vpc_endpoint_type="Gateway",
            service_name=f"com.amazonaws.{args.region}.s3",
            route_table_ids=[t.id for (tier, _), t in self.route_tables.items() if tier == "build"],
            opts=child,
        )
