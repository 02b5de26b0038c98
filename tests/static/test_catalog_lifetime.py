"""Disposable fleets in the catalog product: its Auto Scaling group replaces every instance after the
maximum instance lifetime, 7 days unless the launcher picks another value Auto Scaling accepts."""

from __future__ import annotations

from cfnlint.decode import decode_str

from tests.static.rig import REPO

TEMPLATE = REPO / "catalog" / "hardened-instance.yaml"


def _template() -> dict:
    template, problems = decode_str(TEMPLATE.read_text())
    assert not problems
    return template


def test_catalog_group_sets_the_maximum_instance_lifetime_from_a_parameter():
    template = _template()
    group = template["Resources"]["AutoScalingGroup"]["Properties"]
    assert group["MaxInstanceLifetime"] == {"Ref": "MaxInstanceLifetime"}


def test_lifetime_defaults_to_seven_days_and_admits_only_what_auto_scaling_accepts():
    # EC2 Auto Scaling user guide, "Replace Auto Scaling instances based on maximum instance lifetime":
    # at least 86,400 s; AWS::AutoScaling::AutoScalingGroup caps it at 31,536,000 s. 0 (no lifetime) is refused.
    param = _template()["Parameters"]["MaxInstanceLifetime"]
    assert param["Type"] == "Number" and int(param["Default"]) == 604800
    assert int(param["MinValue"]) == 86400 and int(param["MaxValue"]) == 31536000


def test_lifetime_is_shown_with_the_instance_settings():
    groups = _template()["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert any("MaxInstanceLifetime" in g["Parameters"] for g in groups)
