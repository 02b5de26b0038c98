"""Identity and keys: IAM policy wildcards, KMS key rotation."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import Any

from .support import (
    ADVISORY,
    UNKNOWN,
    Config,
    Res,
    as_list,
    get,
    resource_policy,
    statements,
    str_list,
)

# Actions whose "Resource types" column is empty in the AWS Service Authorization Reference: they
# accept only "Resource": "*", so a wildcard resource is the least privilege there. Patterns match
# case-insensitively; the pack config key `noResourceLevelActions` adds more without a release.
NO_RESOURCE_LEVEL = (
    "ec2:Describe*", "ec2:GetEbsEncryptionByDefault", "ec2:GetEbsDefaultKmsKeyId",
    "ec2:EnableEbsEncryptionByDefault", "ec2:ModifyEbsDefaultKmsKeyId", "ec2:DescribeImages",
    "autoscaling:Describe*", "elasticloadbalancing:Describe*",
    "ssm:DescribeParameters", "ssm:DescribeInstanceInformation", "ssm:DescribeAutomationExecutions",
    "ssm:ListCommands", "ssm:ListCommandInvocations", "ssm:ListDocuments", "ssm:DescribeSessions",
    "ssm:GetInventorySchema", "ssm:ListAssociations", "ssm:GetCommandInvocation",
    "cloudformation:ValidateTemplate",
    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel", "ec2messages:*",
    "s3:ListAllMyBuckets", "s3:GetAccountPublicAccessBlock", "s3:PutAccountPublicAccessBlock",
    "kms:CreateKey", "kms:ListKeys", "kms:ListAliases", "kms:GenerateRandom",
    "sts:GetCallerIdentity",
    "iam:ListRoles", "iam:ListPolicies", "iam:ListUsers", "iam:GetAccountSummary", "iam:ListAccountAliases",
    "iam:GetAccountPasswordPolicy", "iam:UpdateAccountPasswordPolicy", "iam:GenerateCredentialReport",
    "iam:GetCredentialReport",
    "logs:DescribeLogGroups", "logs:DescribeQueries", "logs:GetLogDelivery", "logs:ListLogDeliveries",
    "cloudwatch:PutMetricData", "cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics",
    "cloudwatch:ListMetrics", "cloudwatch:DescribeAlarmsForMetric",
    "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    "inspector2:ListFindings", "inspector2:ListCoverage", "inspector2:ListCoverageStatistics",
    "inspector2:BatchGetAccountStatus", "inspector2:CreateFindingsReport", "inspector2:GetFindingsReportStatus",
    "inspector2:ListFindingAggregations",
    "guardduty:ListDetectors", "securityhub:DescribeHub",
    "ecr:GetAuthorizationToken",
    "lambda:ListFunctions", "lambda:GetAccountSettings",
    "sns:ListTopics", "sqs:ListQueues",
    "cloudtrail:LookupEvents", "cloudtrail:DescribeTrails",
    "organizations:DescribeOrganization", "organizations:ListAccounts", "organizations:ListRoots",
    "servicecatalog:SearchProducts", "servicecatalog:SearchProductsAsAdmin", "servicecatalog:ListPortfolios",
    "servicecatalog:ScanProvisionedProducts", "servicecatalog:SearchProvisionedProducts",
    "servicecatalog:ListRecordHistory", "servicecatalog:CreatePortfolio", "servicecatalog:CreateProduct",
    "tag:GetResources", "tag:GetTagKeys", "tag:GetTagValues",
    "access-analyzer:ValidatePolicy", "pricing:GetProducts",
    # Service Catalog constraints have no resource type in the service authorization reference.
    "servicecatalog:DescribeConstraint", "servicecatalog:UpdateConstraint",
    "servicecatalog:ListConstraintsForPortfolio",
)
IDENTITY_POLICY_TYPES = {
    "aws:iam/policy:Policy": "policy",
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/userPolicy:UserPolicy": "policy",
    "aws:iam/groupPolicy:GroupPolicy": "policy",
}
ROLE = "aws:iam/role:Role"
# Resource policies: "*" in Resource there means the resource itself, so only a "*" action is judged.
RESOURCE_POLICY_TYPES = {
    "aws:s3/bucketPolicy:BucketPolicy": "policy",
    "aws:kms/key:Key": "policy",
    "aws:sns/topic:Topic": "policy",
    "aws:sns/topicPolicy:TopicPolicy": "policy",
    "aws:sqs/queue:Queue": "policy",
    "aws:sqs/queuePolicy:QueuePolicy": "policy",
    "aws:ecr/repositoryPolicy:RepositoryPolicy": "policy",
    "aws:secretsmanager/secretPolicy:SecretPolicy": "policy",
}
IAM_CONFIG = {
    "noResourceLevelActions": {"type": "array", "items": {"type": "string"}, "default": []},
}


def _documents(res: Res) -> list[tuple[str, Any, bool]]:
    """(label, document, is identity policy) for every policy document the resource carries."""
    if res.type in IDENTITY_POLICY_TYPES:
        return [("policy", res.get(IDENTITY_POLICY_TYPES[res.type]), True)]
    if res.type == ROLE:
        found = [("assume role policy", res.get("assumeRolePolicy"), False)]
        for inline in as_list(res.get("inlinePolicies")):
            found.append((f"inline policy {get(inline, 'name', default='?')}", get(inline, "policy"), True))
        return found
    if res.type in RESOURCE_POLICY_TYPES:
        return [("resource policy", res.get(RESOURCE_POLICY_TYPES[res.type]), False)]
    return []


def _matches(action: str, patterns: tuple[str, ...]) -> bool:
    lowered = action.lower()
    return any(lowered == p.lower() or fnmatch.fnmatchcase(lowered, p.lower()) for p in patterns)


def wildcard_problems(document: Any, identity: bool, extra_allowed: tuple[str, ...] = ()) -> list[str]:
    """What is too broad in a document's Allow statements; [] when fine or not yet known."""
    found = statements(document)
    if found is UNKNOWN:
        return []
    allowed = NO_RESOURCE_LEVEL + extra_allowed
    problems = []
    for index, stmt in enumerate(found):
        if stmt.get("Effect") != "Allow":
            continue
        sid = stmt.get("Sid") or f"#{index}"
        actions = str_list(stmt.get("Action"))
        if "*" in actions:
            problems.append(f"statement {sid} allows every action (Action: *)")
            continue
        if not identity:
            continue
        if stmt.get("NotAction") is not None:
            problems.append(f"statement {sid} allows everything but a list (Allow with NotAction)")
            continue
        everywhere = "*" in str_list(stmt.get("Resource")) or stmt.get("NotResource") is not None
        if everywhere:
            scoped = sorted(a for a in actions if not _matches(a, allowed))
            if scoped:
                problems.append(f"statement {sid} grants {', '.join(scoped)} on Resource * although "
                                "they support resource-level permissions")
    return problems


def check_iam_wildcards(res: Res, config: Config) -> Iterator[str]:
    extra = tuple(config.get("noResourceLevelActions") or ())
    for label, document, identity in _documents(res):
        for problem in wildcard_problems(document, identity, extra):
            yield f"{res.name} {label}: {problem}"


def check_service_wildcards(res: Res, config: Config) -> Iterator[str]:
    for label, document, identity in _documents(res):
        found = statements(document)
        if not identity or found is UNKNOWN:
            continue
        for index, stmt in enumerate(found):
            if stmt.get("Effect") != "Allow":
                continue
            broad = sorted(a for a in str_list(stmt.get("Action")) if a.endswith(":*"))
            if broad:
                yield (f"{res.name} {label}: statement {stmt.get('Sid') or index} allows {', '.join(broad)}; "
                       "name the actions the caller needs")


SYMMETRIC = "SYMMETRIC_DEFAULT"


def check_key_rotation(res: Res, config: Config) -> Iterator[str]:
    spec = res.get("customerMasterKeySpec") or res.get("keySpec") or SYMMETRIC
    if spec is UNKNOWN or spec != SYMMETRIC:
        return  # AWS rotates only symmetric encryption keys; asymmetric and HMAC keys cannot
    rotation = res.get("enableKeyRotation")
    if rotation is not UNKNOWN and rotation is not True:
        yield f"KMS key {res.name} does not rotate (enableKeyRotation is {rotation})"


def check_deletion_window(res: Res, config: Config) -> Iterator[str]:
    days = res.get("deletionWindowInDays")
    if isinstance(days, int | float) and days < 30:
        yield f"KMS key {res.name} can be deleted {int(days)} days after scheduling; 30 gives time to notice"


POLICIES = [
    resource_policy(
        "iam-no-wildcards",
        "IAM policies never allow Action *, nor Resource * on actions that support resource-level permissions.",
        "Name the actions and scope Resource to ARNs; keep * only for actions AWS cannot scope (say so in a comment).",
        (*IDENTITY_POLICY_TYPES, ROLE, *RESOURCE_POLICY_TYPES),
        check_iam_wildcards,
        config=IAM_CONFIG,
    ),
    resource_policy(
        "iam-service-wildcard-actions",
        "Advisory: identity policies allow a whole service (e.g. s3:*). Not mandatory because the resources "
        "may already be scoped tightly; whether the action list should shrink is a reviewer's call.",
        "List the actions the principal needs instead of service:*.",
        (*IDENTITY_POLICY_TYPES, ROLE),
        check_service_wildcards,
        level=ADVISORY,
    ),
    resource_policy(
        "kms-key-rotation",
        "Customer-managed symmetric KMS keys rotate automatically.",
        "Set enable_key_rotation=True (components.kms_key.KmsKey does).",
        ("aws:kms/key:Key",),
        check_key_rotation,
    ),
    resource_policy(
        "kms-key-deletion-window",
        "Advisory: KMS keys keep the longest deletion window (30 days). Not mandatory because a shorter "
        "window is a deliberate choice for short-lived keys; for data keys it is a week less to catch a mistake.",
        "Set deletion_window_in_days=30.",
        ("aws:kms/key:Key",),
        check_deletion_window,
        level=ADVISORY,
    ),
]
