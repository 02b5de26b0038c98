"""Shared by the workload tests: the no-route-to-the-internet check a workload run must pass, and the dev
stack's `bakehouse:workload` section parsed as the loader does."""

from __future__ import annotations

import json

import pytest

from components.workload.workload_config import DEFAULT_INTERFACE_ENDPOINTS, load_workload_config
from estate.config import ConfigError, parse_stack_config
from tools.mockrun import StackRun, stack_config

INTERNET_TYPES = {
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/egressOnlyInternetGateway:EgressOnlyInternetGateway",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip",
    "aws:ec2/eipAssociation:EipAssociation",
    "aws:ec2/internetGatewayAttachment:InternetGatewayAttachment",
    "aws:ec2/vpnGateway:VpnGateway",
    "aws:ec2/customerGateway:CustomerGateway",
}
DEFAULT_ROUTES = {"0.0.0.0/0", "::/0"}
ALLOWED_REGIONS = ("eu-west-1", "eu-central-1", "us-east-1")  # Pulumi.yaml bakehouse:allowedRegions


def _all_routes(run: StackRun) -> list[dict]:
    """Every route the stack declares: inline in route tables (main or not) and standalone."""
    routes = []
    for kind in ("aws:ec2/routeTable:RouteTable", "aws:ec2/defaultRouteTable:DefaultRouteTable"):
        for table in run.of_type(kind):
            routes += [dict(r, table=table.name) for r in table.inputs.get("routes") or []]
    routes += [dict(r.inputs, table=r.inputs.get("routeTableId")) for r in run.of_type("aws:ec2/route:Route")]
    return routes


def assert_no_route_to_the_internet(run: StackRun) -> None:
    assert not run.types & INTERNET_TYPES, f"internet-facing resources: {run.types & INTERNET_TYPES}"
    assert run.of_type("aws:ec2/routeTable:RouteTable"), "no route table was checked"
    for route in _all_routes(run):
        destination = (
            route.get("cidrBlock")
            or route.get("destinationCidrBlock")
            or route.get("ipv6CidrBlock")
            or route.get("destinationIpv6CidrBlock")
        )
        assert destination not in DEFAULT_ROUTES, f"default route in {route['table']}: {route}"
        for via in ("gatewayId", "natGatewayId", "egressOnlyGatewayId"):
            assert not route.get(via), f"route through {via} in {route['table']}: {route}"
    for subnet in run.of_type("aws:ec2/subnet:Subnet"):
        assert subnet.inputs["mapPublicIpOnLaunch"] is False, subnet.name
    for template in run.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        for nic in template.inputs.get("networkInterfaces") or []:
            assert nic.get("associatePublicIpAddress") in (None, "false"), template.name
    # Account-wide per region, owned by the account baseline: every allowed region, no gateway passes traffic.
    blocks = run.of_type("aws:ec2/vpcBlockPublicAccessOptions:VpcBlockPublicAccessOptions")
    assert {b.inputs["region"] for b in blocks} == set(ALLOWED_REGIONS)
    assert all(b.inputs["internetGatewayBlockMode"] == "block-bidirectional" for b in blocks)


DEV_SECTION = {
    "amiFamilies": ["al2023"],
    "app": {"family": "al2023", "parameters": {"log-level": "debug"}, "secrets": ["db-password"]},
    "network": {"endpointMode": "per-vpc"},
    "imageKeys": {"eu-west-1": "arn:aws:kms:eu-west-1:333333333333:key/0f0e0d0c-1111-4aaa-8bbb-000000000001"},
    "incidentResponse": {"minSeverity": 5.0},
}
HUB = {
    "transitGatewayId": "tgw-0123456789abcdef0",
    "hubCidr": "10.0.0.0/16",
    "hostedZoneIds": {s: f"Z0HUB{i:04d}ABC" for i, s in enumerate(DEFAULT_INTERFACE_ENDPOINTS)},
}


def workload_cfg(section, **more):
    config, _ = stack_config("dev", overrides={"bakehouse:workload": section, **more})
    values = {k.split(":", 1)[1]: json.loads(v) if v[:1] in "[{" else v for k, v in config.items()}
    return parse_stack_config("dev", values)


def workload_problems(section, **more) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_workload_config(workload_cfg(section, **more))
    return err.value.problems
