"""The organization's guardrails, judged the way AWS would: each SCP is evaluated against example
requests with the estate's one IAM evaluator (tests/iam/evaluate.py: @cloud-copilot/iam-simulate),
through the OU chain each account actually sits in, root first."""

from __future__ import annotations

import json

import pytest

from components.org.scps import DECLARATIVE_MAX_CHARS, SCP_MAX_CHARS
from tests.iam.org_view import (
    ACCOUNT_KEYS,
    BUILD,
    DEV,
    PROD,
    ROOT,
    SECURITY,
    UAT,
    Request,
    org,  # noqa: F401 (fixture)
    statement_applies,
)
from tests.iam.org_view import denied as _denied
from tests.iam.org_view import role_arn as _role

# --- size ----------------------------------------------------------------------------------------


def test_every_scp_fits_the_size_quota(org):
    scps = [p for p in org.policies.values() if p.inputs["type"] == "SERVICE_CONTROL_POLICY"]
    assert len(scps) >= 5
    for policy in scps:
        content = policy.inputs["content"]
        minified = json.dumps(json.loads(content), separators=(",", ":"))
        assert content == minified, f"{policy.name} is not stored minified"
        assert len(minified) <= SCP_MAX_CHARS, f"{policy.name}: {len(minified)} > {SCP_MAX_CHARS}"
    for policy in org.policies.values():
        if policy.inputs["type"] == "DECLARATIVE_POLICY_EC2":
            assert len(policy.inputs["content"]) <= DECLARATIVE_MAX_CHARS


def test_no_target_exceeds_five_attached_scps(org):
    # AWS allows five SCPs per root/OU/account, FullAWSAccess included.
    per_target: dict[str, int] = {}
    for attachment in org.attachments:
        if org.policy_by_id[attachment.inputs["policyId"]].inputs["type"] == "SERVICE_CONTROL_POLICY":
            per_target[org.target_of(attachment)] = per_target.get(org.target_of(attachment), 0) + 1
    assert per_target and all(count + 1 <= 5 for count in per_target.values()), per_target


# --- workload network ----------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["dev", "uat", "prod"])
def test_workload_ous_deny_internet_gateways(org, env):
    account = ACCOUNT_KEYS[env]
    for action in ("ec2:CreateInternetGateway", "ec2:AttachInternetGateway", "ec2:CreateEgressOnlyInternetGateway"):
        assert "DenyInternetPaths" in _denied(org, env, Request(action, principal=_role(account)))
    # The deploy role is not exempt: a private-only network has no use for an internet gateway.
    assert _denied(org, env, Request("ec2:CreateInternetGateway", principal=_role(account, "BakehouseDeploy")))


def test_internet_gateways_remain_possible_outside_workload_ous(org):
    assert _denied(org, "build", Request("ec2:CreateInternetGateway", principal=_role(BUILD))) == []
    assert _denied(org, "security", Request("ec2:CreateNatGateway", principal=_role(SECURITY))) == []


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_workload_ous_deny_nat_gateways_and_public_ips(org, env):
    principal = _role(ACCOUNT_KEYS[env])
    assert _denied(org, env, Request("ec2:CreateNatGateway", principal=principal))
    assert _denied(org, env, Request("ec2:AllocateAddress", principal=principal))
    public_launch = Request(
        "ec2:RunInstances",
        ("arn:aws:ec2:eu-west-1:444444444444:network-interface/*",),
        principal,
        {"ec2:AssociatePublicIpAddress": "true", "ec2:MetadataHttpTokens": "required"},
    )
    assert "DenyPublicIpOnLaunch" in _denied(org, env, public_launch)
    private_launch = Request(
        "ec2:RunInstances",
        ("arn:aws:ec2:eu-west-1:444444444444:network-interface/*",),
        principal,
        {"ec2:AssociatePublicIpAddress": "false"},
    )
    assert "DenyPublicIpOnLaunch" not in _denied(org, env, private_launch)


def test_workload_ous_deny_peering_but_with_the_core_accounts(org):
    peering = ("arn:aws:ec2:eu-west-1:444444444444:vpc-peering-connection/*",)
    # the build account's egress VPC requests the peering; the workload accepts it
    from_build = Request(
        "ec2:AcceptVpcPeeringConnection",
        peering,
        _role(DEV),
        {
            "ec2:AccepterVpc": f"arn:aws:ec2:eu-west-1:{DEV}:vpc/vpc-0abc",
            "ec2:RequesterVpc": f"arn:aws:ec2:eu-west-1:{BUILD}:vpc/vpc-0def",
        },
    )
    inside = Request(
        "ec2:CreateVpcPeeringConnection",
        peering,
        _role(DEV),
        {
            "ec2:AccepterVpc": f"arn:aws:ec2:eu-west-1:{BUILD}:vpc/vpc-0abc",
            "ec2:RequesterVpc": f"arn:aws:ec2:eu-west-1:{DEV}:vpc/vpc-0def",
        },
    )
    # envs stay apart: dev may not peer with uat (and the SCP does not list every workload account)
    between_envs = Request(
        "ec2:CreateVpcPeeringConnection",
        peering,
        _role(DEV),
        {
            "ec2:AccepterVpc": f"arn:aws:ec2:eu-west-1:{UAT}:vpc/vpc-0abc",
            "ec2:RequesterVpc": f"arn:aws:ec2:eu-west-1:{DEV}:vpc/vpc-0def",
        },
    )
    outside = Request(
        "ec2:CreateVpcPeeringConnection",
        peering,
        _role(DEV),
        {
            "ec2:AccepterVpc": "arn:aws:ec2:eu-west-1:999999999999:vpc/vpc-0abc",
            "ec2:RequesterVpc": f"arn:aws:ec2:eu-west-1:{DEV}:vpc/vpc-0def",
        },
    )
    accept_foreign = Request(
        "ec2:AcceptVpcPeeringConnection",
        peering,
        _role(PROD),
        {
            "ec2:AccepterVpc": f"arn:aws:ec2:eu-west-1:{PROD}:vpc/vpc-01",
            "ec2:RequesterVpc": "arn:aws:ec2:eu-west-1:999999999999:vpc/vpc-02",
        },
    )
    assert _denied(org, "dev", inside) == []
    assert _denied(org, "dev", from_build) == []
    assert _denied(org, "dev", between_envs) == ["DenyPeeringToOutsideVpc"]
    assert _denied(org, "dev", outside) == ["DenyPeeringToOutsideVpc"]
    assert _denied(org, "prod", accept_foreign) == ["DenyPeeringFromOutsideVpc"]


# --- images and IMDS -----------------------------------------------------------------------------


def _launch(account: str, owner: str, tokens: str | None = "required") -> Request:
    context = {"ec2:Owner": owner}
    if tokens is not None:
        context["ec2:MetadataHttpTokens"] = tokens
    return Request(
        "ec2:RunInstances",
        (f"arn:aws:ec2:eu-west-1:{account}:instance/*", "arn:aws:ec2:eu-west-1::image/ami-0123456789abcdef0"),
        _role(account),
        context,
    )


def test_workload_accounts_launch_only_images_owned_by_the_build_account(org):
    assert _denied(org, "dev", _launch(DEV, BUILD)) == []
    assert _denied(org, "dev", _launch(DEV, "amazon")) == ["DenyImagesFromOtherOwners"]
    assert _denied(org, "prod", _launch(PROD, "137112412989")) == ["DenyImagesFromOtherOwners"]
    # The build account bakes from Amazon's base images, so it is not bound by the owner rule.
    assert _denied(org, "build", _launch(BUILD, "amazon")) == []


@pytest.mark.parametrize("env", ["security", "build", "dev", "prod"])
def test_run_instances_requires_imdsv2_everywhere(org, env):
    account = ACCOUNT_KEYS[env]
    assert "DenyInstancesWithoutImdsv2" in _denied(org, env, _launch(account, BUILD, tokens="optional"))
    assert "DenyInstancesWithoutImdsv2" in _denied(org, env, _launch(account, BUILD, tokens=None))
    assert "DenyInstancesWithoutImdsv2" not in _denied(org, env, _launch(account, BUILD, tokens="required"))


# --- organization-wide ---------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["security", "build", "dev", "uat", "prod"])
def test_leaving_the_organization_is_denied_to_every_member(org, env):
    principal = _role(ACCOUNT_KEYS[env], "BakehouseDeploy")
    assert "DenyLeavingOrganization" in _denied(org, env, Request("organizations:LeaveOrganization", principal=principal))


def test_root_user_is_denied_everything(org):
    root = Request("s3:ListAllMyBuckets", principal=f"arn:aws:iam::{DEV}:root")
    assert "DenyRootUser" in _denied(org, "dev", root)
    assert "DenyRootUser" not in _denied(org, "dev", Request("s3:ListAllMyBuckets", principal=_role(DEV)))


@pytest.mark.parametrize(
    "action",
    [
        "cloudtrail:StopLogging",
        "guardduty:DeleteDetector",
        "securityhub:DisableSecurityHub",
        "config:StopConfigurationRecorder",
        "access-analyzer:DeleteAnalyzer",
        "inspector2:Disable",
    ],
)
def test_security_services_cannot_be_disabled_except_by_the_deploy_role(org, action):
    assert "DenySecurityServiceTampering" in _denied(org, "dev", Request(action, principal=_role(DEV, "Admin")))
    deploy = Request(action, principal=_role(DEV, "BakehouseDeploy"))
    assert "DenySecurityServiceTampering" not in _denied(org, "dev", deploy)


def test_log_buckets_and_keys_are_protected_except_from_the_deploy_role(org):
    trail_bucket = f"arn:aws:s3:::bakehouse-trail-{SECURITY}-eu-west-1"
    key = f"arn:aws:kms:eu-west-1:{SECURITY}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    admin = _role(SECURITY, "Admin")
    assert _denied(org, "security", Request("s3:PutBucketPolicy", (trail_bucket,), admin)) == ["DenyLogBucketTampering"]
    assert _denied(org, "security", Request("s3:DeleteObjectVersion", (f"{trail_bucket}/AWSLogs/x.json.gz",), admin))
    assert _denied(org, "security", Request("kms:ScheduleKeyDeletion", (key,), admin)) == ["DenyLogKeyTampering"]
    deploy = _role(SECURITY, "BakehouseDeploy")
    assert _denied(org, "security", Request("s3:PutBucketPolicy", (trail_bucket,), deploy)) == []
    # Other buckets and other accounts' keys stay the business of their owners.
    other = "arn:aws:s3:::some-app-bucket"
    assert _denied(org, "dev", Request("s3:PutBucketPolicy", (other,), _role(DEV, "Admin"))) == []
    assert (
        _denied(org, "dev", Request("kms:ScheduleKeyDeletion", (f"arn:aws:kms:eu-west-1:{DEV}:key/k",), _role(DEV, "Admin")))
        == []
    )


def test_regions_outside_the_allowed_list_are_denied_but_global_services_are_exempt(org):
    outside = {"aws:RequestedRegion": "ap-southeast-2"}
    assert _denied(org, "dev", Request("ec2:DescribeInstances", principal=_role(DEV), context=outside)) == [
        "DenyOutsideAllowedRegions"
    ]
    assert (
        _denied(
            org, "dev", Request("ec2:DescribeInstances", principal=_role(DEV), context={"aws:RequestedRegion": "eu-central-1"})
        )
        == []
    )
    for global_action in (
        "iam:CreateRole",
        "sts:AssumeRole",
        "organizations:DescribeOrganization",
        "route53:ChangeResourceRecordSets",
        "support:CreateCase",
        "cloudfront:CreateDistribution",
    ):
        assert _denied(org, "dev", Request(global_action, principal=_role(DEV), context=outside)) == [], global_action


# --- attachments and declarative policies -------------------------------------------------------


def test_scps_attach_where_the_issue_places_them(org):
    placed = {(org.policy_by_id[a.inputs["policyId"]].inputs["name"], org.target_of(a)) for a in org.attachments}
    assert {
        ("bakehouse-baseline", ROOT),
        ("bakehouse-protect-security", ROOT),
        ("bakehouse-regions", ROOT),
        ("bakehouse-workload-network", "org-organization-ou-workloads"),
        ("bakehouse-approved-images", "org-organization-ou-workloads"),
    } <= placed
    # NonProd and Prod inherit from Workloads: both workload OUs are children of it.
    for ou in ("org-organization-ou-nonprod", "org-organization-ou-prod"):
        assert org.ous[ou].inputs["parentId"] == "org-organization-ou-workloads-id"


def test_ec2_declarative_policies_require_imdsv2_block_public_sharing_and_allow_build_images(org):
    everywhere = org.effective("build", "DECLARATIVE_POLICY_EC2")
    assert len(everywhere) == 1
    attrs = everywhere[0]["ec2_attributes"]
    assert attrs["instance_metadata_defaults"]["http_tokens"] == {"@@assign": "required"}
    assert attrs["image_block_public_access"]["state"] == {"@@assign": "block_new_sharing"}
    assert attrs["snapshot_block_public_access"]["state"] == {"@@assign": "block_all_sharing"}
    workload = [d["ec2_attributes"] for d in org.effective("dev", "DECLARATIVE_POLICY_EC2")]
    allowed = [d["allowed_images_settings"] for d in workload if "allowed_images_settings" in d]
    assert allowed and allowed[0]["state"] == {"@@assign": "enabled"}
    assert allowed[0]["image_criteria"]["criteria_1"]["allowed_image_providers"] == {"@@assign": [BUILD]}
    organization = org.run.of_type("aws:organizations/organization:Organization")[0]
    assert "DECLARATIVE_POLICY_EC2" in organization.inputs["enabledPolicyTypes"]


# --- the evaluator itself must be able to say no -------------------------------------------------


def test_evaluator_follows_iam_rules_for_absent_keys_and_not_action():
    stmt = {
        "Sid": "S",
        "Effect": "Deny",
        "NotAction": ["iam:*"],
        "Resource": ["*"],
        "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["eu-west-1"]}},
    }
    assert not statement_applies(stmt, Request("iam:CreateRole", context={"aws:RequestedRegion": "us-west-2"}))
    assert statement_applies(stmt, Request("ec2:RunInstances", context={"aws:RequestedRegion": "us-west-2"}))
    assert not statement_applies(stmt, Request("ec2:RunInstances"))
    positive = {
        "Sid": "P",
        "Effect": "Deny",
        "Action": ["ec2:*"],
        "Resource": ["*"],
        "Condition": {"Bool": {"ec2:AssociatePublicIpAddress": "true"}},
    }
    assert not statement_applies(positive, Request("ec2:RunInstances"))  # absent key: positive operator false
    absent_negated = {
        "Sid": "N",
        "Effect": "Deny",
        "Action": ["ec2:RunInstances"],
        "Resource": ["*"],
        "Condition": {"StringNotEquals": {"ec2:MetadataHttpTokens": "required"}},
    }
    assert statement_applies(absent_negated, Request("ec2:RunInstances"))  # absent key: negated operator true


# --- guardrail integrity: the roles the estate is entered through, and the tamper paths (issue 12.2) -

ENTRY_ROLES = ("BakehouseDeploy", "BakehousePreview", "OrganizationAccountAccessRole")
ENTRY_ROLE_CHANGES = (
    "iam:UpdateAssumeRolePolicy",
    "iam:AttachRolePolicy",
    "iam:PutRolePolicy",
    "iam:DeleteRole",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:PassRole",
    "iam:UpdateRole",
)


@pytest.mark.parametrize("role", ENTRY_ROLES)
@pytest.mark.parametrize("action", ENTRY_ROLE_CHANGES)
def test_member_administrators_cannot_edit_retrust_delete_or_pass_the_entry_roles(org, role, action):
    target = (f"arn:aws:iam::{PROD}:role/{role}",)
    assert "DenyChangingTheRolesTheEstateIsEnteredThrough" in _denied(org, "prod", Request(action, target, _role(PROD, "Admin")))
    # the org stack declares these roles through the access role; updates to the estate run as the deploy role
    for principal in ("BakehouseDeploy", "OrganizationAccountAccessRole"):
        assert _denied(org, "prod", Request(action, target, _role(PROD, principal))) == [], principal


def test_other_roles_stay_their_owners_business(org):
    app_role = (f"arn:aws:iam::{DEV}:role/app-team-role",)
    assert _denied(org, "dev", Request("iam:UpdateAssumeRolePolicy", app_role, _role(DEV, "Admin"))) == []
    assert _denied(org, "dev", Request("iam:GetRole", (f"arn:aws:iam::{DEV}:role/BakehouseDeploy",), _role(DEV, "Admin"))) == []


def test_flow_logs_cannot_be_deleted_except_by_the_deploy_role(org):
    flow_log = (f"arn:aws:ec2:eu-west-1:{PROD}:vpc-flow-log/fl-0123456789abcdef0",)
    assert _denied(org, "prod", Request("ec2:DeleteFlowLogs", flow_log, _role(PROD, "Admin"))) == [
        "DenyResponseAndAuditTampering"
    ]
    assert _denied(org, "prod", Request("ec2:DeleteFlowLogs", flow_log, _role(PROD, "BakehouseDeploy"))) == []


@pytest.mark.parametrize(
    "action", ["events:DisableRule", "events:DeleteRule", "events:RemoveTargets", "events:PutRule", "events:PutTargets"]
)
def test_break_glass_and_isolation_rules_cannot_be_disabled_deleted_or_retargeted(org, stack_run, action):
    # the rule names the workload stack really declares, under the components that own them
    rules = [
        r.inputs["name"]
        for r in stack_run("dev").of_type("aws:cloudwatch/eventRule:EventRule")
        if any(owner in (r.parent or "") for owner in (":BreakGlass::", ":IncidentResponse::"))
    ]
    assert len(rules) >= 3, rules
    for region in ("eu-west-1", "us-east-1"):
        for rule in rules:
            arn = (f"arn:aws:events:{region}:{DEV}:rule/{rule}",)
            assert _denied(org, "dev", Request(action, arn, _role(DEV, "Admin"))) == ["DenyResponseAndAuditTampering"]
            assert _denied(org, "dev", Request(action, arn, _role(DEV, "BakehouseDeploy"))) == []
    app_rule = (f"arn:aws:events:eu-west-1:{DEV}:rule/app-nightly",)
    assert _denied(org, "dev", Request(action, app_rule, _role(DEV, "Admin"))) == []


@pytest.mark.parametrize("action", ["kms:DisableKey", "kms:ScheduleKeyDeletion", "kms:PutKeyPolicy"])
def test_estate_keys_cannot_be_disabled_deleted_or_repolicied(org, action):
    key = (f"arn:aws:kms:eu-west-1:{DEV}:key/1234abcd-12ab-34cd-56ef-1234567890ab",)
    estate_key = Request(action, key, _role(DEV, "Admin"), {"kms:ResourceAliases": ["alias/bakehouse-dev"]})
    assert _denied(org, "dev", estate_key) == ["DenyEstateKeyTampering"]
    assert (
        _denied(org, "dev", Request(action, key, _role(DEV, "BakehouseDeploy"), {"kms:ResourceAliases": ["alias/bakehouse-dev"]}))
        == []
    )
    app_key = Request(action, key, _role(DEV, "Admin"), {"kms:ResourceAliases": ["alias/app-data"]})
    assert _denied(org, "dev", app_key) == []


@pytest.mark.parametrize("action", ["kms:DeleteAlias", "kms:UpdateAlias"])
def test_estate_key_aliases_cannot_be_moved_off_the_key(org, action):
    alias = (f"arn:aws:kms:eu-west-1:{DEV}:alias/bakehouse-dev",)
    assert _denied(org, "dev", Request(action, alias, _role(DEV, "Admin"))) == ["DenyResponseAndAuditTampering"]
    assert _denied(org, "dev", Request(action, (f"arn:aws:kms:eu-west-1:{DEV}:alias/app-data",), _role(DEV, "Admin"))) == []


def test_security_hub_findings_cannot_be_suppressed_except_by_the_deploy_role(org):
    hub = (f"arn:aws:securityhub:eu-west-1:{SECURITY}:hub/default",)
    status = "securityhub:ASFFSyntaxPath/Workflow.Status"
    admin = _role(SECURITY, "Admin")
    suppress = Request("securityhub:BatchUpdateFindings", hub, admin, {status: "SUPPRESSED"})
    assert _denied(org, "security", suppress) == ["DenyFindingSuppression"]
    assert _denied(org, "security", Request("securityhub:BatchUpdateFindings", hub, admin, {status: "NOTIFIED"})) == []
    for action in ("securityhub:CreateAutomationRule", "securityhub:CreateAutomationRuleV2", "securityhub:UpdateFindings"):
        assert "DenySecurityServiceTampering" in _denied(org, "security", Request(action, principal=admin)), action


@pytest.mark.parametrize("action", ["ssm:DeleteDocument", "ssm:UpdateDocument", "ssm:UpdateDocumentDefaultVersion"])
def test_session_manager_preferences_document_cannot_be_deleted_or_changed(org, action):
    preferences = (f"arn:aws:ssm:eu-west-1:{PROD}:document/SSM-SessionManagerRunShell",)
    assert _denied(org, "prod", Request(action, preferences, _role(PROD, "Admin"))) == ["DenyResponseAndAuditTampering"]
    assert _denied(org, "prod", Request(action, preferences, _role(PROD, "BakehouseDeploy"))) == []
    assert (
        _denied(org, "prod", Request(action, (f"arn:aws:ssm:eu-west-1:{PROD}:document/app-runbook",), _role(PROD, "Admin"))) == []
    )


def test_a_renamed_organization_access_role_is_the_one_the_scps_protect():
    from tools.mockrun import cached_run

    section = {
        "accountEmails": {k: f"aws+{k}@example.com" for k in ("security", "build", "dev", "uat", "prod")},
        "githubRepository": "acme/bakehouse",
        "accountAccessRoleName": "OrgBootstrap",
    }
    run = cached_run("org", overrides={"bakehouse:org": section})
    (baseline_scp,) = [p for p in run.of_type("aws:organizations/policy:Policy") if p.inputs["name"] == "bakehouse-baseline"]
    assert "role/OrgBootstrap" in baseline_scp.inputs["content"]
    assert "role/OrganizationAccountAccessRole" not in baseline_scp.inputs["content"]
