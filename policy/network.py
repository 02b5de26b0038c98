"""Network exposure: security groups open to the world, internet paths in workloads, public IPs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .support import (
    UNKNOWN,
    Config,
    Res,
    as_list,
    is_workload,
    str_list,
    truthy,
    workload_policy,
)

WORLD = ("0.0.0.0/0", "::/0")
ADMIN_PORTS = {22: "SSH", 3389: "RDP"}
SG_TYPES = ("aws:ec2/securityGroup:SecurityGroup", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
RULE_TYPE = "aws:ec2/securityGroupRule:SecurityGroupRule"
INGRESS_RULE_TYPE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
INTERNET_PATH_TYPES = {
    "aws:ec2/internetGateway:InternetGateway": "internet gateway",
    "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment": "internet gateway attachment",
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway": "egress-only internet gateway",
    "aws:ec2/natGateway:NatGateway": "NAT gateway",
    "aws:ec2/eip:Eip": "Elastic IP",
    "aws:ec2/eipAssociation:EipAssociation": "Elastic IP association",
}


def _ingress_rules(res: Res) -> list[Mapping[str, Any]]:
    """Every ingress rule a resource declares, as {fromPort, toPort, protocol, cidrs}."""
    if res.type in SG_TYPES:
        return [
            {
                "fromPort": r.get("fromPort"),
                "toPort": r.get("toPort"),
                "protocol": r.get("protocol"),
                "cidrs": str_list(r.get("cidrBlocks")) + str_list(r.get("ipv6CidrBlocks")),
            }
            for r in as_list(res.get("ingress"))
            if isinstance(r, Mapping)
        ]
    if res.type == RULE_TYPE:
        if res.get("type") != "ingress":
            return []
        return [
            {
                "fromPort": res.get("fromPort"),
                "toPort": res.get("toPort"),
                "protocol": res.get("protocol"),
                "cidrs": str_list(res.get("cidrBlocks")) + str_list(res.get("ipv6CidrBlocks")),
            }
        ]
    if res.type == INGRESS_RULE_TYPE:
        return [
            {
                "fromPort": res.get("fromPort"),
                "toPort": res.get("toPort"),
                "protocol": res.get("ipProtocol"),
                "cidrs": str_list(res.get("cidrIpv4")) + str_list(res.get("cidrIpv6")),
            }
        ]
    return []


def _all_ports(protocol: Any) -> bool:
    return str(protocol).lower() in ("-1", "all")


def _covers(rule: Mapping[str, Any], port: int) -> bool | None:
    protocol = rule["protocol"]
    if protocol is UNKNOWN:
        return None
    if _all_ports(protocol):
        return True
    if str(protocol).lower() not in ("tcp", "6", "udp", "17"):
        return False
    low, high = rule["fromPort"], rule["toPort"]
    if not isinstance(low, int | float) or not isinstance(high, int | float):
        return None
    return low <= port <= high


def _describe(rule: Mapping[str, Any]) -> str:
    if _all_ports(rule["protocol"]):
        return "all traffic"
    return f"{rule['protocol']} {rule['fromPort']}-{rule['toPort']}"


def check_world_ingress(res: Res, config: Config) -> Iterator[str]:
    workload = is_workload(res, config)
    for rule in _ingress_rules(res):
        world = sorted(set(rule["cidrs"]) & set(WORLD))
        if not world:
            continue
        where = " and ".join(world)
        if workload:
            yield f"{res.name} opens {_describe(rule)} to {where}; workload stacks admit no ingress from the internet"
            continue
        for port, label in ADMIN_PORTS.items():
            if _covers(rule, port):
                yield f"{res.name} opens port {port} ({label}) to {where}"


def check_no_internet_path(res: Res, config: Config) -> Iterator[str]:
    if is_workload(res, config):
        yield (
            f"{INTERNET_PATH_TYPES[res.type]} {res.name} in workload stack {res.stack}; workloads reach AWS "
            "through VPC endpoints and have no internet path"
        )


def check_subnet_private(res: Res, config: Config) -> Iterator[str]:
    if truthy(res.get("mapPublicIpOnLaunch")):
        yield f"subnet {res.name} gives launched instances public IPs (mapPublicIpOnLaunch)"
    if truthy(res.get("assignIpv6AddressOnCreation")) and is_workload(res, config):
        yield f"subnet {res.name} assigns IPv6 addresses, which are globally routable"


POLICIES = [
    workload_policy(
        "no-world-ingress",
        "No security group opens SSH/RDP to 0.0.0.0/0 or ::/0; in workload stacks, no port at all.",
        "Reach instances through SSM Session Manager; scope ingress to security groups or private CIDRs.",
        SG_TYPES + (RULE_TYPE, INGRESS_RULE_TYPE),
        check_world_ingress,
    ),
    workload_policy(
        "workload-no-internet-path",
        "Workload stacks declare no internet gateway, NAT gateway or Elastic IP.",
        "Use the private network's VPC endpoints; egress that truly needs the internet goes through the build account's proxy.",
        tuple(INTERNET_PATH_TYPES),
        check_no_internet_path,
    ),
    workload_policy(
        "subnet-no-public-ip",
        "Subnets do not hand out public IPs on launch (nor IPv6 addresses in workloads).",
        "Leave map_public_ip_on_launch unset or false.",
        ("aws:ec2/subnet:Subnet",),
        check_subnet_private,
    ),
]
