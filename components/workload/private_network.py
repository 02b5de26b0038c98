"""A VPC with no route to the internet: private subnets only, AWS APIs reached through endpoints."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from estate.naming import PREFIX

from ..lib.iam import document, statement
from .workload_config import NetworkOptions

# PrivateLink interface endpoint price, USD per endpoint per AZ-hour, from the AWS PrivateLink
# pricing page as of PRICE_TABLE_DATE. Data processing ($0.01/GB) is usage and not estimated.
PRICE_TABLE_DATE = "2024-06-01"
ENDPOINT_HOURLY_USD = {
    "us-east-1": 0.010,
    "us-east-2": 0.010,
    "us-west-2": 0.010,
    "eu-west-1": 0.011,
    "eu-central-1": 0.012,
    "eu-west-2": 0.011,
    "eu-north-1": 0.011,
}
HOURS_PER_MONTH = 730  # AWS's own billing convention (8760 / 12)

# Service name -> IAM action prefix, where they differ (monitoring is CloudWatch's endpoint name).
ACTION_PREFIX = {"monitoring": "cloudwatch", "ecr.api": "ecr", "ecr.dkr": "ecr", "kinesis-streams": "kinesis"}


def endpoint_cost_usd_monthly(interface_endpoints: int, azs: int, region: str) -> float:
    """Fixed monthly cost of interface endpoints: one ENI per endpoint per AZ, billed per hour.
    Gateway endpoints (s3, dynamodb) are free; endpoints shared from a hub cost this account nothing."""
    if region not in ENDPOINT_HOURLY_USD:
        raise ValueError(
            f"no endpoint price for region {region!r} in the {PRICE_TABLE_DATE} table; "
            f"known: {', '.join(sorted(ENDPOINT_HOURLY_USD))}"
        )
    if interface_endpoints < 0 or azs < 1:
        raise ValueError(f"endpoints {interface_endpoints}, azs {azs}: need endpoints >= 0 and azs >= 1")
    return round(interface_endpoints * azs * ENDPOINT_HOURLY_USD[region] * HOURS_PER_MONTH, 2)


def subnet_cidrs(vpc_cidr: str, az_names: tuple[str, ...]) -> dict[str, str]:
    """One subnet per AZ, keyed by AZ name and placed by the AZ's letter, so adding an AZ later
    appends a subnet instead of renumbering (and replacing) the existing ones."""
    net = ipaddress.ip_network(vpc_cidr)
    new_prefix = min(net.prefixlen + 4, 28)  # room for 16 AZ slots; /28 is the smallest subnet AWS allows
    blocks = list(net.subnets(new_prefix=new_prefix))
    return {az: str(blocks["abcdef".index(az[-1])]) for az in az_names}


def endpoint_policy(service: str, organization_id: str, account_id: str, region: str) -> pulumi.Output[str]:
    """Only principals of this organization, and only the service the endpoint fronts."""
    in_org = {"StringEquals": {"aws:PrincipalOrgID": organization_id}}
    if service == "s3":
        return document(*s3_endpoint_statements(organization_id, region))
    if service == "dynamodb":
        return document(
            statement(
                "OrgPrincipalsThisAccountsTables",
                ["dynamodb:*"],
                [f"arn:aws:dynamodb:{region}:{account_id}:table/*"],
                principals="*",
                conditions=in_org,
            )
        )
    prefix = ACTION_PREFIX.get(service, service)
    # An endpoint fronts one service for every resource of it; the organization condition is the scope.
    return document(statement("OrgPrincipalsOnly", [f"{prefix}:*"], ["*"], principals="*", conditions=in_org))


def aws_owned_buckets(region: str) -> list[str]:
    """Buckets AWS owns that the SSM agent and the Amazon Linux package repositories read from."""
    names = [
        f"aws-ssm-{region}",
        f"amazon-ssm-{region}",
        f"amazon-ssm-packages-{region}",
        f"{region}-birdwatcher-prod",
        f"aws-ssm-distributor-file-{region}",
        f"aws-ssm-document-attachments-{region}",
        f"patch-baseline-snapshot-{region}",
        f"al2023-repos-{region}-de612dc2",
        f"amazonlinux-2-repos-{region}",
        f"amazonlinux.{region}.amazonaws.com",
    ]
    return [f"arn:aws:s3:::{name}/*" for name in names]


def s3_endpoint_statements(organization_id: str, region: str) -> list[dict[str, Any]]:
    in_org = {"StringEquals": {"aws:PrincipalOrgID": organization_id}}
    return [
        statement(
            "OrgPrincipalsToEstateBuckets",
            ["s3:*"],
            [f"arn:aws:s3:::{PREFIX}-*", f"arn:aws:s3:::{PREFIX}-*/*"],
            principals="*",
            conditions=in_org,
        ),
        statement(
            "OrgPrincipalsReadAwsAgentAndRepoBuckets",
            ["s3:GetObject"],
            aws_owned_buckets(region),
            principals="*",
            conditions=in_org,
        ),
    ]


@dataclass(frozen=True)
class PrivateNetworkArgs:
    cidr: str
    az_names: tuple[str, ...]
    region: str
    account_id: str
    organization_id: str
    flow_log_bucket_arn: str
    options: NetworkOptions = NetworkOptions()

    @property
    def billed_endpoints(self) -> int:
        return len(self.options.interface_endpoints) if self.options.endpoint_mode == "per-vpc" else 0

    @property
    def endpoint_cost_usd_monthly(self) -> float | None:
        """None for a region missing from the price table: an estimate must never stop a deployment."""
        if self.region not in ENDPOINT_HOURLY_USD:
            return None
        return endpoint_cost_usd_monthly(self.billed_endpoints, len(self.az_names), self.region)


class PrivateNetwork(pulumi.ComponentResource):
    """Private subnets in every configured AZ, no internet gateway, NAT or public IP, flow-logged."""

    def __init__(self, name: str, args: PrivateNetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:workload:PrivateNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        options = args.options
        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": f"{PREFIX}-{name}"},
            opts=child,
        )
        vpc_id = self.vpc.id
        # VPC Block Public Access is account-wide in a region: the account baseline owns it (every allowed
        # region, block-bidirectional in workload accounts), so this VPC's gateways pass no traffic either.
        # Adopted and emptied: nothing can rely on the default group's allow-all-within-group rules.
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc_id, ingress=[], egress=[], opts=child)
        # The main route table is what an unassociated subnet would use; adopted with no routes.
        aws.ec2.DefaultRouteTable(
            f"{name}-main-routes", default_route_table_id=self.vpc.default_route_table_id, routes=[], opts=child
        )
        # Every subnet is associated with the NACL below; the default one is left denying everything.
        aws.ec2.DefaultNetworkAcl(
            f"{name}-default-nacl", default_network_acl_id=self.vpc.default_network_acl_id, ingress=[], egress=[], opts=child
        )

        self.subnets = {
            az: aws.ec2.Subnet(
                f"{name}-private-{az[-1]}",
                vpc_id=vpc_id,
                cidr_block=cidr,
                availability_zone=az,
                map_public_ip_on_launch=False,
                assign_ipv6_address_on_creation=False,
                tags={"Name": f"{PREFIX}-{name}-private-{az}", "bakehouse:tier": "private"},
                opts=child,
            )
            for az, cidr in subnet_cidrs(args.cidr, args.az_names).items()
        }
        subnet_ids = [s.id for s in self.subnets.values()]
        self.private_subnet_ids = pulumi.Output.all(*subnet_ids)

        self.route_table = aws.ec2.RouteTable(
            f"{name}-private-routes", vpc_id=vpc_id, tags={"Name": f"{PREFIX}-{name}-private"}, opts=child
        )
        for az, subnet in self.subnets.items():
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{az[-1]}-routes", subnet_id=subnet.id, route_table_id=self.route_table.id, opts=child
            )

        self.endpoint_security_group = aws.ec2.SecurityGroup(
            f"{name}-endpoints",
            vpc_id=vpc_id,
            description="HTTPS to VPC endpoints from inside the VPC only",
            ingress=[
                aws.ec2.SecurityGroupIngressArgs(
                    protocol="tcp", from_port=443, to_port=443, cidr_blocks=[args.cidr], description="HTTPS from the VPC"
                )
            ],
            egress=[],  # endpoints answer; they never open connections
            opts=child,
        )

        self.endpoints: dict[str, aws.ec2.VpcEndpoint] = {}
        if options.endpoint_mode == "per-vpc":
            for service in options.interface_endpoints:
                self.endpoints[service] = aws.ec2.VpcEndpoint(
                    f"{name}-{service.replace('.', '-')}",
                    vpc_id=vpc_id,
                    vpc_endpoint_type="Interface",
                    service_name=f"com.amazonaws.{args.region}.{service}",
                    private_dns_enabled=True,
                    subnet_ids=subnet_ids,
                    security_group_ids=[self.endpoint_security_group.id],
                    policy=endpoint_policy(service, args.organization_id, args.account_id, args.region),
                    opts=child,
                )
        for service in options.gateway_endpoints:
            self.endpoints[service] = aws.ec2.VpcEndpoint(
                f"{name}-{service}",
                vpc_id=vpc_id,
                vpc_endpoint_type="Gateway",
                service_name=f"com.amazonaws.{args.region}.{service}",
                route_table_ids=[self.route_table.id],
                policy=endpoint_policy(service, args.organization_id, args.account_id, args.region),
                opts=child,
            )

        attachment = self._transit(name, args, vpc_id, subnet_ids, child)
        self._egress(name, args, attachment, child)

        aws.ec2.NetworkAcl(
            f"{name}-private-nacl",
            vpc_id=vpc_id,
            subnet_ids=subnet_ids,
            ingress=nacl_rules(args, "ingress"),
            egress=nacl_rules(args, "egress"),
            tags={"Name": f"{PREFIX}-{name}-private"},
            opts=child,
        )

        self.flow_log = aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=vpc_id,
            traffic_type="ALL",
            log_destination_type="s3",
            log_destination=args.flow_log_bucket_arn,
            max_aggregation_interval=60,
            opts=child,
        )

        self.endpoint_cost_usd_monthly = args.endpoint_cost_usd_monthly
        if self.endpoint_cost_usd_monthly is None:
            pulumi.log.warn(
                f"{name}: no interface endpoint price for {args.region} in the {PRICE_TABLE_DATE} "
                "table (components/workload/private_network.py); cost not estimated",
                self,
            )
        else:
            pulumi.log.info(
                f"{name}: estimated interface endpoint cost ${self.endpoint_cost_usd_monthly:,.2f}/month "
                f"({args.billed_endpoints} endpoints x {len(args.az_names)} AZs x "
                f"${ENDPOINT_HOURLY_USD[args.region]:.3f}/h in {args.region}, prices of {PRICE_TABLE_DATE}; "
                "gateway endpoints free, data processing not included)",
                self,
            )
        self.vpc_id = vpc_id
        self.register_outputs(
            {
                "vpc_id": vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "endpoint_security_group_id": self.endpoint_security_group.id,
                "endpoint_cost_usd_monthly": self.endpoint_cost_usd_monthly,
            }
        )

    def _transit(self, name: str, args: PrivateNetworkArgs, vpc_id, subnet_ids, child) -> Any:
        """One transit gateway attachment, shared by the hub's endpoints and egress when both use it."""
        options = args.options
        tgw = options.shared.transit_gateway_id if options.shared else None
        if options.egress and options.egress.mode == "transit-gateway":
            tgw = options.egress.target_id
        if tgw is None:
            return None
        attachment = aws.ec2transitgateway.VpcAttachment(
            f"{name}-tgw", transit_gateway_id=tgw, vpc_id=vpc_id, subnet_ids=subnet_ids, dns_support="enable", opts=child
        )
        if options.shared:
            aws.ec2.Route(
                f"{name}-to-endpoint-hub",
                route_table_id=self.route_table.id,
                destination_cidr_block=options.shared.hub_cidr,
                transit_gateway_id=tgw,
                opts=child.merge(pulumi.ResourceOptions(depends_on=[attachment])),
            )
            # The hub's endpoint names resolve here through its private hosted zones; the hub account
            # authorizes each association (route53 VpcAssociationAuthorization) before this runs.
            for service, zone_id in sorted(options.shared.hosted_zone_ids.items()):
                aws.route53.ZoneAssociation(
                    f"{name}-zone-{service.replace('.', '-')}", zone_id=zone_id, vpc_id=vpc_id, opts=child
                )
        return attachment

    def _egress(self, name: str, args: PrivateNetworkArgs, attachment, child) -> None:
        egress = args.options.egress
        if egress is None:
            return
        # Only the proxy's network, never a default route: the proxy filters, the route cannot bypass it.
        if egress.mode == "transit-gateway":
            aws.ec2.Route(
                f"{name}-to-egress-proxy",
                route_table_id=self.route_table.id,
                destination_cidr_block=egress.destination_cidr,
                transit_gateway_id=egress.target_id,
                opts=child.merge(pulumi.ResourceOptions(depends_on=[attachment])),
            )
        else:
            # The build account requests the peering and this account's deploy role accepts it out of band.
            aws.ec2.Route(
                f"{name}-to-egress-proxy",
                route_table_id=self.route_table.id,
                destination_cidr_block=egress.destination_cidr,
                vpc_peering_connection_id=egress.target_id,
                opts=child,
            )


def nacl_rules(args: PrivateNetworkArgs, direction: str) -> list[Mapping[str, Any]]:
    """Stateless rules: everything within the VPC; HTTPS to the hub, the egress proxy and the gateway
    endpoints; their replies on ephemeral ports. Nothing else enters or leaves the subnets."""
    rule_args = aws.ec2.NetworkAclIngressArgs if direction == "ingress" else aws.ec2.NetworkAclEgressArgs
    rules = [rule_args(rule_no=100, action="allow", protocol="-1", from_port=0, to_port=0, cidr_block=args.cidr)]
    peers = []
    if args.options.shared:
        peers.append(args.options.shared.hub_cidr)
    if args.options.egress:
        peers.append(args.options.egress.destination_cidr)
    if args.options.gateway_endpoints:
        # S3 and DynamoDB answer from their public ranges (the gateway prefix lists), and a NACL cannot
        # name a prefix list. With no route anywhere else, these rules admit only that traffic.
        peers.append("0.0.0.0/0")
    for offset, peer in enumerate(peers, start=1):
        if direction == "egress":
            rules.append(
                rule_args(rule_no=100 + offset * 10, action="allow", protocol="tcp", from_port=443, to_port=443, cidr_block=peer)
            )
        else:
            rules.append(
                rule_args(
                    rule_no=100 + offset * 10, action="allow", protocol="tcp", from_port=1024, to_port=65535, cidr_block=peer
                )
            )
    egress = args.options.egress
    if egress and direction == "egress" and egress.proxy_port != 443:
        rules.append(
            rule_args(
                rule_no=200,
                action="allow",
                protocol="tcp",
                from_port=egress.proxy_port,
                to_port=egress.proxy_port,
                cidr_block=egress.destination_cidr,
            )
        )
    return rules
