"""The Service Catalog product template (catalog/hardened-instance.yaml) and its template constraint
(catalog/template-constraint.json): cfn-lint clean, and the properties a hardened instance must have,
read from the parsed template. The rules are evaluated, not just looked at."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import jsonschema
import pytest
from cfnlint import api as cfnlint
from cfnlint.decode import decode_str

from tests.static.rig import REPO

TEMPLATE = REPO / "catalog" / "hardened-instance.yaml"
CONSTRAINT = REPO / "catalog" / "template-constraint.json"
REGIONS = ["eu-west-1", "eu-central-1", "us-east-1"]  # the estate's allowedRegions (Pulumi.yaml)
SENTINEL_IMAGE = "ami-00000000000000000"

# Service Catalog template constraints are CloudFormation Rules: named rules, each with optional
# RuleCondition and a list of Assertions (Assert + optional AssertDescription).
CONSTRAINT_SCHEMA = {
    "type": "object",
    "required": ["Rules"],
    "additionalProperties": False,
    "properties": {
        "Rules": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["Assertions"],
                "additionalProperties": False,
                "properties": {
                    "RuleCondition": {"type": "object"},
                    "Assertions": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["Assert"],
                            "additionalProperties": False,
                            "properties": {
                                "Assert": {"type": "object", "minProperties": 1, "maxProperties": 1},
                                "AssertDescription": {"type": "string", "minLength": 1},
                            },
                        },
                    },
                },
            },
        }
    },
}


@pytest.fixture(scope="module")
def template() -> dict:
    decoded, matches = decode_str(TEMPLATE.read_text())
    assert not matches, matches
    return json.loads(json.dumps(decoded))  # plain dicts, !Ref etc. as {"Ref": ...}


@pytest.fixture(scope="module")
def constraint() -> dict:
    return json.loads(CONSTRAINT.read_text())


def _of_type(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _lint(text: str) -> list[str]:
    return [str(m) for m in cfnlint.lint(text, config=cfnlint.ManualArgs(regions=REGIONS, include_checks=["I"]))]


# --- a tiny evaluator for the rule functions Service Catalog and CloudFormation accept -------------------


def _eval(node: Any, params: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ((fn, arg),) = node.items()
        if fn == "Ref":
            return params[arg]
        if fn == "Fn::Contains":
            values, value = (_eval(a, params) for a in arg)
            return str(value) in [str(v) for v in values]
        if fn == "Fn::EachMemberIn":
            members, allowed = (_eval(a, params) for a in arg)
            return all(str(m) in [str(a) for a in allowed] for m in members)
        if fn == "Fn::Equals":
            left, right = (_eval(a, params) for a in arg)
            return str(left) == str(right)
        if fn == "Fn::Not":
            return not _eval(arg[0], params)
        if fn == "Fn::And":
            return all(_eval(a, params) for a in arg)
        if fn == "Fn::Or":
            return any(_eval(a, params) for a in arg)
        raise AssertionError(f"the evaluator does not know {fn}; extend it with the rule")
    if isinstance(node, list):
        return [_eval(n, params) for n in node]
    return node


def _violations(rules: dict, params: dict[str, Any]) -> list[str]:
    broken = []
    for name, rule in rules.items():
        if "RuleCondition" in rule and not _eval(rule["RuleCondition"], params):
            continue
        broken += [f"{name}: {a.get('AssertDescription', '')}" for a in rule["Assertions"] if not _eval(a["Assert"], params)]
    return broken


def _with_image(constraint: dict, image_id: str) -> dict:
    """The constraint as the factory narrows it for an approved image (the sentinel replaced)."""
    return json.loads(json.dumps(constraint).replace(SENTINEL_IMAGE, image_id))


GOOD_PARAMS = {
    "ImageId": "ami-0123456789abcdef0",
    "AppPort": "443",
    "KmsKeyArn": "arn:aws:kms:eu-west-1:444444444444:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}


# --- lint -------------------------------------------------------------------------------------------------


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
@pytest.mark.parametrize("path", sorted((REPO / "catalog").glob("*.yaml")), ids=lambda p: p.name)
def test_every_catalog_template_is_cfn_lint_clean(path):
    assert _lint(path.read_text()) == []


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_template_with_the_constraint_rules_is_cfn_lint_clean(template, constraint):
    merged = json.loads(json.dumps(template))
    merged["Rules"] = {**merged.get("Rules", {}), **constraint["Rules"]}
    assert _lint(json.dumps(merged)) == []


def test_lint_catches_a_broken_template():
    # The check above is only worth something if the linter sees this template's mistakes.
    broken = TEMPLATE.read_text().replace("HttpTokens: required", "HttpTokens: sometimes")
    assert any("HttpTokens" in m or "sometimes" in m for m in _lint(broken))


# --- the instances ----------------------------------------------------------------------------------------


def test_launch_template_requires_imdsv2_with_hop_limit_one(template):
    (lt,) = _of_type(template, "AWS::EC2::LaunchTemplate").values()
    options = lt["Properties"]["LaunchTemplateData"]["MetadataOptions"]
    assert options["HttpTokens"] == "required"
    assert options["HttpPutResponseHopLimit"] == 1
    assert options.get("HttpEndpoint", "enabled") == "enabled"


def test_every_volume_is_encrypted_with_the_key_parameter(template):
    (lt,) = _of_type(template, "AWS::EC2::LaunchTemplate").values()
    mappings = lt["Properties"]["LaunchTemplateData"]["BlockDeviceMappings"]
    assert mappings
    for mapping in mappings:
        assert mapping["Ebs"]["Encrypted"] is True
        assert mapping["Ebs"]["KmsKeyId"] == {"Ref": "KmsKeyArn"}
    assert mappings[0]["DeviceName"] == {"Ref": "RootDeviceName"}, "the root volume itself, whatever the OS names it"
    assert not _of_type(template, "AWS::EC2::Volume"), "no volume outside the launch template"


def test_instances_get_no_public_address_and_only_the_product_security_group(template):
    (lt,) = _of_type(template, "AWS::EC2::LaunchTemplate").values()
    (nic,) = lt["Properties"]["LaunchTemplateData"]["NetworkInterfaces"]
    assert nic["AssociatePublicIpAddress"] is False
    assert nic["Groups"] == [{"Fn::GetAtt": ["InstanceSecurityGroup", "GroupId"]}]


def test_instances_use_the_app_instance_profile_by_name_and_the_template_creates_no_iam(template):
    (lt,) = _of_type(template, "AWS::EC2::LaunchTemplate").values()
    assert lt["Properties"]["LaunchTemplateData"]["IamInstanceProfile"] == {"Name": {"Ref": "InstanceProfileName"}}
    assert not [r for r in template["Resources"].values() if r["Type"].startswith("AWS::IAM::")]


def test_instances_run_the_image_parameter_in_an_auto_scaling_group(template):
    assert template["Parameters"]["ImageId"]["Type"] == "AWS::EC2::Image::Id"
    (lt,) = _of_type(template, "AWS::EC2::LaunchTemplate").values()
    assert lt["Properties"]["LaunchTemplateData"]["ImageId"] == {"Ref": "ImageId"}
    (asg,) = _of_type(template, "AWS::AutoScaling::AutoScalingGroup").values()
    assert asg["Properties"]["LaunchTemplate"]["Version"] == {"Fn::GetAtt": ["LaunchTemplate", "LatestVersionNumber"]}
    assert asg["Properties"]["VPCZoneIdentifier"] == {"Ref": "SubnetIds"}


# --- the security group -----------------------------------------------------------------------------------


def test_security_group_has_no_ingress_from_anywhere_and_no_remote_shell_port(template):
    (sg,) = _of_type(template, "AWS::EC2::SecurityGroup").values()
    ingress = sg["Properties"]["SecurityGroupIngress"]
    assert not _of_type(template, "AWS::EC2::SecurityGroupIngress"), "all ingress lives on the group, in view"
    for rule in ingress:
        assert rule.get("CidrIp") not in ("0.0.0.0/0",) and rule.get("CidrIpv6") not in ("::/0",)
        assert rule["CidrIp"] == {"Ref": "PrivateCidr"}
        for port in (rule["FromPort"], rule["ToPort"]):
            assert port == {"Ref": "AppPort"} or port not in (22, 23, 3389)


@pytest.mark.parametrize(
    "cidr, allowed",
    [
        ("10.0.0.0/16", True),
        ("172.16.0.0/12", True),
        ("192.168.10.0/24", True),
        ("0.0.0.0/0", False),
        ("8.8.8.0/24", False),
        ("10.0.0.0/1", False),
        ("172.32.0.0/16", False),
    ],
)
def test_private_cidr_parameter_admits_private_ranges_only(template, cidr, allowed):
    pattern = template["Parameters"]["PrivateCidr"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, cidr)) is allowed
    if allowed:
        assert ipaddress.ip_network(cidr).is_private


@pytest.mark.parametrize("port, allowed", [("443", True), ("8080", True), ("22", False), ("3389", False), ("23", False)])
def test_template_rule_refuses_remote_shell_ports(template, port, allowed):
    broken = _violations(template["Rules"], {**GOOD_PARAMS, "AppPort": port})
    assert (broken == []) is allowed, broken


def test_egress_is_https_to_the_private_range_only(template):
    (sg,) = _of_type(template, "AWS::EC2::SecurityGroup").values()
    (egress,) = sg["Properties"]["SecurityGroupEgress"]
    assert (egress["IpProtocol"], egress["FromPort"], egress["ToPort"]) == ("tcp", 443, 443)
    assert egress["CidrIp"] == {"Ref": "PrivateCidr"}


# --- the template constraint ------------------------------------------------------------------------------


def test_constraint_has_the_shape_service_catalog_accepts(constraint):
    jsonschema.validate(constraint, CONSTRAINT_SCHEMA)


def test_constraint_refers_only_to_parameters_of_the_template(template, constraint):
    refs = set(re.findall(r'\{"Ref": "([^"]+)"\}', json.dumps(constraint)))
    assert refs and refs <= set(template["Parameters"])


def test_constraint_admits_only_the_approved_image(constraint):
    narrowed = _with_image(constraint, "ami-0123456789abcdef0")
    assert _violations(narrowed["Rules"], GOOD_PARAMS) == []
    broken = _violations(narrowed["Rules"], {**GOOD_PARAMS, "ImageId": "ami-0fedcba9876543210"})
    assert broken and broken[0].startswith("ApprovedImageOnly")


def test_constraint_as_committed_admits_no_image_until_the_first_approval(constraint):
    broken = _violations(constraint["Rules"], GOOD_PARAMS)
    assert [b.split(":")[0] for b in broken] == ["ApprovedImageOnly"]


def test_constraint_refuses_the_aws_managed_ebs_key(constraint):
    narrowed = _with_image(constraint, GOOD_PARAMS["ImageId"])
    broken = _violations(narrowed["Rules"], {**GOOD_PARAMS, "KmsKeyArn": "alias/aws/ebs"})
    assert [b.split(":")[0] for b in broken] == ["EncryptedWithAccountKey"]


def test_build_stack_reads_the_constraint_as_committed(constraint):
    # components/build/service_catalog.py (build-stack) declares the TEMPLATE constraint from this very file.
    service_catalog = pytest.importorskip("components.build.service_catalog")
    assert json.loads(service_catalog.constraint_rules(CONSTRAINT)) == constraint


def test_product_template_passes_yamllint():
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    # CloudFormation's short tags and long descriptions are normal; everything else at yamllint's defaults.
    config = YamlLintConfig(
        "extends: default\nrules:\n  line-length: {max: 160}\n  document-start: disable\n"
        "  braces: {max-spaces-inside: 1}\n  brackets: {max-spaces-inside: 1}\n"
    )
    problems = [f"{p.line}:{p.column} {p.message}" for p in linter.run(TEMPLATE.read_text(), config)]
    assert problems == []
