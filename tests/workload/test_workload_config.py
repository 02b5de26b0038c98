"""The `bakehouse:workload` section: every problem reported at once, before workload resources exist;
and the network options config selects (shared endpoints, egress) declared as configured."""

from __future__ import annotations

import pytest

from components.workload.private_network import ENDPOINT_HOURLY_USD, endpoint_cost_usd_monthly, subnet_cidrs
from components.workload.workload_config import DEFAULT_INTERFACE_ENDPOINTS, load_workload_config
from estate.config import ConfigError
from tests.workload._workload_support import DEV_SECTION, HUB, assert_no_route_to_the_internet, workload_cfg, workload_problems
from tools.mockrun import cached_run


def test_the_dev_section_parses_into_typed_settings():
    settings = load_workload_config(workload_cfg(DEV_SECTION))
    assert settings.ami_families == ("al2023",) and settings.app.secrets == ("db-password",)
    assert settings.network.interface_endpoints == DEFAULT_INTERFACE_ENDPOINTS
    assert settings.network.egress is None and settings.isolate_min_severity == 5.0


def test_a_bad_section_reports_every_problem_at_once_naming_stack_key_value_and_what_is_allowed():
    bad = {
        **DEV_SECTION,
        "amiFamilies": ["AL 2023"],
        "colour": "blue",
        "app": {"family": "ubuntu", "logRetentionDays": 42, "instanceType": "huge"},
        "network": {"interfaceEndpoints": ["ssm", "ec2messages", "s3x"], "endpointMode": "mesh"},
        "incidentResponse": {"minSeverity": 11},
    }
    problems = workload_problems(bad)
    expected = [
        "stack dev: Pulumi.dev.yaml: bakehouse:workload.colour is 'blue'; allowed: one of the keys",
        'stack dev: Pulumi.dev.yaml: bakehouse:workload.amiFamilies is ["AL 2023"]; allowed: a non-empty list of AMI family names',
        "stack dev: Pulumi.dev.yaml: bakehouse:workload.app.family is 'ubuntu'; allowed: one of amiFamilies",
        "stack dev: Pulumi.dev.yaml: bakehouse:workload.app.instanceType is 'huge'; allowed: an EC2 instance type",
        "stack dev: Pulumi.dev.yaml: bakehouse:workload.app.logRetentionDays is 42; allowed: one of the CloudWatch Logs retention",
        "stack dev: Pulumi.dev.yaml: bakehouse:workload.network.interfaceEndpoints[] is 's3x'; allowed: ssm, ssmmessages",
        'stack dev: Pulumi.dev.yaml: bakehouse:workload.network.interfaceEndpoints is ["ssm", "ec2messages", "s3x"]; allowed: '
        "a list including ssmmessages",
        "stack dev: Pulumi.dev.yaml: bakehouse:workload.network.endpointMode is 'mesh'; allowed: per-vpc, shared",
        "stack dev: Pulumi.dev.yaml: bakehouse:workload.incidentResponse.minSeverity is 11; allowed: a GuardDuty severity",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in problems), f"missing: {line}\ngot:\n" + "\n".join(problems)
    assert len(problems) == len(expected)


def test_a_secret_looking_name_is_refused_as_a_plain_parameter_without_echoing_its_value():
    problems = workload_problems({**DEV_SECTION, "app": {"parameters": {"db-password": "hunter2"}}})
    assert any("app.parameters.db-password is '<redacted>'" in p for p in problems)
    assert not any("hunter2" in p for p in problems)


def test_a_listed_secret_without_a_secret_value_is_a_config_problem_not_a_crash():
    section = {**DEV_SECTION, "app": {**DEV_SECTION["app"], "secrets": ["db-password", "api-token"]}}
    problems = workload_problems(section)
    assert problems == [
        "stack dev: Pulumi.dev.yaml: bakehouse:secret.api-token is missing; allowed: a secret value "
        "(pulumi config set --secret bakehouse:secret.api-token ...)"
    ]


@pytest.mark.parametrize(
    "egress, key",
    [
        (
            {"mode": "transit-gateway", "targetId": "tgw-0123456789abcdef0", "destinationCidr": "0.0.0.0/0"},
            "egress.destinationCidr is '0.0.0.0/0'",
        ),
        (
            {"mode": "peering", "targetId": "tgw-0123456789abcdef0", "destinationCidr": "10.1.0.0/16"},
            "egress.targetId is 'tgw-0123456789abcdef0'; allowed: an id like pcx-",
        ),
        ({"mode": "internet", "targetId": "igw-1", "destinationCidr": "10.1.0.0/16"}, "egress.mode is 'internet'"),
    ],
)
def test_egress_must_target_a_private_proxy_network(egress, key):
    problems = workload_problems({**DEV_SECTION, "network": {"egress": egress}})
    assert any(key in p for p in problems), problems


def test_shared_endpoints_need_a_hosted_zone_for_every_endpoint_service():
    zones = {k: v for k, v in HUB["hostedZoneIds"].items() if k != "kms"}
    shared = {**HUB, "hostedZoneIds": zones}
    problems = workload_problems({**DEV_SECTION, "network": {"endpointMode": "shared", "shared": shared}})
    assert problems == [
        "stack dev: Pulumi.dev.yaml: bakehouse:workload.network.shared.hostedZoneIds.kms is missing; allowed: the "
        "central account's private hosted zone id for that endpoint"
    ]


def test_a_bad_workload_section_stops_the_stack_before_any_workload_resource():
    run = cached_run("dev", overrides={"bakehouse:workload": {**DEV_SECTION, "amiFamilies": []}}, raise_errors=False)
    assert isinstance(run.error, ConfigError)
    assert "bakehouse:workload.amiFamilies" in str(run.error)
    assert run.resources == [], [r.type for r in run.resources]


def test_shared_endpoint_mode_declares_no_interface_endpoints_and_costs_this_account_nothing():
    run = cached_run(
        "dev", overrides={"bakehouse:workload": {**DEV_SECTION, "network": {"endpointMode": "shared", "shared": HUB}}}
    )
    endpoints = run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert sorted(e.inputs["vpcEndpointType"] for e in endpoints) == ["Gateway", "Gateway"]
    zones = run.of_type("aws:route53/zoneAssociation:ZoneAssociation")
    assert sorted(z.inputs["zoneId"] for z in zones) == sorted(HUB["hostedZoneIds"].values())
    [route] = run.of_type("aws:ec2/route:Route")
    assert route.inputs["destinationCidrBlock"] == "10.0.0.0/16"
    assert route.inputs["transitGatewayId"] == HUB["transitGatewayId"]
    assert any("$0.00/month" in line for line in run.logs)
    assert_no_route_to_the_internet(run)


@pytest.mark.parametrize(
    "mode, target, via",
    [
        ("transit-gateway", "tgw-0123456789abcdef0", "transitGatewayId"),
        ("peering", "pcx-0123456789abcdef0", "vpcPeeringConnectionId"),
    ],
)
def test_egress_adds_a_route_and_openings_to_the_proxy_network_only(mode, target, via):
    egress = {"mode": mode, "targetId": target, "destinationCidr": "10.8.0.0/16", "proxyPort": 3128}
    run = cached_run("uat", overrides={"bakehouse:workload": {**DEV_SECTION, "network": {"egress": egress}}})
    [route] = run.of_type("aws:ec2/route:Route")
    assert route.inputs["destinationCidrBlock"] == "10.8.0.0/16" and route.inputs[via] == target
    attachments = run.of_type("aws:ec2transitgateway/vpcAttachment:VpcAttachment")
    assert len(attachments) == (1 if mode == "transit-gateway" else 0)
    app_sg = run.named("uat-app-sg")
    to_proxy = {(r["fromPort"], r["toPort"]) for r in app_sg.inputs["egress"] if r.get("cidrBlocks") == ["10.8.0.0/16"]}
    assert to_proxy == {(443, 443), (3128, 3128)}
    [nacl] = run.of_type("aws:ec2/networkAcl:NetworkAcl")
    out = {(r["fromPort"], r["toPort"]) for r in nacl.inputs["egress"] if r["cidrBlock"] == "10.8.0.0/16"}
    assert out == {(443, 443), (3128, 3128)}
    assert_no_route_to_the_internet(run)


def test_no_egress_by_default_means_no_transit_gateway_or_peering(stack_run):
    for env in ("dev", "uat", "prod"):
        run = stack_run(env)
        assert not run.of_type("aws:ec2/route:Route")
        assert not run.of_type("aws:ec2transitgateway/vpcAttachment:VpcAttachment")


def test_endpoint_cost_is_endpoints_times_azs_times_the_dated_hourly_price():
    assert endpoint_cost_usd_monthly(10, 3, "eu-west-1") == pytest.approx(10 * 3 * 0.011 * 730)
    assert endpoint_cost_usd_monthly(10, 3, "us-east-1") == pytest.approx(219.0)
    assert endpoint_cost_usd_monthly(0, 2, "eu-west-1") == 0
    assert endpoint_cost_usd_monthly(4, 2, "eu-central-1") > endpoint_cost_usd_monthly(4, 2, "eu-west-1")
    with pytest.raises(ValueError, match="no endpoint price for region 'ap-south-1'"):
        endpoint_cost_usd_monthly(1, 1, "ap-south-1")
    assert {"eu-west-1", "eu-central-1", "us-east-1"} <= set(ENDPOINT_HOURLY_USD)  # every allowed region


def test_subnets_are_pinned_by_az_letter_so_adding_an_az_keeps_the_others():
    two = subnet_cidrs("10.16.0.0/16", ("eu-west-1a", "eu-west-1b"))
    three = subnet_cidrs("10.16.0.0/16", ("eu-west-1a", "eu-west-1b", "eu-west-1c"))
    assert two == {"eu-west-1a": "10.16.0.0/20", "eu-west-1b": "10.16.16.0/20"}
    assert {k: three[k] for k in two} == two
    assert subnet_cidrs("10.16.0.0/24", ("eu-west-1a",)) == {"eu-west-1a": "10.16.0.0/28"}


def test_a_secret_written_in_plain_text_in_the_stack_file_is_refused_without_echoing_it():
    run = cached_run("prod", overrides={"bakehouse:secret.db-password": "hunter2"}, raise_errors=False)
    assert isinstance(run.error, ConfigError)
    assert "bakehouse:secret.db-password is '<plain text, redacted>'; allowed: an encrypted value" in str(run.error)
    assert "hunter2" not in str(run.error)
    assert run.resources == []


def test_a_workload_stack_outside_the_home_region_is_refused():
    run = cached_run("uat", overrides={"bakehouse:region": "eu-central-1"}, raise_errors=False)
    assert isinstance(run.error, ConfigError)
    assert "stack uat: Pulumi.uat.yaml: bakehouse:region is 'eu-central-1'; allowed: the home region eu-west-1" in str(run.error)


def test_a_top_level_egress_key_is_pointed_to_the_workload_network_section_not_ignored():
    egress = {"mode": "peering", "targetId": "pcx-0123456789abcdef0", "destinationCidr": "10.8.0.0/16"}
    run = cached_run("dev", overrides={"bakehouse:egress": egress}, raise_errors=False)
    assert isinstance(run.error, ConfigError)
    assert "bakehouse:egress is" in str(run.error) and "bakehouse:workload.network.egress" in str(run.error)


def test_section_problems_and_stack_level_problems_arrive_in_one_error():
    run = cached_run(
        "uat",
        overrides={"bakehouse:region": "eu-central-1", "bakehouse:workload": {**DEV_SECTION, "amiFamilies": []}},
        raise_errors=False,
    )
    assert isinstance(run.error, ConfigError)
    assert [p.split(" is ")[0] for p in run.error.problems] == [
        "stack uat: Pulumi.uat.yaml: bakehouse:workload.amiFamilies",
        "stack uat: Pulumi.uat.yaml: bakehouse:workload.app.family",
        "stack uat: Pulumi.uat.yaml: bakehouse:region",
    ]


def test_a_region_missing_from_the_price_table_gets_no_estimate_but_still_deploys():
    from components.workload.private_network import PrivateNetworkArgs

    args = PrivateNetworkArgs(
        cidr="10.16.0.0/16",
        az_names=("ap-south-1a",),
        region="ap-south-1",
        account_id="444444444444",
        organization_id="o-exampleorg01",
        flow_log_bucket_arn="arn:aws:s3:::b",
    )
    assert args.endpoint_cost_usd_monthly is None
    assert args.billed_endpoints == len(DEFAULT_INTERFACE_ENDPOINTS)
