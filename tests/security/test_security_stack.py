"""The security stack (security / log-archive account), asserted on what the real program declares:
log buckets and their keys, delivery-scoped bucket policies (evaluated against example deliveries),
the security topic, delegated-admin detection services, conformance packs, flow-log analytics."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from estate.config import ConfigError
from tests.iam.evaluate import FULL_AWS_ACCESS, Simulation, Verdict, simulate
from tests.iam.org_view import Request
from tools.mockrun import cached_run

MGMT, SECURITY, BUILD, DEV, UAT, PROD = (
    "111111111111",
    "222222222222",
    "333333333333",
    "444444444444",
    "555555555555",
    "666666666666",
)
ESTATE = {MGMT, SECURITY, BUILD, DEV, UAT, PROD}
ORG_ID = "o-exampleorg01"
TRAIL = f"arn:aws:cloudtrail:eu-west-1:{MGMT}:trail/bakehouse-organization"
KINDS = ("trail", "config", "flowlogs", "evidence", "sessions")
REGIONS = {"eu-west-1", "eu-central-1", "us-east-1"}
SECTION = {
    "objectLockMode": "COMPLIANCE",
    "objectLockDays": 365,
    "organizationRootId": "r-exam",
    "alertEmails": ["security-team@example.com"],
}


@pytest.fixture(scope="module")
def sec(stack_run):
    return stack_run("security")


def _one(run, type_token):
    found = run.of_type(type_token)
    assert len(found) == 1, f"{len(found)} of {type_token}"
    return found[0]


def _bucket_policy(run, kind: str) -> dict[str, Any]:
    return json.loads(run.named(f"security-archive-{kind}-policy").inputs["policy"])


def _key_policy(run, kind: str) -> dict[str, Any]:
    return json.loads(run.named(f"security-archive-{kind}-key-key").inputs["policy"])


def _caller(principal: dict[str, str]) -> str:
    # An account principal admits that account's roles; a role of the account makes the request.
    arn = principal.get("AWS") or principal["Service"]
    return arn.replace(":root", ":role/writer") if arn.endswith(":root") else arn


def _verdicts(policy: dict[str, Any], principal: dict[str, str], request: Request) -> list[Verdict]:
    caller = _caller(principal)
    context = {**({"aws:PrincipalArn": caller} if caller.startswith("arn:") else {}), **request.context}
    # The caller's own IAM side allows everything, so the verdict is the resource policy's to give.
    return simulate(
        [
            Simulation(
                caller,
                request.action,
                resource,
                context,
                identity=(FULL_AWS_ACCESS,),
                resource_policy=policy,
                resource_account=SECURITY,
                lenient=True,
            )
            for resource in request.resources
        ]
    )


def allowed(policy: dict[str, Any], principal: dict[str, str], request: Request) -> bool:
    """Whether the resource policy admits the principal (tests/iam/evaluate: the one evaluator)."""
    return all(v.allowed for v in _verdicts(policy, principal, request))


def _delivery(action: str, resource: str, **context: str) -> Request:
    return Request(action, (resource,), principal="", context={"aws:SecureTransport": "true", **context})


# --- buckets -------------------------------------------------------------------------------------


def test_log_buckets_keep_their_estate_names_and_all_but_config_are_object_locked(sec):
    for kind in KINDS:
        (bucket,) = [b for b in sec.of_type("aws:s3/bucket:Bucket") if b.name == f"security-archive-{kind}"]
        assert bucket.inputs["bucket"] == f"bakehouse-{kind}-{SECURITY}-eu-west-1"
        if kind == "config":
            continue
        assert bucket.inputs["objectLockEnabled"] is True
        lock = sec.named(f"security-archive-{kind}-object-lock").inputs["rule"]["defaultRetention"]
        assert lock == {"mode": "COMPLIANCE", "days": 365}


def test_config_bucket_has_no_object_lock_which_config_delivery_does_not_support(sec):
    # AWS::Config::DeliveryChannel: "AWS Config does not support the delivery channel to an Amazon S3 bucket
    # where object lock is enabled." Versioning and the protect-security SCP guard it instead.
    (bucket,) = [b for b in sec.of_type("aws:s3/bucket:Bucket") if b.name == "security-archive-config"]
    assert not bucket.inputs.get("objectLockEnabled")
    assert not [r for r in sec.resources if r.name == "security-archive-config-object-lock"]


def test_object_lock_mode_and_retention_come_from_the_security_section():
    run = cached_run(
        "security",
        overrides={
            "bakehouse:security": {**SECTION, "objectLockMode": "GOVERNANCE", "objectLockDays": 30, "expireAfterDays": 400}
        },
    )
    for kind in KINDS:
        if kind != "config":
            lock = run.named(f"security-archive-{kind}-object-lock").inputs["rule"]["defaultRetention"]
            assert lock == {"mode": "GOVERNANCE", "days": 30}
        rule = run.named(f"security-archive-{kind}-lifecycle").inputs["rules"][0]
        assert rule["expiration"]["days"] == 400


def test_log_buckets_move_to_glacier_then_expire_after_retention(sec):
    for kind in KINDS:
        (rule,) = sec.named(f"security-archive-{kind}-lifecycle").inputs["rules"]
        assert rule["status"] == "Enabled"
        assert rule["transitions"] == [{"days": 90, "storageClass": "GLACIER"}]
        assert rule["expiration"]["days"] == 2557 >= 365


def test_each_log_bucket_is_encrypted_with_its_own_rotating_key(sec):
    for kind in KINDS:
        key = sec.named(f"security-archive-{kind}-key-key")
        assert key.inputs["enableKeyRotation"] is True
        alias = sec.named(f"security-archive-{kind}-key-alias")
        assert alias.inputs["name"] == f"alias/bakehouse-{kind}"
        (rule,) = sec.named(f"security-archive-{kind}-encryption").inputs["rules"]
        default = rule["applyServerSideEncryptionByDefault"]
        assert default["sseAlgorithm"] == "aws:kms"
        assert default["kmsMasterKeyId"].endswith(f"key/security-archive-{kind}-key-key")


def test_trail_bucket_admits_only_the_organization_trail(sec):
    policy = _bucket_policy(sec, "trail")
    cloudtrail = {"Service": "cloudtrail.amazonaws.com"}
    bucket = f"arn:aws:s3:::bakehouse-trail-{SECURITY}-eu-west-1"
    org_object = f"{bucket}/AWSLogs/{ORG_ID}/{DEV}/CloudTrail/eu-west-1/2026/11/23/x.json.gz"
    ours = {"aws:SourceArn": TRAIL, "s3:x-amz-acl": "bucket-owner-full-control"}
    assert allowed(policy, cloudtrail, _delivery("s3:PutObject", org_object, **ours))
    assert allowed(policy, cloudtrail, _delivery("s3:GetBucketAcl", bucket, **{"aws:SourceArn": TRAIL}))
    foreign = {**ours, "aws:SourceArn": "arn:aws:cloudtrail:eu-west-1:999999999999:trail/other"}
    assert not allowed(policy, cloudtrail, _delivery("s3:PutObject", org_object, **foreign))
    assert not allowed(policy, cloudtrail, _delivery("s3:PutObject", f"{bucket}/elsewhere/x", **ours))
    assert not allowed(policy, {"Service": "config.amazonaws.com"}, _delivery("s3:PutObject", org_object, **ours))


@pytest.mark.parametrize(
    "kind,service,path",
    [
        ("config", "config.amazonaws.com", "AWSLogs/{account}/Config/eu-west-1/x.json.gz"),
        # the workload baseline's delivery channel uses the key prefix "config"
        ("config", "config.amazonaws.com", "config/AWSLogs/{account}/Config/eu-west-1/x.json.gz"),
        ("flowlogs", "delivery.logs.amazonaws.com", "AWSLogs/{account}/vpcflowlogs/eu-west-1/2026/11/23/x.log.gz"),
    ],
)
def test_config_and_flow_log_buckets_admit_only_the_estates_accounts(sec, kind, service, path):
    policy = _bucket_policy(sec, kind)
    bucket = f"arn:aws:s3:::bakehouse-{kind}-{SECURITY}-eu-west-1"

    def put(account: str, source_account: str, org: str = ORG_ID, acl: str = "bucket-owner-full-control") -> Request:
        return _delivery(
            "s3:PutObject",
            f"{bucket}/{path.format(account=account)}",
            **{
                "aws:SourceAccount": source_account,
                "aws:SourceOrgID": org,
                "s3:x-amz-acl": acl,
                "aws:SourceArn": f"arn:aws:logs:eu-west-1:{source_account}:*",
            },
        )

    # by organization (aws:SourceOrgID), so the policy does not grow with the accounts: any member's delivery
    for account in [*ESTATE, "777700000042"]:
        assert allowed(policy, {"Service": service}, put(account, account)), account
    assert not allowed(policy, {"Service": service}, put("999999999999", "999999999999", "o-other0000001"))
    assert not allowed(policy, {"Service": service}, put(DEV, "999999999999", "o-other0000001"))
    assert not allowed(policy, {"Service": service}, put(DEV, DEV, acl="private"))


def test_evidence_and_session_buckets_admit_only_workload_principals_of_the_organization(sec):
    evidence = _bucket_policy(sec, "evidence")
    bucket = f"arn:aws:s3:::bakehouse-evidence-{SECURITY}-eu-west-1"
    writer = {"AWS": f"arn:aws:iam::{PROD}:root"}
    in_org = {"aws:PrincipalOrgID": ORG_ID, "aws:PrincipalAccount": PROD, "aws:SecureTransport": "true"}
    put = Request("s3:PutObject", (f"{bucket}/incidents/f-1/i-0abc/manifest.json",), context=in_org)
    assert allowed(evidence, writer, put)
    assert not allowed(evidence, writer, Request("s3:PutObject", (f"{bucket}/elsewhere",), context=in_org))
    assert not allowed(evidence, writer, Request("s3:PutObject", put.resources, context={"aws:PrincipalOrgID": "o-someoneelse1"}))
    assert not allowed(evidence, writer, Request("s3:DeleteObject", put.resources, context=in_org))
    # the other core accounts are not workloads: named by organization minus them, not one principal per
    # workload (the security account's own principals answer to their IAM policies, not to this one)
    for core in (MGMT, BUILD):
        assert not allowed(
            evidence,
            {"AWS": f"arn:aws:iam::{core}:root"},
            Request("s3:PutObject", put.resources, context={**in_org, "aws:PrincipalAccount": core}),
        )
    sessions = _bucket_policy(sec, "sessions")
    assert [s["Resource"] for s in sessions["Statement"] if s["Sid"] == "SessionLogsPerAccount"] == [
        [f"arn:aws:s3:::bakehouse-sessions-{SECURITY}-eu-west-1/${{aws:PrincipalAccount}}/*"]
    ]
    sessions_bucket = f"arn:aws:s3:::bakehouse-sessions-{SECURITY}-eu-west-1"
    assert allowed(sessions, writer, Request("s3:GetEncryptionConfiguration", (sessions_bucket,), context=in_org))
    assert not allowed(sessions, writer, Request("s3:GetObject", (f"{sessions_bucket}/{PROD}/s.log",), context=in_org))


@pytest.mark.parametrize("kind", KINDS)
def test_every_log_bucket_refuses_requests_without_tls(sec, kind):
    policy = _bucket_policy(sec, kind)
    bucket = f"arn:aws:s3:::bakehouse-{kind}-{SECURITY}-eu-west-1"
    plain = Request("s3:GetObject", (f"{bucket}/any",), context={"aws:SecureTransport": "false"})
    [verdict] = _verdicts(policy, {"AWS": f"arn:aws:iam::{SECURITY}:root"}, plain)
    assert "DenyInsecureTransport" in verdict.denied_by("resource")


# --- keys ----------------------------------------------------------------------------------------


def _grants(policy: dict[str, Any], service: str) -> list[dict[str, Any]]:
    return [s for s in policy["Statement"] if s.get("Principal") == {"Service": service}]


def test_log_keys_admit_each_service_only_for_the_estates_deliveries(sec):
    trail = _grants(_key_policy(sec, "trail"), "cloudtrail.amazonaws.com")
    encrypt = next(s for s in trail if "kms:GenerateDataKey*" in s["Action"])
    assert encrypt["Condition"]["StringEquals"]["aws:SourceArn"] == TRAIL
    assert (
        encrypt["Condition"]["StringLike"]["kms:EncryptionContext:aws:cloudtrail:arn"] == f"arn:aws:cloudtrail:*:{MGMT}:trail/*"
    )
    assert all(s["Condition"]["StringEquals"]["aws:SourceArn"] == TRAIL for s in trail)
    (config,) = _grants(_key_policy(sec, "config"), "config.amazonaws.com")
    assert config["Condition"] == {"StringEquals": {"aws:SourceOrgID": ORG_ID}}
    (flow,) = _grants(_key_policy(sec, "flowlogs"), "delivery.logs.amazonaws.com")
    assert flow["Condition"] == {"StringEquals": {"aws:SourceOrgID": ORG_ID}}
    # No kind's key admits another kind's service.
    assert _grants(_key_policy(sec, "trail"), "config.amazonaws.com") == []
    assert _grants(_key_policy(sec, "config"), "cloudtrail.amazonaws.com") == []


@pytest.mark.parametrize("kind", KINDS)
def test_log_keys_admit_a_wildcard_principal_only_from_the_organizations_workload_accounts_through_s3_or_ebs(sec, kind):
    for stmt in _key_policy(sec, kind)["Statement"]:
        if stmt.get("Principal") in ("*", {"AWS": "*"}):
            # the workload accounts by organization, not one principal per account (KMS's 32 KB)
            assert stmt["Condition"]["StringEquals"]["aws:PrincipalOrgID"] == ORG_ID, stmt["Sid"]
            assert set(stmt["Condition"]["StringNotEquals"]["aws:PrincipalAccount"]) == {MGMT, SECURITY, BUILD}
            # writers through S3; the evidence key also takes the playbook's snapshot copies, through EBS only
            allowed = {"s3.eu-west-1.amazonaws.com"} | ({"ec2.eu-west-1.amazonaws.com"} if kind == "evidence" else set())
            assert stmt["Condition"]["StringEquals"]["kms:ViaService"] in allowed, stmt["Sid"]
        if stmt["Sid"] == "ReadThroughS3InSecurityAccount":
            assert stmt["Condition"]["StringEquals"]["kms:ViaService"] == "s3.eu-west-1.amazonaws.com"
            assert stmt["Condition"]["StringEquals"]["kms:CallerAccount"] == SECURITY


# --- security topic ------------------------------------------------------------------------------


def test_security_topic_is_kms_encrypted_at_the_address_the_other_stacks_notify(sec):
    topic = _one(sec, "aws:sns/topic:Topic")
    assert topic.inputs["name"] == "bakehouse-security"
    assert topic.inputs["kmsMasterKeyId"].endswith("key/security-alerts-key-key")
    provider = sec.named("security-account")
    # Together with the provider's account and region, the name yields estate.naming.security_topic_arn,
    # which the org stack's CIS alarms notify.
    assert (provider.inputs["region"], provider.inputs["allowedAccountIds"]) == ("eu-west-1", [SECURITY])


def test_security_topic_accepts_alarms_and_rules_from_the_estate_only(sec):
    policy = json.loads(_one(sec, "aws:sns/topicPolicy:TopicPolicy").inputs["policy"])
    topic = f"arn:aws:sns:eu-west-1:{SECURITY}:bakehouse-security"
    for service in ("cloudwatch.amazonaws.com", "events.amazonaws.com"):
        for account in (MGMT, DEV, PROD):
            assert allowed(
                policy,
                {"Service": service},
                Request(
                    "sns:Publish",
                    (topic,),
                    context={"aws:SourceAccount": account, "aws:SourceOrgID": ORG_ID, "aws:SecureTransport": "true"},
                ),
            )
        assert not allowed(
            policy,
            {"Service": service},
            Request(
                "sns:Publish",
                (topic,),
                context={"aws:SourceAccount": "999999999999", "aws:SourceOrgID": "o-other0000001", "aws:SecureTransport": "true"},
            ),
        )
    assert not allowed(
        policy,
        {"Service": "cloudwatch.amazonaws.com"},
        Request(
            "sns:Publish",
            (topic,),
            context={"aws:SourceAccount": MGMT, "aws:SourceOrgID": ORG_ID, "aws:SecureTransport": "false"},
        ),
    )
    # playbooks' roles, by organization
    playbook = {"AWS": f"arn:aws:iam::{PROD}:root"}
    assert allowed(
        policy, playbook, Request("sns:Publish", (topic,), context={"aws:PrincipalOrgID": ORG_ID, "aws:SecureTransport": "true"})
    )
    assert not allowed(
        policy,
        {"AWS": "arn:aws:iam::999999999999:root"},
        Request("sns:Publish", (topic,), context={"aws:PrincipalOrgID": "o-other0000001", "aws:SecureTransport": "true"}),
    )
    key = json.loads(sec.named("security-alerts-key-key").inputs["policy"])
    cloudwatch = _grants(key, "cloudwatch.amazonaws.com")
    assert cloudwatch and cloudwatch[0]["Condition"]["StringEquals"] == {"aws:SourceOrgID": ORG_ID}


# --- detection services --------------------------------------------------------------------------


def test_guardduty_enables_every_protection_plan_for_all_members_in_every_region(sec):
    configs = sec.of_type("aws:guardduty/organizationConfiguration:OrganizationConfiguration")
    assert {c.inputs["region"] for c in configs} == REGIONS
    assert all(c.inputs["autoEnableOrganizationMembers"] == "ALL" for c in configs)
    features = sec.of_type("aws:guardduty/organizationConfigurationFeature:OrganizationConfigurationFeature")
    plans = {
        "S3_DATA_EVENTS",
        "EKS_AUDIT_LOGS",
        "EBS_MALWARE_PROTECTION",
        "RDS_LOGIN_EVENTS",
        "LAMBDA_NETWORK_LOGS",
        "RUNTIME_MONITORING",
    }
    for region in REGIONS:
        here = {f.inputs["name"]: f for f in features if f.inputs["region"] == region}
        assert set(here) == plans
        assert all(f.inputs["autoEnable"] == "ALL" for f in here.values())
        agents = {a["name"] for a in here["RUNTIME_MONITORING"].inputs["additionalConfigurations"]}
        assert agents == {"EKS_ADDON_MANAGEMENT", "ECS_FARGATE_AGENT_MANAGEMENT", "EC2_AGENT_MANAGEMENT"}


def test_security_hub_uses_central_configuration_with_cis_3_and_fsbp_for_the_whole_organization(sec):
    org_config = _one(sec, "aws:securityhub/organizationConfiguration:OrganizationConfiguration")
    assert org_config.inputs["organizationConfiguration"] == {"configurationType": "CENTRAL"}
    assert org_config.inputs["autoEnable"] is False and org_config.inputs["autoEnableStandards"] == "NONE"
    policy = _one(sec, "aws:securityhub/configurationPolicy:ConfigurationPolicy").inputs["configurationPolicy"]
    assert policy["serviceEnabled"] is True
    assert sorted(policy["enabledStandardArns"]) == [
        "arn:aws:securityhub:eu-west-1::standards/aws-foundational-security-best-practices/v/1.0.0",
        "arn:aws:securityhub:eu-west-1::standards/cis-aws-foundations-benchmark/v/3.0.0",
    ]
    association = _one(sec, "aws:securityhub/configurationPolicyAssociation:ConfigurationPolicyAssociation")
    assert association.inputs["targetId"] == "r-exam"
    aggregator = _one(sec, "aws:securityhub/findingAggregator:FindingAggregator")
    assert aggregator.inputs["linkingMode"] == "SPECIFIED_REGIONS"
    assert set(aggregator.inputs["specifiedRegions"]) == REGIONS - {"eu-west-1"}


def test_inspector_auto_enables_ec2_ecr_and_lambda_for_every_member(sec):
    for config in sec.of_type("aws:inspector2/organizationConfiguration:OrganizationConfiguration"):
        assert config.inputs["autoEnable"] == {"ec2": True, "ecr": True, "lambda": True, "lambdaCode": True}
    enablers = sec.of_type("aws:inspector2/enabler:Enabler")
    assert {e.inputs["region"] for e in enablers} == REGIONS
    for enabler in enablers:
        assert set(enabler.inputs["accountIds"]) == ESTATE - {MGMT}
        assert {"EC2", "ECR", "LAMBDA"} <= set(enabler.inputs["resourceTypes"])


def test_config_aggregator_and_access_analyzer_cover_the_organization(sec):
    aggregator = _one(sec, "aws:cfg/configurationAggregator:ConfigurationAggregator")
    assert aggregator.inputs["organizationAggregationSource"]["allRegions"] is True
    analyzers = {a.inputs["type"] for a in sec.of_type("aws:accessanalyzer/analyzer:Analyzer")}
    assert analyzers == {"ORGANIZATION", "ACCOUNT"}  # the account's own comes with its baseline


def test_conformance_packs_check_what_the_estate_promises():
    from cfnlint.api import ManualArgs, lint

    from components.lib.config_rules import baseline_rules, pack_template, workload_rules

    sources = {}
    for name, rules in (("bakehouse-baseline", baseline_rules()), ("bakehouse-workloads", workload_rules())):
        template = pack_template(rules)
        assert lint(template, config=ManualArgs(regions=["eu-west-1"])) == [], name
        declared = yaml.safe_load(template)["Resources"].values()
        sources[name] = {r["Properties"]["Source"]["SourceIdentifier"]: r["Properties"] for r in declared}
    baseline, workloads = sources["bakehouse-baseline"], sources["bakehouse-workloads"]
    assert {
        "ENCRYPTED_VOLUMES",
        "EC2_IMDSV2_CHECK",
        "S3_BUCKET_LEVEL_PUBLIC_ACCESS_PROHIBITED",
        "S3_ACCOUNT_LEVEL_PUBLIC_ACCESS_BLOCKS_PERIODIC",
        "MULTI_REGION_CLOUD_TRAIL_ENABLED",
    } <= set(baseline)
    assert {"EC2_INSTANCE_NO_PUBLIC_IP", "APPROVED_AMIS_BY_TAG"} <= set(workloads)
    assert workloads["APPROVED_AMIS_BY_TAG"]["InputParameters"] == {"amisByTagKeyAndValue": "bakehouse-approved:true"}


# --- flow-log analytics --------------------------------------------------------------------------


def test_flow_log_table_projects_the_layout_flow_logs_deliver(sec):
    table = _one(sec, "aws:glue/catalogTable:CatalogTable")
    params = table.inputs["parameters"]
    assert params["projection.enabled"] == "true"
    template = params["storage.location.template"]
    # A VPC flow log delivering to S3 writes AWSLogs/<account>/vpcflowlogs/<region>/<yyyy>/<MM>/<dd>/.
    filled = (
        template.replace("${source_account}", DEV).replace("${source_region}", "eu-central-1").replace("${day}", "2026/11/23")
    )
    assert filled == f"s3://bakehouse-flowlogs-{SECURITY}-eu-west-1/AWSLogs/{DEV}/vpcflowlogs/eu-central-1/2026/11/23"
    assert set(params["projection.source_account.values"].split(",")) == ESTATE
    assert set(params["projection.source_region.values"].split(",")) == REGIONS
    assert params["projection.day.format"] == "yyyy/MM/dd"
    columns = [c["name"] for c in table.inputs["storageDescriptor"]["columns"]]
    assert columns[:5] == ["version", "account_id", "interface_id", "srcaddr", "dstaddr"]
    assert columns[-2:] == ["action", "log_status"]
    assert {p["name"] for p in table.inputs["partitionKeys"]} == {"source_account", "source_region", "day"}


def test_rejected_traffic_query_reads_the_table_within_a_day_partition(sec):
    query = _one(sec, "aws:athena/namedQuery:NamedQuery")
    sql = query.inputs["query"]
    assert "FROM bakehouse_logs.vpc_flow_logs" in sql
    assert "action = 'REJECT'" in sql
    assert "day >=" in sql  # a partition filter keeps the scan to recent days
    workgroup = _one(sec, "aws:athena/workgroup:Workgroup").inputs["configuration"]
    assert workgroup["enforceWorkgroupConfiguration"] is True
    assert workgroup["resultConfiguration"]["encryptionConfiguration"]["encryptionOption"] == "SSE_KMS"


# --- config --------------------------------------------------------------------------------------


def test_bad_security_section_lists_every_problem_and_declares_nothing():
    bad = {
        "objectLockMode": "governance",
        "objectLockDays": 0,
        "glacierAfterDays": 0,
        "organizationRootId": "root",
        "alertEmails": ["nobody"],
        "lockMode": "x",
    }
    run = cached_run("security", overrides={"bakehouse:security": bad}, raise_errors=False)
    assert isinstance(run.error, ConfigError)
    message = str(run.error)
    for expected in (
        "bakehouse:security.objectLockMode is 'governance'",
        "bakehouse:security.objectLockDays is 0",
        "bakehouse:security.glacierAfterDays is 0",
        "bakehouse:security.organizationRootId is 'root'",
        "bakehouse:security.alertEmails",
        "bakehouse:security.lockMode",
    ):
        assert expected in message, expected
    assert [r for r in run.resources if not r.is_provider] == []


def test_expiry_shorter_than_the_lock_is_rejected():
    with pytest.raises(ConfigError, match="expireAfterDays is 100; allowed: at least objectLockDays"):
        cached_run("security", overrides={"bakehouse:security": {**SECTION, "expireAfterDays": 100}})
