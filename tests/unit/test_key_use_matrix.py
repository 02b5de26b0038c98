"""The key-use matrix: every use the estate depends on, evaluated against the key policy that governs it.

Each stack's real program runs under the mocks; every aws:kms/key:Key's policy is read from the run
and each row below is put to the one IAM evaluator through tests/iam/key_policy.py (the key in the
stack's account, the key policy alone and with an IAM policy that allows everything).
Expectations:
- "direct": the key policy alone must allow it. Service principals and service-linked roles need
  this: a service-linked role gets nothing from IAM delegation (its policy is AWS's and names no
  customer key), and a service principal has no IAM policy at all.
- "with_iam": the key policy may delegate to the caller's account; the caller's IAM policy completes it.
- "denied": not allowed, even with an IAM policy that allows everything.
A row that fails because of a key declared in a file another helper owns is xfail(strict=True) with
its owner, so the suite stays green and flips when the fix lands.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.iam.key_policy import Caller, evaluate

REGION, OTHER_REGION = "eu-west-1", "eu-central-1"
ORG_ID = "o-exampleorg01"
MGMT, SECURITY, BUILD = "111111111111", "222222222222", "333333333333"
WORKLOADS = {"dev": "444444444444", "uat": "555555555555", "prod": "666666666666"}
ACCOUNTS = {"org": MGMT, "security": SECURITY, "build": BUILD, **WORKLOADS}
STRANGER = "999999999999"  # an account outside the organization
# Services acting for a member account's resource carry aws:SourceOrgID; a workload account's principals
# carry its place in the organization (Pulumi.build.yaml's workloadOus, under the example root).
IN_ORG, FROM_STRANGER = {"aws:SourceOrgID": ORG_ID}, {"aws:SourceOrgID": "o-stranger"}
IN_WORKLOAD_OU = {"aws:PrincipalOrgID": ORG_ID, "aws:PrincipalOrgPaths": [f"{ORG_ID}/r-exam/ou-ab12-wkld0001/"]}
TRAIL_ARN = f"arn:aws:cloudtrail:{REGION}:{MGMT}:trail/bakehouse-organization"


def role(account: str, name: str) -> Caller:
    return Caller(f"arn:aws:iam::{account}:role/{name}")


def service(name: str) -> Caller:
    return Caller(name, service=True)


def slr_autoscaling(account: str) -> Caller:
    return Caller(f"arn:aws:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling")


def via(svc: str, region: str = REGION) -> dict[str, str]:
    return {"kms:ViaService": f"{svc}.{region}.amazonaws.com"}


@dataclass(frozen=True)
class Use:
    what: str
    stack: str
    key: str  # resource name of the aws:kms/key:Key in that stack's run
    caller: Caller
    actions: tuple[str, ...]
    context: dict[str, Any] = field(default_factory=dict)
    expect: str = "direct"  # direct | with_iam | denied
    owner: str | None = None  # set when the row waits on another helper's fix (xfail strict)


def _account_key_rows() -> list[Use]:
    rows = []
    for stack, account in ACCOUNTS.items():
        key = f"{stack}-key-key"
        deploy = role(account, "BakehouseDeploy")
        rows += [
            Use("deploy role uploads SSE-KMS objects", stack, key, deploy, ("kms:GenerateDataKey", "kms:Decrypt"), via("s3")),
            Use(
                "deploy role writes SecureString parameters",
                stack,
                key,
                deploy,
                ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt"),
                via("ssm"),
            ),
            Use(
                "CloudWatch Logs encrypts this account's log groups",
                stack,
                key,
                service(f"logs.{REGION}.amazonaws.com"),
                ("kms:GenerateDataKey", "kms:Decrypt"),
                {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{REGION}:{account}:log-group:/bakehouse/x"},
            ),
            Use(
                "deploy role may not use data keys directly",
                stack,
                key,
                deploy,
                ("kms:Decrypt", "kms:GenerateDataKey"),
                expect="denied",
            ),
            Use(
                "CloudWatch Logs may not encrypt another account's log groups",
                stack,
                key,
                service(f"logs.{REGION}.amazonaws.com"),
                ("kms:GenerateDataKey",),
                {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{REGION}:{STRANGER}:log-group:x"},
                expect="denied",
            ),
        ]
    return rows


def _log_archive_rows() -> list[Use]:
    trail, config = "security-archive-trail-key-key", "security-archive-config-key-key"
    flowlogs, evidence = "security-archive-flowlogs-key-key", "security-archive-evidence-key-key"
    sessions, alerts = "security-archive-sessions-key-key", "security-alerts-key-key"
    dev = WORKLOADS["dev"]
    return [
        Use(
            "CloudTrail encrypts the organization trail",
            "security",
            trail,
            service("cloudtrail.amazonaws.com"),
            ("kms:GenerateDataKey",),
            {"aws:SourceArn": TRAIL_ARN, "kms:EncryptionContext:aws:cloudtrail:arn": TRAIL_ARN},
        ),
        Use(
            "CloudTrail describes the trail key",
            "security",
            trail,
            service("cloudtrail.amazonaws.com"),
            ("kms:DescribeKey",),
            {"aws:SourceArn": TRAIL_ARN},
        ),
        Use(
            "another account's trail may not use the trail key",
            "security",
            trail,
            service("cloudtrail.amazonaws.com"),
            ("kms:GenerateDataKey",),
            {
                "aws:SourceArn": f"arn:aws:cloudtrail:{REGION}:{STRANGER}:trail/t",
                "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:{REGION}:{STRANGER}:trail/t",
            },
            expect="denied",
        ),
        *[
            Use(
                f"Config delivers for {env}",
                "security",
                config,
                service("config.amazonaws.com"),
                ("kms:GenerateDataKey",),
                {"aws:SourceAccount": account, **IN_ORG},
            )
            for env, account in ACCOUNTS.items()
        ],
        Use(
            "Config may not deliver for a stranger",
            "security",
            config,
            service("config.amazonaws.com"),
            ("kms:GenerateDataKey",),
            {"aws:SourceAccount": STRANGER, **FROM_STRANGER},
            expect="denied",
        ),
        Use(
            "VPC flow logs deliver from a workload",
            "security",
            flowlogs,
            service("delivery.logs.amazonaws.com"),
            ("kms:GenerateDataKey",),
            {"aws:SourceAccount": dev, "aws:SourceArn": f"arn:aws:logs:{REGION}:{dev}:*", **IN_ORG},
        ),
        Use(
            "VPC flow logs may not deliver for a stranger",
            "security",
            flowlogs,
            service("delivery.logs.amazonaws.com"),
            ("kms:GenerateDataKey",),
            {"aws:SourceAccount": STRANGER, "aws:SourceArn": f"arn:aws:logs:{REGION}:{STRANGER}:*", **FROM_STRANGER},
            expect="denied",
        ),
        Use(
            "security analysts read archived logs through S3",
            "security",
            trail,
            role(SECURITY, "BakehouseReadOnly"),
            ("kms:Decrypt",),
            via("s3"),
            expect="with_iam",
        ),
        Use(
            "workload playbooks write evidence through S3",
            "security",
            evidence,
            role(dev, "BakehouseIncidentAutomation"),
            ("kms:GenerateDataKey",),
            {**via("s3"), "aws:PrincipalOrgID": ORG_ID},
            expect="with_iam",
        ),
        Use(
            "workload sessions write logs through S3",
            "security",
            sessions,
            role(dev, "bakehouse/app/web"),
            ("kms:GenerateDataKey",),
            {**via("s3"), "aws:PrincipalOrgID": ORG_ID},
            expect="with_iam",
        ),
        # The isolation playbook copies the instance's snapshots re-encrypted under the evidence key, from the
        # workload account, in the key's region (EBS: "Copy an Amazon EBS snapshot", cross-account keys).
        Use(
            "workload playbooks copy snapshots under the evidence key through EC2",
            "security",
            evidence,
            role(dev, "BakehouseIsolateInstanceAutomation"),
            (
                "kms:CreateGrant",
                "kms:DescribeKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:ReEncryptTo",
                "kms:ReEncryptFrom",
                "kms:Decrypt",
            ),
            {**via("ec2"), "aws:PrincipalOrgID": ORG_ID, "kms:GrantIsForAWSResource": "true"},
            expect="with_iam",
        ),
        Use(
            "workload roles may not grant on the evidence key for anything but EBS",
            "security",
            evidence,
            role(dev, "BakehouseIsolateInstanceAutomation"),
            ("kms:CreateGrant",),
            {"aws:PrincipalOrgID": ORG_ID, "kms:GrantIsForAWSResource": "false"},
            expect="denied",
        ),
        Use(
            "a stranger may not write evidence",
            "security",
            evidence,
            role(STRANGER, "Anything"),
            ("kms:GenerateDataKey",),
            {**via("s3"), "aws:PrincipalOrgID": "o-stranger"},
            expect="denied",
        ),
        Use(
            "EventBridge publishes findings to the security topic",
            "security",
            alerts,
            service("events.amazonaws.com"),
            ("kms:GenerateDataKey", "kms:Decrypt"),
            {"aws:SourceAccount": SECURITY, **IN_ORG},
        ),
        Use(
            "CloudWatch alarms publish to the security topic",
            "security",
            alerts,
            service("cloudwatch.amazonaws.com"),
            ("kms:GenerateDataKey", "kms:Decrypt"),
            {"aws:SourceAccount": dev, **IN_ORG},
        ),
        Use(
            "workload playbooks publish through SNS",
            "security",
            alerts,
            role(dev, "BakehouseIncidentAutomation"),
            ("kms:GenerateDataKey", "kms:Decrypt"),
            {**via("sns"), "aws:PrincipalOrgID": ORG_ID},
            expect="with_iam",
        ),
        Use(
            "EventBridge from a stranger may not publish",
            "security",
            alerts,
            service("events.amazonaws.com"),
            ("kms:GenerateDataKey",),
            {"aws:SourceAccount": STRANGER, **FROM_STRANGER},
            expect="denied",
        ),
    ]


def _factory_rows() -> list[Use]:
    factory, copies = "build-factory-key-key", f"build-images-{OTHER_REGION}-key"
    dev = WORKLOADS["dev"]
    automation = role(BUILD, "BakehouseFactoryAutomation")
    launch_grant = {"kms:GrantIsForAWSResource": "true", **via("ec2")}
    asg_grant = {
        "kms:GranteePrincipal": slr_autoscaling(dev).arn,
        **IN_WORKLOAD_OU,
        "kms:GrantOperations": [
            "Decrypt",
            "DescribeKey",
            "ReEncryptFrom",
            "ReEncryptTo",
            "GenerateDataKeyWithoutPlaintext",
            "CreateGrant",
        ],
    }
    packer = "build-packer-key-key"
    return [
        Use(
            "the Packer build encrypts its artifacts and pushes the twin",
            "build",
            packer,
            role(BUILD, "BakehousePackerBuild"),
            ("kms:GenerateDataKey", "kms:Decrypt"),
        ),
        Use(
            "the Packer pipeline reads and writes its artifacts",
            "build",
            packer,
            role(BUILD, "BakehousePackerPipeline"),
            ("kms:GenerateDataKey", "kms:Decrypt"),
        ),
        Use(
            "CloudWatch Logs encrypts the Packer build log",
            "build",
            packer,
            service("logs.eu-west-1.amazonaws.com"),
            ("kms:GenerateDataKey", "kms:Decrypt"),
            {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{REGION}:{BUILD}:log-group:/bakehouse/packer"},
        ),
        Use(
            "EventBridge publishes twin scan results",
            "build",
            packer,
            service("events.amazonaws.com"),
            ("kms:GenerateDataKey", "kms:Decrypt"),
            {"aws:SourceAccount": BUILD},
        ),
        Use(
            "the deployer lets ECR hold a grant for the twin repository",
            "build",
            packer,
            role(BUILD, "BakehouseDeploy"),
            ("kms:CreateGrant", "kms:DescribeKey"),
            {**via("ecr"), "kms:CallerAccount": BUILD},
        ),
        Use(
            "a workload role may not use the Packer key",
            "build",
            packer,
            role(WORKLOADS["dev"], "Anything"),
            ("kms:Decrypt",),
            {"aws:PrincipalOrgID": ORG_ID},
            expect="denied",
        ),
        Use(
            "EventBridge publishes to the factory topics",
            "build",
            factory,
            service("events.amazonaws.com"),
            ("kms:GenerateDataKey", "kms:Decrypt"),
            {"aws:SourceAccount": BUILD},
        ),
        Use(
            "the factory automation launches build instances (EBS grant)",
            "build",
            factory,
            automation,
            ("kms:CreateGrant",),
            launch_grant,
        ),
        Use(
            "the factory automation encrypts image snapshots",
            "build",
            factory,
            automation,
            ("kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt", "kms:DescribeKey"),
            via("ec2"),
        ),
        Use(
            "a workload launches from the shared image",
            "build",
            factory,
            role(dev, "BakehouseCatalogLaunch"),
            ("kms:Decrypt", "kms:ReEncryptFrom", "kms:DescribeKey"),
            {**via("ec2"), **IN_WORKLOAD_OU},
            expect="with_iam",
        ),
        Use(
            "a workload creates the EBS grant for its instance",
            "build",
            factory,
            role(dev, "BakehouseCatalogLaunch"),
            ("kms:CreateGrant",),
            {**launch_grant, **IN_WORKLOAD_OU},
            expect="with_iam",
        ),
        Use(
            "a workload grants its Auto Scaling role the image key",
            "build",
            factory,
            role(dev, "BakehouseDeploy"),
            ("kms:CreateGrant",),
            asg_grant,
            expect="with_iam",
        ),
        Use(
            "a workload grants its Auto Scaling role a regional copy's key",
            "build",
            copies,
            role(dev, "BakehouseDeploy"),
            ("kms:CreateGrant",),
            asg_grant,
            expect="with_iam",
        ),
        Use(
            "a workload launches from a regional copy",
            "build",
            copies,
            role(dev, "BakehouseCatalogLaunch"),
            ("kms:Decrypt", "kms:DescribeKey"),
            {**via("ec2", OTHER_REGION), **IN_WORKLOAD_OU},
            expect="with_iam",
        ),
        Use(
            "a workload may not grant the image key to any other principal",
            "build",
            factory,
            role(dev, "BakehouseDeploy"),
            ("kms:CreateGrant",),
            {**asg_grant, "kms:GranteePrincipal": f"arn:aws:iam::{dev}:role/Anything"},
            expect="denied",
        ),
        Use(
            "a stranger may not launch from the shared image",
            "build",
            factory,
            role(STRANGER, "Anything"),
            ("kms:Decrypt",),
            {**via("ec2"), "aws:PrincipalOrgID": "o-stranger", "aws:PrincipalOrgPaths": ["o-stranger/r-exam/ou-ab12-wkld0001/"]},
            expect="denied",
        ),
        Use(
            "an account of the organization outside the workload OUs may not launch from the shared image",
            "build",
            factory,
            role(MGMT, "Anything"),
            ("kms:Decrypt",),
            {**via("ec2"), "aws:PrincipalOrgID": ORG_ID, "aws:PrincipalOrgPaths": [f"{ORG_ID}/r-exam/"]},
            expect="denied",
        ),
    ]


def _workload_rows() -> list[Use]:
    rows = []
    for env, account in WORKLOADS.items():
        key = f"{env}-key-key"
        ebs = {**via("ec2"), "kms:CallerAccount": account}
        rows += [
            Use(
                "the catalog launch role attaches encrypted volumes",
                env,
                key,
                role(account, "BakehouseCatalogLaunch"),
                ("kms:CreateGrant", "kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt"),
                {**ebs, "kms:GrantIsForAWSResource": "true"},
                expect="with_iam",
            ),
            Use(
                "Auto Scaling launches instances with encrypted volumes",
                env,
                key,
                slr_autoscaling(account),
                ("kms:CreateGrant", "kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt", "kms:DescribeKey", "kms:ReEncryptFrom"),
                {**ebs, "kms:GrantIsForAWSResource": "true"},
            ),
            Use(
                "app roles read their secrets through SSM",
                env,
                key,
                role(account, "bakehouse/app/web"),
                ("kms:Decrypt",),
                via("ssm"),
                expect="with_iam",
            ),
            Use(
                "app roles may not decrypt outside SSM and sessions",
                env,
                key,
                role(account, "bakehouse/app/web"),
                ("kms:Decrypt",),
                expect="denied",
            ),
            Use(
                "another workload may not use this account's EBS key",
                env,
                key,
                role(WORKLOADS["prod" if env != "prod" else "dev"], "BakehouseCatalogLaunch"),
                ("kms:Decrypt",),
                {**via("ec2")},
                expect="denied",
            ),
        ]
    return rows


MATRIX = [*_account_key_rows(), *_log_archive_rows(), *_factory_rows(), *_workload_rows()]


def _params():
    for use in MATRIX:
        marks = [pytest.mark.xfail(strict=True, reason=f"owner: {use.owner}")] if use.owner else []
        yield pytest.param(use, id=f"{use.stack}:{use.key}:{use.what}", marks=marks)


_MOCK_ROLE_ARN = re.compile(r"arn:aws:iam:[a-z0-9-]+:(\d{12}):role/([\w+=,.@-]+)")


def _key_policy(run, name: str) -> dict[str, Any]:
    """The key's policy as AWS would hold it: the mocks name a role by its resource name (and a
    region); AWS by the role's path and name, which is what the matrix's callers carry."""
    roles = {r.name: r.inputs for r in run.of_type("aws:iam/role:Role")}

    def real(match: re.Match) -> str:
        inputs = roles.get(match.group(2))
        if inputs is None or "name" not in inputs:
            return match.group(0)
        return f"arn:aws:iam::{match.group(1)}:role{inputs.get('path', '/')}{inputs['name']}"

    return json.loads(_MOCK_ROLE_ARN.sub(real, run.named(name).inputs["policy"]))


@pytest.mark.parametrize("use", list(_params()))
def test_key_use_matrix(use: Use, stack_run):
    policy = _key_policy(stack_run(use.stack), use.key)
    for action in use.actions:
        verdict = evaluate(
            policy,
            use.caller,
            action,
            use.context,
            key_account=ACCOUNTS[use.stack],
            region=OTHER_REGION if OTHER_REGION in use.key else REGION,
        )
        label = f"{use.what}: {use.caller.arn} {action} -> {verdict.decision} {verdict.sids}"
        if use.expect == "direct":
            assert verdict.allowed, label
        elif use.expect == "with_iam":
            assert verdict.allowed_with_iam, label
        else:
            assert not verdict.allowed_with_iam, label


def test_every_key_the_estate_declares_has_a_row(stack_run):
    covered = {(use.stack, use.key) for use in MATRIX}
    declared = {(stack, key.name) for stack in ACCOUNTS for key in stack_run(stack).of_type("aws:kms/key:Key")}
    # One regional copy key stands for the others: their policies are built by the same function.
    copies = {(s, k) for s, k in declared if k.startswith("build-images-") and k != f"build-images-{OTHER_REGION}-key"}
    assert declared - copies - covered == set(), "keys with no use in the matrix"
