"""The build account's roles, judged by evaluating their declared policy documents against real ARNs."""

from __future__ import annotations

import json

import pytest
import yaml

from components.build.image_factory import factory_documents
from tests.iam.evaluate import allowed  # IAM wildcard matching
from tests.iam.evaluate import wildcard_match as _wild
from tools.mockrun import StackRun

REGION, BUILD = "eu-west-1", "333333333333"
DEV, PROD, OUTSIDER = "444444444444", "666666666666", "999999999999"
INSTANCE = f"arn:aws:ec2:{REGION}:{BUILD}:instance/i-0123456789abcdef0"
IMAGE = f"arn:aws:ec2:{REGION}::image/ami-0123456789abcdef0"
COPY = "arn:aws:ec2:us-east-1::image/ami-0fedcba9876543210"
SNAPSHOT = "arn:aws:ec2:eu-central-1::snapshot/snap-0123456789abcdef0"
SCRIPTS = "arn:aws:s3:::bakehouse-scripts-333333333333-eu-west-1"
FACTORY_KEY = f"arn:aws:kms:{REGION}:{BUILD}:key/build-factory-key-key"
US_KEY = f"arn:aws:kms:us-east-1:{BUILD}:key/build-images-us-east-1-key"
ORG = "o-exampleorg01"
IN_WORKLOAD_OU = {"aws:ResourceOrgPaths": [f"{ORG}/r-exam/ou-ab12-wkld0001/"]}
IN_NESTED_WORKLOAD_OU = {"aws:ResourceOrgPaths": [f"{ORG}/r-exam/ou-ab12-wkld0001/ou-ab12-prod0001/"]}
IN_OTHER_ORG = {"aws:ResourceOrgPaths": ["o-other000001/r-exam/ou-ab12-wkld0001/"]}
OUTSIDE_WORKLOAD_OUS = {"aws:ResourceOrgPaths": [f"{ORG}/r-exam/ou-ab12-secu0001/"]}
# APIs without resource-level permissions: the only actions a Resource "*" may carry.
NO_RESOURCE_SCOPE = {
    "ec2:DescribeImages",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeSnapshots",
    "ec2:DescribeTags",
    "ec2:DescribeRegions",
    "ec2:Describe*",
    "ssm:DescribeInstanceInformation",
    "ssm:ListCommands",
    "ssm:ListCommandInvocations",
    "ssm:GetCommandInvocation",
    "ssm:DescribeAutomationExecutions",
    "inspector2:ListFindings",
    "inspector2:ListCoverage",
    "inspector2:CreateFindingsReport",
    "inspector2:GetFindingsReportStatus",
    "cloudformation:ValidateTemplate",
    "autoscaling:Describe*",
    "servicecatalog:DescribeConstraint",
    "servicecatalog:UpdateConstraint",
    "servicecatalog:ListConstraintsForPortfolio",
}


def policy_of(run: StackRun, role: str) -> dict:
    statements = []
    for rp in run.of_type("aws:iam/rolePolicy:RolePolicy"):
        if rp.inputs["role"] == role:
            statements += json.loads(rp.inputs["policy"])["Statement"]
    assert statements, f"no inline policy on {role}"
    return {"Version": "2012-10-17", "Statement": statements}


@pytest.fixture(scope="module")
def automation(stack_run):
    return policy_of(stack_run("build"), "BakehouseFactoryAutomation")


@pytest.mark.parametrize(
    "action, resource, context, expected",
    [
        # launching: only tagged factory instances, only into the build network
        ("ec2:RunInstances", f"arn:aws:ec2:{REGION}:{BUILD}:instance/*", {"aws:RequestTag/bakehouse:purpose": "build"}, True),
        ("ec2:RunInstances", f"arn:aws:ec2:{REGION}:{BUILD}:instance/*", {}, False),
        ("ec2:RunInstances", f"arn:aws:ec2:{REGION}:{BUILD}:instance/*", {"aws:RequestTag/bakehouse:purpose": "web"}, False),
        # (the mocks shape an ARN from the type and resource name, e.g. securitygroup/<name>)
        ("ec2:RunInstances", f"arn:aws:ec2:{REGION}:{BUILD}:subnet/build-network-build-eu-west-1a", {}, True),
        ("ec2:RunInstances", f"arn:aws:ec2:{REGION}:{BUILD}:subnet/build-network-egress-eu-west-1a", {}, False),
        ("ec2:RunInstances", f"arn:aws:ec2:{REGION}:{BUILD}:securitygroup/build-network-build-sg", {}, True),
        ("ec2:RunInstances", f"arn:aws:ec2:{REGION}:{BUILD}:security-group/sg-0other", {}, False),
        ("ec2:RunInstances", IMAGE, {"ec2:Owner": "amazon"}, True),
        ("ec2:RunInstances", IMAGE, {"ec2:Owner": "099720109477"}, True),
        ("ec2:RunInstances", IMAGE, {"ec2:Owner": OUTSIDER}, False),
        # touching instances: only the factory's
        ("ec2:TerminateInstances", INSTANCE, {"ec2:ResourceTag/bakehouse:purpose": "validation"}, True),
        ("ec2:TerminateInstances", INSTANCE, {}, False),
        ("ec2:StopInstances", INSTANCE, {"ec2:ResourceTag/bakehouse:purpose": "app"}, False),
        ("ec2:CreateImage", INSTANCE, {"ec2:ResourceTag/bakehouse:purpose": "build"}, True),
        ("ec2:ModifyInstanceAttribute", INSTANCE, {"ec2:ResourceTag/bakehouse:purpose": "build"}, False),
        # images: share and retire only those carrying a family, in the factory's regions
        ("ec2:ModifyImageAttribute", COPY, {"ec2:ResourceTag/bakehouse:family": "al2023-base"}, True),
        ("ec2:ModifyImageAttribute", COPY, {}, False),
        ("ec2:ModifySnapshotAttribute", SNAPSHOT, {"ec2:ResourceTag/bakehouse:family": "al2023-base"}, True),
        ("ec2:ModifySnapshotAttribute", SNAPSHOT, {}, True),  # snapshots carry no image tags
        ("ec2:DeleteSnapshot", "arn:aws:ec2:ap-south-1::snapshot/snap-1", {"ec2:ResourceTag/bakehouse:family": "x"}, False),
        ("ec2:CreateTags", IMAGE, {"aws:TagKeys": ["bakehouse:family", "bakehouse:commit"]}, True),
        ("ec2:CreateTags", IMAGE, {"aws:TagKeys": ["bakehouse:family", "Owner"]}, False),
        # roles it may pass or assume
        ("iam:PassRole", f"arn:aws:iam::{BUILD}:role/BakehouseBuildInstance", {"iam:PassedToService": "ec2.amazonaws.com"}, True),
        (
            "iam:PassRole",
            f"arn:aws:iam::{BUILD}:role/BakehouseBuildInstance",
            {"iam:PassedToService": "lambda.amazonaws.com"},
            False,
        ),
        ("iam:PassRole", f"arn:aws:iam::{BUILD}:role/BakehouseDeploy", {"iam:PassedToService": "ec2.amazonaws.com"}, False),
        (
            "iam:PassRole",
            f"arn:aws:iam::{BUILD}:role/BakehouseFactoryAutomation",
            {"iam:PassedToService": "ssm.amazonaws.com"},
            True,
        ),
        # The publisher and scanner roles by name, in accounts of the workload OUs (Pulumi.build.yaml's
        # workloadOus) of this organization, at any depth below them.
        ("sts:AssumeRole", f"arn:aws:iam::{DEV}:role/BakehouseImagePublisher", IN_WORKLOAD_OU, True),
        ("sts:AssumeRole", f"arn:aws:iam::{PROD}:role/BakehouseImageScanner", IN_NESTED_WORKLOAD_OU, True),
        ("sts:AssumeRole", f"arn:aws:iam::{PROD}:role/BakehouseBreakGlass", IN_WORKLOAD_OU, False),
        ("sts:AssumeRole", f"arn:aws:iam::{OUTSIDER}:role/BakehouseImagePublisher", IN_OTHER_ORG, False),
        ("sts:AssumeRole", f"arn:aws:iam::{OUTSIDER}:role/BakehouseImagePublisher", {}, False),
        ("sts:AssumeRole", "arn:aws:iam::222222222222:role/BakehouseImagePublisher", OUTSIDE_WORKLOAD_OUS, False),
        # SSM: the shell document on factory instances, its own documents, the image registry
        ("ssm:SendCommand", f"arn:aws:ssm:{REGION}::document/AWS-RunShellScript", {}, True),
        ("ssm:SendCommand", f"arn:aws:ssm:{REGION}::document/AWS-RunPowerShellScript", {}, False),
        ("ssm:SendCommand", INSTANCE, {"ssm:resourceTag/bakehouse:purpose": "rescan"}, True),
        ("ssm:SendCommand", INSTANCE, {}, False),
        (
            "ssm:StartAutomationExecution",
            f"arn:aws:ssm:{REGION}:{BUILD}:automation-definition/Bakehouse-BuildImage:$DEFAULT",
            {},
            True,
        ),
        (
            "ssm:StartAutomationExecution",
            f"arn:aws:ssm:{REGION}:{BUILD}:automation-definition/AWS-DeleteImage:$DEFAULT",
            {},
            False,
        ),
        ("ssm:PutParameter", f"arn:aws:ssm:{REGION}:{BUILD}:parameter/bakehouse/images/al2023-base/latest", {}, True),
        ("ssm:PutParameter", f"arn:aws:ssm:{REGION}:{BUILD}:parameter/bakehouse/factory/settings", {}, False),
        ("ssm:PutParameter", f"arn:aws:ssm:{REGION}:{BUILD}:parameter/bakehouse/prod/ami/al2023-base", {}, False),
        (
            "ssm:GetParameter",
            f"arn:aws:ssm:{REGION}::parameter/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
            {},
            True,
        ),
        (
            "ssm:GetParameter",
            f"arn:aws:ssm:{REGION}::parameter/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
            {},
            True,
        ),
        ("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{BUILD}:parameter/other/secret", {}, False),
        # data: read its scripts, write evidence, use its keys
        ("s3:GetObjectVersion", f"{SCRIPTS}/provisioning/bundle.tar.gz", {}, True),
        ("s3:PutObject", f"{SCRIPTS}/provisioning/bundle.tar.gz", {}, False),
        ("s3:GetObject", "arn:aws:s3:::someone-elses-bucket/x", {}, False),
        ("s3:PutObject", "arn:aws:s3:::bakehouse-evidence-222222222222-eu-west-1/factory/ami-1/findings.json", {}, False),
        ("s3:PutObject", "arn:aws:s3:::bakehouse-findings-333333333333-eu-west-1/al2023-base/ami-1.json", {}, True),
        ("s3:DeleteObject", "arn:aws:s3:::bakehouse-findings-333333333333-eu-west-1/al2023-base/ami-1.json", {}, False),
        ("s3:GetEncryptionConfiguration", "arn:aws:s3:::bakehouse-findings-333333333333-eu-west-1", {}, True),
        ("ec2:DescribeSnapshotAttribute", SNAPSHOT, {}, True),
        ("kms:Decrypt", US_KEY, {}, True),
        ("kms:CreateGrant", FACTORY_KEY, {"kms:GrantIsForAWSResource": "true"}, True),
        ("kms:CreateGrant", FACTORY_KEY, {"kms:GrantIsForAWSResource": "false"}, False),
        ("kms:ScheduleKeyDeletion", FACTORY_KEY, {}, False),
        ("sns:Publish", "arn:aws:sns:eu-west-1:222222222222:bakehouse-security", {}, True),
        ("sns:Publish", "arn:aws:sns:eu-west-1:333333333333:random-topic", {}, False),
        (
            "kms:GenerateDataKey",
            "arn:aws:kms:eu-west-1:222222222222:key/k",
            {"kms:ViaService": "sns.eu-west-1.amazonaws.com"},
            True,
        ),
        ("kms:Decrypt", "arn:aws:kms:eu-west-1:222222222222:key/k", {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}, False),
        (
            "kms:GenerateDataKey",
            "arn:aws:kms:eu-west-1:444444444444:key/k",
            {"kms:ViaService": "sns.eu-west-1.amazonaws.com"},
            False,
        ),
        ("inspector2:ListFindings", "*", {"aws:RequestedRegion": REGION}, True),
        ("inspector2:ListFindings", "*", {"aws:RequestedRegion": "ap-south-1"}, False),
        ("iam:CreateRole", f"arn:aws:iam::{BUILD}:role/Anything", {}, False),
    ],
)
def test_automation_role_may_do_exactly_what_the_factory_needs(automation, action, resource, context, expected):
    assert allowed(automation, action, resource, context) is expected


def test_automation_role_wildcard_resources_only_for_apis_without_resource_scope(stack_run):
    for role in (
        "BakehouseFactoryAutomation",
        "BakehouseBuildInstance",
        "BakehouseFactoryScheduler",
        "BakehouseImageLifecycle",
        "BakehouseCatalogLaunch",
    ):
        for stmt in policy_of(stack_run("build"), role)["Statement"]:
            actions = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
            assert not any(a == "*" or a.endswith(":*") for a in actions), f"{role} {stmt['Sid']}"
            if "*" in stmt.get("Resource", []):
                assert set(actions) <= NO_RESOURCE_SCOPE, f"{role} {stmt['Sid']}: {set(actions) - NO_RESOURCE_SCOPE}"
                assert stmt.get("Condition"), f"{role} {stmt['Sid']}: a '*' resource needs a condition"


@pytest.mark.parametrize(
    "role, service",
    [
        ("BakehouseFactoryAutomation", "ssm.amazonaws.com"),
        ("BakehouseBuildInstance", "ec2.amazonaws.com"),
        ("BakehouseFactoryScheduler", "scheduler.amazonaws.com"),
        ("BakehouseImageLifecycle", "lambda.amazonaws.com"),
        ("BakehouseCatalogLaunch", "servicecatalog.amazonaws.com"),
    ],
)
def test_each_role_trusts_only_its_service_from_this_account(stack_run, role, service):
    (declared,) = [r for r in stack_run("build").of_type("aws:iam/role:Role") if r.inputs["name"] == role]
    (trust,) = json.loads(declared.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Principal"] == {"Service": service} and trust["Action"] == ["sts:AssumeRole"]
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": BUILD}}


def test_build_instances_read_scripts_and_write_build_logs_only(stack_run):
    policy = policy_of(stack_run("build"), "BakehouseBuildInstance")
    assert allowed(policy, "s3:GetObject", f"{SCRIPTS}/provisioning/bundle.tar.gz")
    assert not allowed(policy, "s3:PutObject", f"{SCRIPTS}/provisioning/bundle.tar.gz")
    assert allowed(
        policy, "logs:PutLogEvents", f"arn:aws:logs:{REGION}:{BUILD}:log-group:/bakehouse/build/al2023-base:log-stream:i-1"
    )
    assert not allowed(policy, "logs:PutLogEvents", f"arn:aws:logs:{REGION}:{BUILD}:log-group:/aws/lambda/x:log-stream:1")
    key = f"arn:aws:kms:{REGION}:{BUILD}:key/build-key-key"
    assert allowed(policy, "kms:Decrypt", key, {"kms:ViaService": f"s3.{REGION}.amazonaws.com"})
    assert not allowed(policy, "kms:Decrypt", key, {})


def test_scheduler_starts_only_the_rescan_and_queues_only_lifecycle_runs(stack_run):
    policy = policy_of(stack_run("build"), "BakehouseFactoryScheduler")
    definition = f"arn:aws:ssm:{REGION}:{BUILD}:automation-definition/"
    assert allowed(policy, "ssm:StartAutomationExecution", definition + "Bakehouse-RescanImages:$DEFAULT")
    assert not allowed(policy, "ssm:StartAutomationExecution", definition + "Bakehouse-Pipeline:$DEFAULT")
    automation_role = f"arn:aws:iam::{BUILD}:role/BakehouseFactoryAutomation"
    assert allowed(policy, "iam:PassRole", automation_role, {"iam:PassedToService": "ssm.amazonaws.com"})
    assert not allowed(policy, "iam:PassRole", automation_role, {"iam:PassedToService": "ec2.amazonaws.com"})
    assert not allowed(
        policy, "iam:PassRole", f"arn:aws:iam::{BUILD}:role/BakehouseDeploy", {"iam:PassedToService": "ssm.amazonaws.com"}
    )
    queue = f"arn:aws:sqs:{REGION}:{BUILD}:queue/build-schedules-lifecycle-queue"
    assert allowed(policy, "sqs:SendMessage", queue)
    assert not allowed(policy, "sqs:SendMessage", f"arn:aws:sqs:{REGION}:{BUILD}:queue/other")
    # Runs go through the FIFO queue only, so they can never overlap.
    assert not allowed(policy, "lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{BUILD}:function/build-schedules-lifecycle")


def test_lifecycle_function_reads_only_its_own_queue(stack_run):
    policy = policy_of(stack_run("build"), "BakehouseImageLifecycle")
    queue = f"arn:aws:sqs:{REGION}:{BUILD}:queue/build-schedules-lifecycle-queue"
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert allowed(policy, action, queue)
        assert not allowed(policy, action, f"arn:aws:sqs:{REGION}:{BUILD}:queue/other")
    assert allowed(policy, "kms:Decrypt", FACTORY_KEY, {"kms:ViaService": f"sqs.{REGION}.amazonaws.com"})


def test_lifecycle_function_retires_only_factory_images(stack_run):
    policy = policy_of(stack_run("build"), "BakehouseImageLifecycle")
    family = {"ec2:ResourceTag/bakehouse:family": "al2023-base"}
    assert allowed(policy, "ec2:EnableImageDeprecation", IMAGE, family)
    assert allowed(policy, "ec2:DeregisterImage", COPY, family)
    assert allowed(policy, "ec2:DeleteSnapshot", SNAPSHOT, family)
    assert not allowed(policy, "ec2:DeregisterImage", IMAGE, {})
    assert not allowed(policy, "ec2:DeregisterImage", "arn:aws:ec2:ap-south-1::image/ami-1", family)
    assert not allowed(policy, "ssm:PutParameter", f"arn:aws:ssm:{REGION}:{BUILD}:parameter/bakehouse/images/x/latest")
    assert not allowed(policy, "ec2:TerminateInstances", INSTANCE, {})


def test_catalog_launch_role_launches_only_imdsv2_instances_with_encrypted_volumes(stack_run):
    policy = policy_of(stack_run("build"), "BakehouseCatalogLaunch")
    instance = f"arn:aws:ec2:{REGION}:{BUILD}:instance/*"
    volume = f"arn:aws:ec2:{REGION}:{BUILD}:volume/*"
    assert allowed(policy, "ec2:RunInstances", instance, {"ec2:MetadataHttpTokens": "required"})
    assert not allowed(policy, "ec2:RunInstances", instance, {"ec2:MetadataHttpTokens": "optional"})
    assert allowed(policy, "ec2:RunInstances", volume, {"ec2:Encrypted": "true"})
    assert not allowed(policy, "ec2:RunInstances", volume, {"ec2:Encrypted": "false"})
    app_role = f"arn:aws:iam::{BUILD}:role/bakehouse/app/bakehouse-dev-app"
    assert allowed(policy, "iam:PassRole", app_role, {"iam:PassedToService": "ec2.amazonaws.com"})
    assert not allowed(policy, "iam:PassRole", app_role, {"iam:PassedToService": "lambda.amazonaws.com"})
    assert not allowed(
        policy, "iam:PassRole", f"arn:aws:iam::{BUILD}:role/BakehouseDeploy", {"iam:PassedToService": "ec2.amazonaws.com"}
    )


# What each SSM Automation action calls on the automation role's behalf.
PLUGIN_ACTIONS = {
    "aws:runInstances": ("ec2:RunInstances", "ec2:CreateTags", "ec2:DescribeInstances", "iam:PassRole"),
    "aws:createImage": ("ec2:CreateImage", "ec2:DescribeImages"),
    "aws:createTags": ("ec2:CreateTags",),
    "aws:changeInstanceState": ("ec2:StopInstances", "ec2:TerminateInstances", "ec2:DescribeInstanceStatus"),
    "aws:runCommand": ("ssm:SendCommand", "ssm:ListCommands", "ssm:ListCommandInvocations"),
    "aws:executeAutomation": ("ssm:StartAutomationExecution", "ssm:GetAutomationExecution"),
    "aws:approve": ("sns:Publish",),
}
API_STEPS = ("aws:executeAwsApi", "aws:waitForAwsResourceProperty", "aws:assertAwsResourceProperty")
# APIs authorized by an action of another name (S3 API reference, HeadObject: "you must have the
# s3:GetObject permission", s3:GetObjectVersion when the request names a versionId).
API_ACTIONS = {"s3:HeadObject": "s3:GetObjectVersion"}


def _grants_action(policy: dict, action: str) -> bool:
    return any(
        stmt["Effect"] == "Allow" and any(_wild(p, action, case_sensitive=False) for p in stmt["Action"])
        for stmt in policy["Statement"]
    )


def test_automation_role_is_granted_every_call_the_factory_documents_make(automation):
    missing = set()
    for stem, text in factory_documents().items():
        for step in yaml.safe_load(text).get("mainSteps", []):
            inputs = step.get("inputs") or {}
            if step["action"] in API_STEPS:
                api = f"{inputs['Service']}:{inputs['Api']}"
                needed = (API_ACTIONS.get(api, api),)
            else:
                needed = PLUGIN_ACTIONS.get(step["action"], ())
            missing |= {(stem, step["name"], a) for a in needed if not _grants_action(automation, a)}
            if step["action"] == "aws:runCommand":
                document = f"arn:aws:ssm:{REGION}::document/{inputs['DocumentName']}"
                assert allowed(automation, "ssm:SendCommand", document), (stem, step["name"], document)
    assert not missing, sorted(missing)
