"""Workload stacks (dev, uat, prod) as their real program declares them under the mock runtime."""

from __future__ import annotations

import base64
import json
import re

import pytest

from components.workload.break_glass import SECURITY_TOPIC_KEY_ALIAS
from components.workload.workload_stack import EXPORT_CONTRACT
from tests.iam.evaluate import allowed, evaluate
from tests.iam.event_patterns import event_matches
from tests.workload._workload_support import ALLOWED_REGIONS, assert_no_route_to_the_internet
from tools.mockrun import MOCK_SECRET, StackRun

ENVS = ("dev", "uat", "prod")
ACCOUNTS = {"dev": "444444444444", "uat": "555555555555", "prod": "666666666666"}
ORG = "o-exampleorg01"
REGION = "eu-west-1"
SECURITY = "222222222222"


def _policy(res) -> dict:
    return json.loads(res.inputs["policy"])


def _role_policy(run: StackRun, role_resource_name: str) -> str:
    role = run.named(role_resource_name)
    policies = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.inputs["role"] == f"{role.name}-id"]
    assert len(policies) == 1, f"{role_resource_name} has {len(policies)} inline policies"
    return policies[0].inputs["policy"]


def test_dev_has_no_route_to_the_internet(stack_run):
    assert_no_route_to_the_internet(stack_run("dev"))


def test_uat_has_no_route_to_the_internet(stack_run):
    assert_no_route_to_the_internet(stack_run("uat"))


def test_prod_has_no_route_to_the_internet(stack_run):
    assert_no_route_to_the_internet(stack_run("prod"))


def test_the_route_check_catches_a_default_route():
    """The check above must be able to fail: a run with a NAT-style default route is rejected."""
    from tools.mockrun import Declared

    bad = StackRun(
        "bad",
        resources=[
            Declared(
                "urn:rt",
                "aws:ec2/routeTable:RouteTable",
                "rt",
                {"routes": [{"cidrBlock": "0.0.0.0/0", "natGatewayId": "nat-1"}]},
                True,
                None,
                None,
            ),
            Declared(
                "urn:bpa",
                "aws:ec2/vpcBlockPublicAccessOptions:VpcBlockPublicAccessOptions",
                "bpa",
                {"internetGatewayBlockMode": "block-bidirectional"},
                True,
                None,
                None,
            ),
        ],
    )
    with pytest.raises(AssertionError, match="default route"):
        assert_no_route_to_the_internet(bad)


def test_dev_uat_and_prod_declare_the_same_resource_types(stack_run):
    types = {env: stack_run(env).types for env in ENVS}
    assert types["dev"] == types["uat"] == types["prod"]


def test_subnets_span_exactly_the_configured_azs(stack_run):
    expected = {
        "dev": ["eu-west-1a", "eu-west-1b"],
        "uat": ["eu-west-1a", "eu-west-1b"],
        "prod": ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
    }
    for env in ENVS:
        azs = sorted(s.inputs["availabilityZone"] for s in stack_run(env).of_type("aws:ec2/subnet:Subnet"))
        assert azs == expected[env]


@pytest.mark.parametrize("env", ENVS)
def test_every_endpoint_policy_is_scoped_to_the_organization(env, stack_run):
    endpoints = stack_run(env).of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert len(endpoints) == 12
    for endpoint in endpoints:
        for stmt in _policy(endpoint)["Statement"]:
            assert stmt["Effect"] == "Allow"
            assert stmt["Condition"]["StringEquals"]["aws:PrincipalOrgID"] == ORG, endpoint.name
            assert stmt["Action"] != ["*"], f"{endpoint.name} allows every action of every service"


def test_endpoint_policy_refuses_principals_outside_the_organization(stack_run):
    [ssm] = [e for e in stack_run("dev").of_type("aws:ec2/vpcEndpoint:VpcEndpoint") if e.inputs["serviceName"].endswith(".ssm")]
    resource = "arn:aws:ssm:eu-west-1:444444444444:parameter/bakehouse/dev/app/log-level"
    assert allowed(_policy(ssm), "ssm:GetParameter", resource, {"aws:PrincipalOrgID": ORG})
    assert not allowed(_policy(ssm), "ssm:GetParameter", resource, {"aws:PrincipalOrgID": "o-someoneelse1"})
    assert not allowed(_policy(ssm), "ssm:GetParameter", resource, {})


def test_s3_endpoint_reaches_only_estate_and_aws_agent_and_repository_buckets(stack_run):
    [s3] = [
        e
        for e in stack_run("prod").of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
        if e.inputs["serviceName"] == "com.amazonaws.eu-west-1.s3"
    ]
    policy, ctx = _policy(s3), {"aws:PrincipalOrgID": ORG}
    assert s3.inputs["vpcEndpointType"] == "Gateway"
    assert allowed(policy, "s3:PutObject", f"arn:aws:s3:::bakehouse-sessions-{SECURITY}-eu-west-1/666666666666/x", ctx)
    assert allowed(policy, "s3:GetObject", "arn:aws:s3:::al2023-repos-eu-west-1-de612dc2/core/mirrors/x", ctx)
    assert allowed(policy, "s3:GetObject", "arn:aws:s3:::amazon-ssm-eu-west-1/latest/linux_amd64/agent.rpm", ctx)
    assert not allowed(policy, "s3:PutObject", "arn:aws:s3:::al2023-repos-eu-west-1-de612dc2/x", ctx)
    assert not allowed(policy, "s3:PutObject", "arn:aws:s3:::exfiltration-bucket/loot", ctx)
    assert not allowed(policy, "s3:GetObject", "arn:aws:s3:::amazon-ssm-us-east-1/x", ctx)


@pytest.mark.parametrize("env", ENVS)
def test_interface_endpoints_use_private_dns_and_the_https_only_group(env, stack_run):
    run = stack_run(env)
    endpoints = run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    interface = [e for e in endpoints if e.inputs["vpcEndpointType"] == "Interface"]
    assert sorted(e.inputs["serviceName"].rsplit(".", 1)[-1] for e in interface) == sorted(
        ["ssm", "ssmmessages", "ec2messages", "ec2", "logs", "monitoring", "kms", "sts", "secretsmanager", "sns"]
    )
    for endpoint in interface:
        assert endpoint.inputs["privateDnsEnabled"] is True
        assert endpoint.inputs["securityGroupIds"] == [f"{env}-network-endpoints-id"]
        assert len(endpoint.inputs["subnetIds"]) == len(run.of_type("aws:ec2/subnet:Subnet"))
    group = run.named(f"{env}-network-endpoints")
    cidr = run.named(f"{env}-network-vpc").inputs["cidrBlock"]
    assert [(r["protocol"], r["fromPort"], r["toPort"], r["cidrBlocks"]) for r in group.inputs["ingress"]] == [
        ("tcp", 443, 443, [cidr])
    ]
    assert group.inputs.get("egress") in ([], None)


@pytest.mark.parametrize("env", ENVS)
def test_no_security_group_opens_ssh_rdp_or_the_internet(env, stack_run):
    for group in stack_run(env).of_type("aws:ec2/securityGroup:SecurityGroup") + stack_run(env).of_type(
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
    ):
        for rule in (group.inputs.get("ingress") or []) + (group.inputs.get("egress") or []):
            assert "0.0.0.0/0" not in (rule.get("cidrBlocks") or []), group.name
            assert "::/0" not in (rule.get("ipv6CidrBlocks") or []), group.name
        for rule in group.inputs.get("ingress") or []:
            ports = range(int(rule["fromPort"]), int(rule["toPort"]) + 1)
            assert 22 not in ports and 3389 not in ports and rule["protocol"] != "-1", group.name


def test_default_security_groups_and_default_nacl_are_adopted_empty(stack_run):
    run = stack_run("dev")
    defaults = run.of_type("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert {g.inputs["vpcId"] for g in defaults} == {
        "dev-network-vpc-id",
        *(f"dev-baseline-{r}-default-vpc-id" for r in ALLOWED_REGIONS),
    }
    for res in defaults + run.of_type("aws:ec2/defaultNetworkAcl:DefaultNetworkAcl"):
        assert not res.inputs.get("ingress") and not res.inputs.get("egress"), res.name


def test_subnet_nacl_admits_the_vpc_and_only_https_beyond_it(stack_run):
    run = stack_run("uat")
    [nacl] = run.of_type("aws:ec2/networkAcl:NetworkAcl")
    assert sorted(nacl.inputs["subnetIds"]) == ["uat-network-private-a-id", "uat-network-private-b-id"]
    for rule in nacl.inputs["egress"]:
        assert rule["cidrBlock"] == "10.32.0.0/16" or (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 443, 443), (
            rule
        )
    for rule in nacl.inputs["ingress"]:
        assert rule["cidrBlock"] == "10.32.0.0/16" or (rule["protocol"], rule["fromPort"]) == ("tcp", 1024), rule


@pytest.mark.parametrize("env", ENVS)
def test_flow_logs_record_all_traffic_to_the_central_bucket(env, stack_run):
    [flow] = stack_run(env).of_type("aws:ec2/flowLog:FlowLog")
    assert flow.inputs["trafficType"] == "ALL"
    assert flow.inputs["logDestinationType"] == "s3"
    assert flow.inputs["logDestination"] == f"arn:aws:s3:::bakehouse-flowlogs-{SECURITY}-eu-west-1"
    assert flow.inputs["vpcId"] == f"{env}-network-vpc-id"


@pytest.mark.parametrize("env", ENVS)
def test_parameter_names_are_under_the_env_prefix(env, stack_run):
    names = [p.inputs["name"] for p in stack_run(env).of_type("aws:ssm/parameter:Parameter")]
    assert names and all(n.startswith(f"/bakehouse/{env}/") for n in names), names
    assert f"/bakehouse/{env}/ami/al2023" in names


@pytest.mark.parametrize("env", ENVS)
def test_secure_strings_are_used_for_secrets_only_and_use_the_env_key(env, stack_run):
    run = stack_run(env)
    key_arn = run.exports["kmsKeyArn"]
    secure = 0
    for param in run.of_type("aws:ssm/parameter:Parameter"):
        is_secret_path = param.inputs["name"].startswith(f"/bakehouse/{env}/secrets/")
        assert (param.inputs["type"] == "SecureString") == is_secret_path, param.inputs["name"]
        if is_secret_path:
            secure += 1
            assert param.inputs["keyId"] == key_arn
            assert "insecureValue" not in param.inputs
            assert param.inputs["value"]["value"] == MOCK_SECRET  # from `secure:` config, marked secret
        else:
            assert "value" not in param.inputs, f"{param.inputs['name']} is a String but sent as a secret value"
    assert secure == 1


@pytest.mark.parametrize("env", ENVS)
def test_no_secret_value_appears_in_any_resource_input_except_its_secure_string(env, stack_run):
    for res in stack_run(env).resources:
        if res.type == "aws:ssm/parameter:Parameter" and res.inputs["type"] == "SecureString":
            continue
        assert MOCK_SECRET not in json.dumps(res.inputs, default=str), res.name


def test_instance_role_policy_cannot_read_another_envs_path(stack_run):
    run = stack_run("dev")
    policy = _role_policy(run, "dev-app-role")
    arn = "arn:aws:ssm:eu-west-1:444444444444:parameter"
    assert allowed(policy, "ssm:GetParameter", f"{arn}/bakehouse/dev/app/log-level")
    assert allowed(policy, "ssm:GetParametersByPath", f"{arn}/bakehouse/dev")
    assert allowed(policy, "ssm:GetParameter", f"{arn}/bakehouse/dev/secrets/db-password")
    for other in (
        "/bakehouse/uat/app/log-level",
        "/bakehouse/prod/secrets/db-password",
        "/bakehouse/dev2/app/x",
        "/bakehouse/images/al2023/latest",
        "/other/dev/app/x",
    ):
        assert not allowed(policy, "ssm:GetParameter", f"{arn}{other}"), other
    assert not allowed(policy, "ssm:GetParameter", "arn:aws:ssm:eu-west-1:555555555555:parameter/bakehouse/dev/app/x")
    assert not allowed(policy, "ssm:PutParameter", f"{arn}/bakehouse/dev/app/log-level")


def test_instance_role_decrypts_only_its_env_secrets_through_ssm(stack_run):
    run = stack_run("prod")
    policy, key = _role_policy(run, "prod-app-role"), run.exports["kmsKeyArn"]
    secret = "arn:aws:ssm:eu-west-1:666666666666:parameter/bakehouse/prod/secrets/db-password"
    via_ssm = {"kms:ViaService": "ssm.eu-west-1.amazonaws.com", "kms:EncryptionContext:PARAMETER_ARN": secret}
    assert allowed(policy, "kms:Decrypt", key, via_ssm)
    assert not allowed(
        policy,
        "kms:Decrypt",
        key,
        {**via_ssm, "kms:ViaService": "s3.eu-west-1.amazonaws.com", "kms:EncryptionContext:PARAMETER_ARN": "x"},
    )
    assert not allowed(policy, "kms:Decrypt", key, {})  # direct use of the key, outside SSM
    assert not allowed(policy, "kms:Decrypt", "arn:aws:kms:eu-west-1:666666666666:key/another-key", via_ssm)


def test_instance_role_writes_only_its_log_group_and_its_own_evidence_prefix(stack_run):
    run = stack_run("uat")
    policy = _role_policy(run, "uat-app-role")
    logs = "arn:aws:logs:eu-west-1:555555555555:log-group"
    assert allowed(policy, "logs:PutLogEvents", f"{logs}:/bakehouse/uat/app:log-stream:i-0abc")
    assert not allowed(policy, "logs:PutLogEvents", f"{logs}:/bakehouse/prod/app:log-stream:i-0abc")
    assert not allowed(policy, "logs:DeleteLogGroup", f"{logs}:/bakehouse/uat/app")
    evidence = f"arn:aws:s3:::bakehouse-evidence-{SECURITY}-eu-west-1/incidents/f-1"
    mine, other = (f"arn:aws:ec2:eu-west-1:555555555555:instance/{i}" for i in ("i-0123456789abcdef0", "i-0fedcba9876543210"))
    me = {"ec2:SourceInstanceARN": mine}  # what instance-profile credentials carry (not ec2:InstanceID)
    assert allowed(policy, "s3:PutObject", f"{evidence}/{mine}/memory.lime.compressed", me)
    assert not allowed(policy, "s3:PutObject", f"{evidence}/{other}/memory.lime.compressed", me)
    assert not allowed(policy, "s3:GetObject", f"{evidence}/{mine}/memory.lime.compressed", me)


@pytest.mark.parametrize("env", ENVS)
def test_launch_template_uses_the_approved_ami_imdsv2_and_an_encrypted_root(env, stack_run):
    run = stack_run(env)
    [template] = run.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["imageId"] == f"resolve:ssm:/bakehouse/{env}/ami/al2023"
    metadata = template.inputs["metadataOptions"]
    assert metadata["httpTokens"] == "required" and metadata["httpPutResponseHopLimit"] == 1
    [root] = template.inputs["blockDeviceMappings"]
    assert root["ebs"]["encrypted"] == "true" and root["ebs"]["kmsKeyId"] == run.exports["kmsKeyArn"]
    assert "keyName" not in template.inputs  # no SSH key pairs anywhere
    assert template.inputs["iamInstanceProfile"]["name"] == run.exports["instanceProfileName"]


def test_user_data_names_the_parameters_it_reads_and_holds_no_values(stack_run):
    run = stack_run("dev")
    [template] = run.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    script = base64.b64decode(template.inputs["userData"]).decode()
    assert "/bakehouse/dev/secrets/db-password" in script and "/bakehouse/dev/app/log-level" in script
    assert MOCK_SECRET not in script
    values = {p.inputs["insecureValue"] for p in run.of_type("aws:ssm/parameter:Parameter") if "insecureValue" in p.inputs}
    assert not any(f"={v}" in script or f" {v}\n" in script for v in values - {"on", "off"})


@pytest.mark.parametrize("env", ENVS)
def test_export_contract_is_complete_and_exact(env, stack_run):
    run = stack_run(env)
    assert set(run.exports) == set(EXPORT_CONTRACT) and len(EXPORT_CONTRACT) == 9
    assert all(run.exports[k] not in (None, "", []) for k in EXPORT_CONTRACT)
    assert run.exports["parameterPrefix"] == f"/bakehouse/{env}"
    assert run.exports["amiParameterName"] == f"/bakehouse/{env}/ami/al2023"
    assert run.exports["logGroupName"] == f"/bakehouse/{env}/app"


@pytest.mark.parametrize("env", ENVS)
def test_account_baseline_sets_the_secure_account_defaults(env, stack_run):
    run = stack_run(env)
    one = {
        t: run.of_type(t)
        for t in (
            "aws:ebs/defaultKmsKey:DefaultKmsKey",
            "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock",
            "aws:iam/accountPasswordPolicy:AccountPasswordPolicy",
            "aws:accessanalyzer/analyzer:Analyzer",
        )
    }
    assert all(len(v) == 1 for v in one.values()), {t: len(v) for t, v in one.items()}
    inputs = {t.split(":")[-1]: v[0].inputs for t, v in one.items()}
    per_region = {
        t: run.of_type(t)
        for t in ("aws:ebs/encryptionByDefault:EncryptionByDefault", "aws:ec2/serialConsoleAccess:SerialConsoleAccess")
    }
    for kind, found in per_region.items():
        assert {r.inputs["region"] for r in found} == set(ALLOWED_REGIONS), kind
    assert all(r.inputs["enabled"] is True for r in per_region["aws:ebs/encryptionByDefault:EncryptionByDefault"])
    assert all(r.inputs["enabled"] is False for r in per_region["aws:ec2/serialConsoleAccess:SerialConsoleAccess"])
    assert inputs["DefaultKmsKey"]["keyArn"] == run.exports["kmsKeyArn"]
    assert all(
        inputs["AccountPublicAccessBlock"][k] is True
        for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    # One owner: the organization's EC2 declarative policy sets IMDS defaults and image/snapshot blocks.
    for owned_by_the_org in (
        "aws:ec2/instanceMetadataDefaults:InstanceMetadataDefaults",
        "aws:ec2/imageBlockPublicAccess:ImageBlockPublicAccess",
        "aws:ebs/snapshotBlockPublicAccess:SnapshotBlockPublicAccess",
    ):
        assert not run.of_type(owned_by_the_org), owned_by_the_org
    assert inputs["AccountPasswordPolicy"]["minimumPasswordLength"] >= 14
    assert inputs["AccountPasswordPolicy"]["passwordReusePrevention"] >= 24
    assert inputs["Analyzer"]["type"] == "ACCOUNT"


def test_config_recorder_delivers_to_the_central_config_bucket(stack_run):
    run = stack_run("prod")
    channels = run.of_type("aws:cfg/deliveryChannel:DeliveryChannel")
    assert {c.inputs["region"] for c in channels} == set(ALLOWED_REGIONS)
    assert {c.inputs["s3BucketName"] for c in channels} == {f"bakehouse-config-{SECURITY}-eu-west-1"}
    recorders = {r.inputs["region"]: r.inputs["recordingGroup"] for r in run.of_type("aws:cfg/recorder:Recorder")}
    assert set(recorders) == set(ALLOWED_REGIONS) and all(g["allSupported"] for g in recorders.values())
    # global resource types (IAM) recorded once, in the home region
    assert [r for r, g in recorders.items() if g["includeGlobalResourceTypes"]] == ["eu-west-1"]
    assert all(s.inputs["isEnabled"] is True for s in run.of_type("aws:cfg/recorderStatus:RecorderStatus"))


def test_session_manager_logs_encrypted_to_the_central_sessions_bucket(stack_run):
    run = stack_run("dev")
    [doc] = [d for d in run.of_type("aws:ssm/document:Document") if d.inputs["documentType"] == "Session"]
    assert doc.inputs["name"] == "SSM-SessionManagerRunShell"
    prefs = json.loads(doc.inputs["content"])["inputs"]
    assert prefs["s3BucketName"] == f"bakehouse-sessions-{SECURITY}-eu-west-1"
    assert prefs["s3KeyPrefix"] == ACCOUNTS["dev"] and prefs["s3EncryptionEnabled"] is True
    assert prefs["kmsKeyId"] == run.exports["kmsKeyArn"] and prefs["runAsEnabled"] is False


def test_endpoint_cost_estimate_is_logged_for_the_preview(stack_run):
    # prod: 10 interface endpoints x 3 AZs x $0.011/h x 730 h
    assert any("$240.90/month" in line for line in stack_run("prod").logs), stack_run("prod").logs
    assert any("$160.60/month" in line for line in stack_run("dev").logs)


def test_break_glass_role_trusts_only_security_responders_with_mfa_for_one_hour(stack_run):
    run = stack_run("prod")
    role = run.named("prod-break-glass-role")
    assert role.inputs["name"] == "BakehouseBreakGlass" and role.inputs["maxSessionDuration"] == 3600
    trust = role.inputs["assumeRolePolicy"]
    responder = f"arn:aws:iam::{SECURITY}:role/BakehouseResponder"
    [stmt] = json.loads(trust)["Statement"]
    assert stmt["Principal"] == {"AWS": responder}
    mfa = {"aws:MultiFactorAuthPresent": "true", "aws:MultiFactorAuthAge": "300", "aws:PrincipalOrgID": ORG}
    assert allowed(trust, "sts:AssumeRole", "*", mfa)
    assert not allowed(trust, "sts:AssumeRole", "*", {**mfa, "aws:MultiFactorAuthPresent": "false"})
    assert not allowed(trust, "sts:AssumeRole", "*", {k: v for k, v in mfa.items() if "MultiFactor" not in k})


def test_break_glass_use_alarms_the_security_topic(stack_run):
    run = stack_run("uat")
    rule = run.named("uat-break-glass-used")
    event = {
        "source": "aws.sts",
        "detail-type": "AWS API Call via CloudTrail",
        "detail": {
            "eventSource": "sts.amazonaws.com",
            "eventName": "AssumeRole",
            "requestParameters": {"roleArn": "arn:aws:iam::555555555555:role/BakehouseBreakGlass"},
        },
    }
    assert event_matches(rule.inputs["eventPattern"], event)
    other_role = json.loads(json.dumps(event))
    other_role["detail"]["requestParameters"]["roleArn"] = "arn:aws:iam::555555555555:role/bakehouse/app/x"
    assert not event_matches(rule.inputs["eventPattern"], other_role)
    assert rule.inputs["state"] == "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"
    [target] = [t for t in run.of_type("aws:cloudwatch/eventTarget:EventTarget") if t.inputs.get("rule") == rule.inputs["name"]]
    assert target.inputs["arn"] == f"arn:aws:sns:eu-west-1:{SECURITY}:bakehouse-security"
    delivery = _role_policy(run, "uat-break-glass-alarm-delivery")
    assert allowed(delivery, "sns:Publish", target.inputs["arn"])
    assert not allowed(delivery, "sns:Publish", f"arn:aws:sns:eu-west-1:{SECURITY}:another-topic")


def test_factory_roles_trust_only_the_build_factory_and_stay_in_their_lane(stack_run):
    run = stack_run("dev")
    factory = "arn:aws:iam::333333333333:role/BakehouseFactoryAutomation"
    [stmt] = json.loads(run.named("dev-factory-access-publisher").inputs["assumeRolePolicy"])["Statement"]
    assert stmt["Principal"] == {"AWS": factory}
    # The lifecycle function reads the env's AMI parameters (what they still name is kept) as the scanner.
    [stmt] = json.loads(run.named("dev-factory-access-scanner").inputs["assumeRolePolicy"])["Statement"]
    assert stmt["Principal"] == {"AWS": [factory, "arn:aws:iam::333333333333:role/BakehouseImageLifecycle"]}
    publisher = _role_policy(run, "dev-factory-access-publisher")
    scanner = _role_policy(run, "dev-factory-access-scanner")
    param = "arn:aws:ssm:eu-west-1:444444444444:parameter/bakehouse"
    assert allowed(publisher, "ssm:PutParameter", f"{param}/dev/ami/al2023")
    assert not allowed(publisher, "ssm:PutParameter", f"{param}/dev/app/log-level")
    assert not allowed(publisher, "ssm:PutParameter", f"{param}/prod/ami/al2023")
    # the factory distributes to every allowed region and publishes there too, and nowhere else
    assert allowed(publisher, "ssm:PutParameter", "arn:aws:ssm:us-east-1:444444444444:parameter/bakehouse/dev/ami/x")
    assert not allowed(publisher, "ssm:PutParameter", "arn:aws:ssm:ap-south-1:444444444444:parameter/bakehouse/dev/ami/x")
    assert not allowed(publisher, "ssm:PutParameter", "arn:aws:ssm:eu-west-1:555555555555:parameter/bakehouse/dev/ami/x")
    assert allowed(scanner, "ec2:DescribeInstances", "*", {"aws:RequestedRegion": REGION})
    doc = json.loads(scanner)
    # Reads, plus what a quarantine must do in the account (tests/workload/test_workload_scanner_role.py
    # narrows each of these to the env's AMI parameters and the quarantined tag).
    writes = {"ssm:PutParameter", "ssm:DeleteParameter", "ec2:CreateTags"}
    actions = {a for s in doc["Statement"] for a in s["Action"]} - writes
    assert all(a.split(":")[1].startswith(("Describe", "Get", "List")) for a in actions), actions
    assert not allowed(scanner, "ssm:PutParameter", f"{param}/dev/app/log-level")


def delegated_to_account(key_policy: str, account: str) -> dict:
    """The key policy statements that admit the account's own principals (IAM delegation, narrowed by
    conditions): what a role of the account gets from the key; statements naming another principal
    (the Auto Scaling service-linked role, the deployer) give it nothing."""
    root = f"arn:aws:iam::{account}:root"
    return {
        "Version": "2012-10-17",
        "Statement": [s for s in json.loads(key_policy)["Statement"] if (s.get("Principal") or {}).get("AWS") in (root, [root])],
    }


def test_kms_key_lets_app_roles_decrypt_only_through_ssm_or_for_a_session(stack_run):
    run = stack_run("dev")
    [key] = [k for k in run.of_type("aws:kms/key:Key") if k.name == "dev-key-key"]
    policy = delegated_to_account(key.inputs["policy"], ACCOUNTS["dev"])
    app = {"aws:PrincipalArn": "arn:aws:iam::444444444444:role/bakehouse/app/bakehouse-dev-app"}
    assert allowed(policy, "kms:Decrypt", "*", {**app, "kms:ViaService": "ssm.eu-west-1.amazonaws.com"})
    assert evaluate(policy, "kms:Decrypt", "*", {**app, "kms:ViaService": "s3.eu-west-1.amazonaws.com"}) != "Allow"
    session = {
        "kms:EncryptionContext:aws:ssm:SessionId": "responder-0abc",
        "kms:EncryptionContext:aws:ssm:TargetId": "i-0123456789abcdef0",
    }
    assert allowed(policy, "kms:Decrypt", "*", {**app, **session})
    assert not allowed(policy, "kms:Encrypt", "*", {**app, **session})
    other = {"aws:PrincipalArn": "arn:aws:iam::444444444444:role/SomeoneElse", "kms:ViaService": "ssm.eu-west-1.amazonaws.com"}
    assert not allowed(policy, "kms:Decrypt", "*", other)


def test_alarm_and_playbook_publishers_may_use_the_security_topics_key_as_the_security_stack_names_it(stack_run):
    aliases = {a.inputs["name"] for a in stack_run("security").of_type("aws:kms/alias:Alias")}
    assert SECURITY_TOPIC_KEY_ALIAS in aliases, aliases
    run = stack_run("dev")
    key = f"arn:aws:kms:eu-west-1:{SECURITY}:key/topic-key"
    via_sns = {"kms:ResourceAliases": [SECURITY_TOPIC_KEY_ALIAS], "kms:ViaService": "sns.eu-west-1.amazonaws.com"}
    for role in ("dev-break-glass-alarm-delivery", "dev-incident-response-automation-role"):
        policy = _role_policy(run, role)
        assert allowed(policy, "kms:GenerateDataKey", key, via_sns), role
        via_s3 = {**via_sns, "kms:ViaService": "s3.eu-west-1.amazonaws.com"}
        assert not allowed(policy, "kms:GenerateDataKey", key, via_s3)


def test_break_glass_may_make_session_keys_with_the_account_key_and_nothing_else(stack_run):
    [key] = [k for k in stack_run("uat").of_type("aws:kms/key:Key") if k.name == "uat-key-key"]
    policy = delegated_to_account(key.inputs["policy"], ACCOUNTS["uat"])
    me = {"aws:PrincipalArn": "arn:aws:iam::555555555555:role/BakehouseBreakGlass"}
    session = {"kms:EncryptionContext:aws:ssm:SessionId": "s-1", "kms:EncryptionContext:aws:ssm:TargetId": "i-1"}
    assert allowed(policy, "kms:GenerateDataKey", "*", {**me, **session})
    assert not allowed(policy, "kms:GenerateDataKey", "*", me)  # outside a session
    assert not allowed(policy, "kms:Decrypt", "*", {**me, **session})


def test_instance_decrypts_only_its_own_session_keys(stack_run):
    run = stack_run("dev")
    policy, key = _role_policy(run, "dev-app-role"), run.exports["kmsKeyArn"]
    me = {
        "ec2:SourceInstanceARN": "arn:aws:ec2:eu-west-1:444444444444:instance/i-0123456789abcdef0",
        "kms:EncryptionContext:aws:ssm:SessionId": "responder-1",
    }
    assert allowed(policy, "kms:Decrypt", key, {**me, "kms:EncryptionContext:aws:ssm:TargetId": "i-0123456789abcdef0"})
    other = {**me, "kms:EncryptionContext:aws:ssm:TargetId": "i-0fedcba987654321f"}
    assert not allowed(policy, "kms:Decrypt", key, other)
    mine = {**me, "kms:EncryptionContext:aws:ssm:TargetId": "i-0123456789abcdef0"}
    assert not allowed(policy, "kms:GenerateDataKey", key, mine)


def test_break_glass_use_through_the_sts_global_endpoint_is_forwarded_home_and_alarmed(stack_run):
    run = stack_run("prod")
    provider = run.named("prod-us-east-1")
    assert provider.inputs["region"] == "us-east-1" and provider.inputs["allowedAccountIds"] == [ACCOUNTS["prod"]]
    rule = run.named("prod-break-glass-used-global-endpoint")
    assert rule.provider_name == "prod-us-east-1"
    assert rule.inputs["eventPattern"] == run.named("prod-break-glass-used").inputs["eventPattern"]
    target = run.named("prod-break-glass-used-global-endpoint-forward")
    home_bus = f"arn:aws:events:eu-west-1:{ACCOUNTS['prod']}:event-bus/default"
    assert target.inputs["arn"] == home_bus and target.provider_name == "prod-us-east-1"
    forward = _role_policy(run, "prod-break-glass-global-forward")
    assert allowed(forward, "events:PutEvents", home_bus)
    assert not allowed(forward, "events:PutEvents", f"arn:aws:events:us-east-1:{ACCOUNTS['prod']}:event-bus/default")


def test_every_central_bucket_and_key_alias_the_workload_names_is_declared_by_the_security_stack(stack_run):
    security = stack_run("security")
    buckets = {b.inputs.get("bucket") for b in security.of_type("aws:s3/bucket:Bucket")}
    aliases = {a.inputs["name"] for a in security.of_type("aws:kms/alias:Alias")}
    text = json.dumps([r.inputs for r in stack_run("prod").resources], default=str)
    named_buckets = set(re.findall(rf"bakehouse-[a-z]+-{SECURITY}-eu-west-1", text))
    named_aliases = set(re.findall(r"alias/bakehouse-[a-z-]+", text)) - {"alias/bakehouse-prod"}
    assert {f"bakehouse-{k}-{SECURITY}-eu-west-1" for k in ("flowlogs", "config", "sessions", "evidence")} <= named_buckets
    assert {"alias/bakehouse-sessions", "alias/bakehouse-evidence", SECURITY_TOPIC_KEY_ALIAS} <= named_aliases
    assert named_buckets <= buckets, named_buckets - buckets
    assert named_aliases <= aliases, named_aliases - aliases


def _role_names(run: StackRun) -> set[str]:
    return {r.inputs.get("name") for r in run.of_type("aws:iam/role:Role")}


def test_the_factory_role_the_publisher_and_scanner_trust_is_declared_by_the_build_stack(stack_run):
    # IAM refuses a trust policy whose principal does not exist, so the trusted role must be real.
    assert "BakehouseFactoryAutomation" in _role_names(stack_run("build"))


def test_the_responder_role_break_glass_trusts_is_declared_by_the_security_stack(stack_run):
    assert "BakehouseResponder" in _role_names(stack_run("security"))
