"""Revocation of one instance's role sessions, leaving every other instance of the role alone.

EC2 puts `ec2:SourceInstanceARN` in the request context of every request signed with credentials it
delivered to an instance, wherever they are used from (IAM user guide, "AWS global condition context
keys", cross-service keys; "Disabling permissions for temporary security credentials"). A deny on
that key in the role's own policy kills the stolen credentials of this instance only; the other
instances sharing the role keep working. The statement lists every instance revoked so far, so two
findings on two instances of one role both hold.

Only roles on the app path (components/workload/app_access.APP_ROLE_PATH) may be changed by the playbook's
role. An instance with any other profile is recorded as foreign, for responders to handle by hand,
and the playbook goes on.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from handlers.common import AwsClient
from handlers.isolate_evidence import Step

REVOKE_POLICY = "BakehouseRevokeIsolatedInstances"
REVOKE_SID = "DenyIsolatedInstanceSessions"
APP_PROFILE_PATH = "/bakehouse/app/"
_DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


def _profile_path_and_name(profile_arn: str) -> tuple[str, str]:
    resource = profile_arn.split(":", 5)[-1]  # instance-profile/<path>/<name>
    path_and_name = resource.split("/", 1)[1] if "/" in resource else resource
    path, _, name = path_and_name.rpartition("/")
    return f"/{path}/" if path else "/", name


def _current(iam: AwsClient, role: str) -> dict[str, Any] | None:
    try:
        document = iam.get_role_policy(RoleName=role, PolicyName=REVOKE_POLICY)["PolicyDocument"]
    except iam.exceptions.NoSuchEntityException:
        return None
    policy: dict[str, Any] = json.loads(document) if isinstance(document, str) else document
    return policy


def revocation_document(current: dict[str, Any] | None, instance_arn: str) -> dict[str, Any] | None:
    """The role's revocation policy with this instance added; None when it is already there."""
    arns: list[str] = []
    for statement in (current or {}).get("Statement", []):
        if statement.get("Sid") == REVOKE_SID:
            listed = statement["Condition"]["ArnEquals"]["ec2:SourceInstanceARN"]
            arns = [listed] if isinstance(listed, str) else list(listed)
    if instance_arn in arns:
        return None
    # Action and Resource are "*": a deny covering whatever the role can do, for this instance only.
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": REVOKE_SID,
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"ArnEquals": {"ec2:SourceInstanceARN": sorted([*arns, instance_arn])}},
            }
        ],
    }


def revoke_role_sessions(iam: AwsClient, request: Any, instance: dict[str, Any], at: datetime) -> Step:
    profile_arn = instance.get("IamInstanceProfile", {}).get("Arn")
    if not profile_arn:
        return Step("revoke-role-sessions", False, {"reason": "no instance profile"})
    path, name = _profile_path_and_name(profile_arn)
    foreign = {
        "foreign_profile": profile_arn,
        "reason": f"outside {APP_PROFILE_PATH}: the playbook may not change its role; revoke by hand",
    }
    if path != APP_PROFILE_PATH:
        return Step("revoke-role-sessions", False, foreign)
    try:
        roles = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"]
    except ClientError as err:
        if err.response["Error"]["Code"] in _DENIED:
            return Step("revoke-role-sessions", False, foreign)
        raise
    changed = []
    for role in roles:
        document = revocation_document(_current(iam, role["RoleName"]), request.instance_arn)
        if document is not None:
            iam.put_role_policy(RoleName=role["RoleName"], PolicyName=REVOKE_POLICY, PolicyDocument=json.dumps(document))
            changed.append(role["RoleName"])
    return Step(
        "revoke-role-sessions",
        bool(changed),
        {"roles": [r["RoleName"] for r in roles], "instance_arn": request.instance_arn, "at": at.strftime("%Y-%m-%dT%H:%M:%SZ")},
    )
