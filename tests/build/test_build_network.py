"""The build account's egress: only through the firewall's domain allow-list, logged, with AWS APIs on endpoints."""

from __future__ import annotations

import ipaddress
import re

import pytest
import yaml

from components.build.build_network import INTERFACE_ENDPOINTS, endpoint_for_az, plan_subnets
from estate.config import NetworkConfig
from tests.iam.evaluate import allowed
from tools.mockrun import PROJECT_DIR, EchoMocks, StackRun, run_stack

AZS = ("eu-west-1a", "eu-west-1b")
FIREWALL = "aws:networkfirewall/firewall:Firewall"


class FirewallReportsEndpoints(EchoMocks):
    """Like the provider, the firewall reports one endpoint per AZ of its subnet mappings once created."""

    def new_resource(self, args):
        resource_id, outputs = super().new_resource(args)
        if args.typ == FIREWALL:
            azs = [re.search(r"([a-z]{2}-[a-z]+-\d[a-f])", m["subnetId"]).group(1) for m in args.inputs["subnetMappings"]]
            outputs["firewallStatuses"] = [
                {
                    "syncStates": [
                        {"availabilityZone": az, "attachments": [{"endpointId": f"vpce-fw-{az}", "status": "READY"}]}
                        for az in azs
                    ]
                }
            ]
        return resource_id, outputs


@pytest.fixture(scope="module")
def routed() -> StackRun:
    return run_stack("build", mocks=FirewallReportsEndpoints())


def routes_of(run: StackRun, tier: str, az: str) -> list[dict]:
    table_id = f"build-network-{tier}-rt-{az}-id"
    return [r.inputs for r in run.of_type("aws:ec2/route:Route") if r.inputs["routeTableId"] == table_id]


def subnet_of_table(run: StackRun, tier: str, az: str) -> str:
    assoc = run.named(f"build-network-{tier}-rta-{az}")
    assert assoc.inputs["routeTableId"] == f"build-network-{tier}-rt-{az}-id"
    return assoc.inputs["subnetId"]


def test_firewall_allows_only_the_configured_domains_by_sni_and_host(stack_run):
    run = stack_run("build")
    (group,) = run.of_type("aws:networkfirewall/ruleGroup:RuleGroup")
    source = group.inputs["ruleGroup"]["rulesSource"]["rulesSourceList"]
    assert group.inputs["type"] == "STATEFUL"
    assert source["generatedRulesType"] == "ALLOWLIST"
    assert sorted(source["targetTypes"]) == ["HTTP_HOST", "TLS_SNI"]
    configured = yaml.safe_load((PROJECT_DIR / "Pulumi.build.yaml").read_text())["config"]["bakehouse:factory"]
    assert source["targets"] == configured["egressDomains"]
    assert "amazoncloudwatch-agent.s3.amazonaws.com" in source["targets"]


def test_firewall_drops_and_alerts_on_everything_not_allowed(stack_run):
    run = stack_run("build")
    (policy,) = run.of_type("aws:networkfirewall/firewallPolicy:FirewallPolicy")
    fp = policy.inputs["firewallPolicy"]
    assert fp["statelessDefaultActions"] == ["aws:forward_to_sfe"]  # nothing bypasses the stateful engine
    assert fp["statelessFragmentDefaultActions"] == ["aws:forward_to_sfe"]
    assert fp["statefulEngineOptions"]["ruleOrder"] == "STRICT_ORDER"
    assert set(fp["statefulDefaultActions"]) == {"aws:drop_established", "aws:alert_established"}
    (ref,) = fp["statefulRuleGroupReferences"]
    assert ref["resourceArn"].endswith(":rulegroup/build-network-egress-allow")


def test_firewall_alert_and_flow_logs_go_to_kms_encrypted_log_groups(stack_run):
    run = stack_run("build")
    (logging_cfg,) = run.of_type("aws:networkfirewall/loggingConfiguration:LoggingConfiguration")
    by_type = {
        d["logType"]: d["logDestination"]["logGroup"] for d in logging_cfg.inputs["loggingConfiguration"]["logDestinationConfigs"]
    }
    assert set(by_type) == {"ALERT", "FLOW"}
    groups = {g.inputs["name"]: g.inputs for g in run.of_type("aws:cloudwatch/logGroup:LogGroup")}
    for name in by_type.values():
        assert groups[name]["kmsKeyId"].startswith("arn:aws:kms:eu-west-1:333333333333:key/")
        assert groups[name]["retentionInDays"] >= 365


def test_firewall_configuration_is_encrypted_with_the_factory_key(stack_run):
    run = stack_run("build")
    for type_token in (FIREWALL, "aws:networkfirewall/firewallPolicy:FirewallPolicy", "aws:networkfirewall/ruleGroup:RuleGroup"):
        (res,) = run.of_type(type_token)
        assert res.inputs["encryptionConfiguration"] == {
            "type": "CUSTOMER_KMS",
            "keyId": "arn:aws:kms:eu-west-1:333333333333:key/build-factory-key-key",
        }


@pytest.mark.parametrize("az", AZS)
def test_build_subnets_leave_only_through_the_firewall_endpoint_of_their_az(routed, az):
    assert subnet_of_table(routed, "build", az) == f"build-network-build-{az}-id"
    assert routes_of(routed, "build", az) == [
        {"destinationCidrBlock": "0.0.0.0/0", "vpcEndpointId": f"vpce-fw-{az}", "routeTableId": f"build-network-build-rt-{az}-id"}
    ]


@pytest.mark.parametrize("az", AZS)
def test_firewall_subnets_go_on_to_the_nat_gateway_and_nat_to_the_internet_gateway(routed, az):
    assert routes_of(routed, "firewall", az) == [
        {
            "destinationCidrBlock": "0.0.0.0/0",
            "natGatewayId": f"build-network-nat-{az}-id",
            "routeTableId": f"build-network-firewall-rt-{az}-id",
        }
    ]
    nat = routed.named(f"build-network-nat-{az}")
    assert nat.inputs["subnetId"] == f"build-network-egress-{az}-id"
    egress = {r["destinationCidrBlock"]: r for r in routes_of(routed, "egress", az)}
    assert egress["0.0.0.0/0"]["gatewayId"] == "build-network-igw-id"


@pytest.mark.parametrize("az", AZS)
def test_return_traffic_to_the_build_subnet_crosses_the_firewall_again(routed, az):
    build_cidr = routed.named(f"build-network-build-{az}").inputs["cidrBlock"]
    egress = {r["destinationCidrBlock"]: r for r in routes_of(routed, "egress", az)}
    assert egress[build_cidr]["vpcEndpointId"] == f"vpce-fw-{az}"


def test_firewall_sits_in_its_own_subnets_one_per_az(stack_run):
    (firewall,) = stack_run("build").of_type(FIREWALL)
    assert [m["subnetId"] for m in firewall.inputs["subnetMappings"]] == [f"build-network-firewall-{az}-id" for az in AZS]
    assert firewall.inputs["deleteProtection"] is True


def test_only_the_egress_subnets_route_to_the_internet_gateway(routed):
    to_igw = {r.inputs["routeTableId"] for r in routed.of_type("aws:ec2/route:Route") if "gatewayId" in r.inputs}
    assert to_igw == {f"build-network-egress-rt-{az}-id" for az in AZS}
    for subnet in routed.of_type("aws:ec2/subnet:Subnet"):
        assert subnet.inputs["mapPublicIpOnLaunch"] is False


def test_endpoint_lookup_picks_the_endpoint_of_the_asked_az():
    statuses = [
        {
            "sync_states": [
                {"availability_zone": "eu-west-1a", "attachments": [{"endpoint_id": "vpce-a"}]},
                {"availability_zone": "eu-west-1b", "attachments": [{"endpoint_id": "vpce-b"}]},
            ]
        }
    ]
    assert endpoint_for_az(statuses, "eu-west-1b") == "vpce-b"
    assert endpoint_for_az(statuses, "eu-west-1c") is None
    assert endpoint_for_az(None, "eu-west-1a") is None


def test_build_security_group_has_no_ingress_and_only_http_and_https_out(stack_run):
    sg = stack_run("build").named("build-network-build-sg")
    assert sg.inputs.get("ingress", []) == []
    assert sorted((e["protocol"], e["fromPort"], e["toPort"]) for e in sg.inputs["egress"]) == [
        ("tcp", 80, 80),
        ("tcp", 443, 443),
    ]


def test_ssm_and_s3_traffic_stays_on_vpc_endpoints(stack_run):
    run = stack_run("build")
    # Dotted service names (ecr.api, ecr.dkr) keep their dots: strip the com.amazonaws.<region>. prefix only.
    endpoints = {e.inputs["serviceName"].split(".", 3)[-1]: e.inputs for e in run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert {"ssm", "ssmmessages", "ec2messages", "s3"} <= set(endpoints)
    assert set(INTERFACE_ENDPOINTS) | {"s3"} == set(endpoints)
    for service in INTERFACE_ENDPOINTS:
        assert endpoints[service]["vpcEndpointType"] == "Interface"
        assert endpoints[service]["privateDnsEnabled"] is True
        assert endpoints[service]["subnetIds"] == [f"build-network-build-{az}-id" for az in AZS]
    assert endpoints["s3"]["vpcEndpointType"] == "Gateway"
    assert endpoints["s3"]["routeTableIds"] == [f"build-network-build-rt-{az}-id" for az in AZS]
    endpoint_sg = run.named("build-network-endpoints-sg").inputs
    assert [(i["fromPort"], i["cidrBlocks"]) for i in endpoint_sg["ingress"]] == [(443, ["10.0.0.0/20"])]


def test_vpc_flow_logs_go_to_the_central_flowlogs_bucket(stack_run):
    (flow,) = stack_run("build").of_type("aws:ec2/flowLog:FlowLog")
    assert flow.inputs["trafficType"] == "ALL"
    assert flow.inputs["logDestinationType"] == "s3"
    # at the root, where the bucket policy lets delivery write AWSLogs/<account>/ and Athena reads it
    assert flow.inputs["logDestination"] == "arn:aws:s3:::bakehouse-flowlogs-222222222222-eu-west-1"
    assert "destinationOptions" not in flow.inputs


# us-east-1: six Availability Zones (a-f), so every count up to six names real zones.
@pytest.mark.parametrize("cidr, azs", [("10.0.0.0/20", 2), ("10.0.0.0/23", 6), ("172.16.0.0/16", 3)])
def test_subnet_plan_fits_the_vpc_without_overlap_and_keeps_addresses_when_azs_are_added(cidr, azs):
    plan = plan_subnets("build", NetworkConfig(cidr, azs), "us-east-1")
    nets = [ipaddress.ip_network(p.cidr) for p in plan.values()]
    assert len(nets) == 3 * azs
    assert all(n.subnet_of(ipaddress.ip_network(cidr)) and n.prefixlen <= 28 for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    if azs < 6:
        grown = plan_subnets("build", NetworkConfig(cidr, azs + 1), "us-east-1")
        assert all(grown[key] == plan[key] for key in plan)


def test_build_flow_logs_land_where_the_log_archive_admits_them(stack_run):
    (flow,) = stack_run("build").of_type("aws:ec2/flowLog:FlowLog")
    policy = stack_run("security").named("security-archive-flowlogs-policy").inputs["policy"]
    key = f"{flow.inputs['logDestination']}/AWSLogs/333333333333/vpcflowlogs/eu-west-1/2026/11/23/x.log.gz"
    # the archive admits deliveries by organization (aws:SourceOrgID), not by a list of accounts
    delivery = {
        "aws:SourceAccount": "333333333333",
        "aws:SourceArn": "arn:aws:logs:eu-west-1:333333333333:*",
        "aws:SourceOrgID": "o-exampleorg01",
        "s3:x-amz-acl": "bucket-owner-full-control",
        "aws:SecureTransport": "true",
        "s3:TlsVersion": "1.3",
    }
    assert allowed(policy, "s3:PutObject", key, delivery)
