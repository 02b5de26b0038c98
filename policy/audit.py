"""Audit trail and sharing: CloudTrail, Parameter Store secrets, SSM documents, AMIs, log groups."""

from __future__ import annotations

from collections.abc import Iterator

from .compute import SECRET_WORD
from .support import ADVISORY, UNKNOWN, Config, Res, get, resource_policy, str_list, truthy


def check_trail(res: Res, config: Config) -> Iterator[str]:
    checks = {
        "isMultiRegionTrail": "is not multi-region",
        "enableLogFileValidation": "does not validate log files (enableLogFileValidation)",
    }
    for key, problem in checks.items():
        value = res.get(key)
        if value is not UNKNOWN and truthy(value) is not True:
            yield f"trail {res.name} {problem}"
    key_id = res.get("kmsKeyId")
    if key_id is not UNKNOWN and not key_id:
        yield f"trail {res.name} is not encrypted with a customer-managed KMS key (kmsKeyId unset)"


def check_secure_string(res: Res, config: Config) -> Iterator[str]:
    name = res.get("name")
    label = name if isinstance(name, str) else res.name  # autonamed (or not yet known): the logical name
    kind = res.get("type")
    if SECRET_WORD.search(label) and kind is not UNKNOWN and kind != "SecureString":
        yield f"parameter {label} is named like a secret but is a {kind or 'String'}, not a SecureString"


def check_document_not_public(res: Res, config: Config) -> Iterator[str]:
    permissions = res.get("permissions")
    if permissions is UNKNOWN or permissions is None:
        return
    accounts = get(permissions, "accountIds")
    ids = [a.strip() for value in str_list(accounts) for a in value.split(",")]
    if any(a.lower() == "all" for a in ids):
        yield f"SSM document {res.name} is shared with every AWS account (accountIds: All)"


def check_ami_not_public(res: Res, config: Config) -> Iterator[str]:
    if str(res.get("group")).lower() == "all":
        yield f"launch permission {res.name} makes image {res.get('imageId')} public (group: all)"


def check_log_group(res: Res, config: Config) -> Iterator[str]:
    if res.get("kmsKeyId") is None:
        yield f"log group {res.name} is not encrypted with the account's KMS key"
    retention = res.get("retentionInDays")
    if retention is None or retention == 0:
        yield f"log group {res.name} keeps events forever (no retentionInDays)"


POLICIES = [
    resource_policy(
        "cloudtrail-multi-region-validated-kms",
        "CloudTrail trails are multi-region, validate log files and encrypt with a customer-managed KMS key.",
        "Set is_multi_region_trail, enable_log_file_validation and kms_key_id on the trail.",
        ("aws:cloudtrail/trail:Trail",),
        check_trail,
    ),
    resource_policy(
        "ssm-secret-parameters-secure-string",
        "Parameters named like a secret (password, token, key, secret, credential) are SecureString.",
        "Declare the parameter with type='SecureString' and key_id set to the account's KMS key.",
        ("aws:ssm/parameter:Parameter",),
        check_secure_string,
    ),
    resource_policy(
        "ssm-document-not-public",
        "SSM documents are never shared with all AWS accounts.",
        "Share with named account ids only (the estate's accounts), or not at all.",
        ("aws:ssm/document:Document",),
        check_document_not_public,
    ),
    resource_policy(
        "ami-not-public",
        "AMIs are never launch-permissioned to the group all.",
        "Grant launch permission to account ids or the organization ARN instead.",
        ("aws:ec2/amiLaunchPermission:AmiLaunchPermission",),
        check_ami_not_public,
    ),
    resource_policy(
        "log-group-encrypted-retained",
        "Advisory: log groups use the account KMS key and a retention period. Advisory because CloudWatch "
        "Logs already encrypts at rest with AWS keys and the right retention depends on the data; reviewers decide.",
        "Set kms_key_id to the account key and retention_in_days (e.g. 365).",
        ("aws:cloudwatch/logGroup:LogGroup",),
        check_log_group,
        level=ADVISORY,
    ),
]
