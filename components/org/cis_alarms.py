"""CIS AWS Foundations Benchmark 3.0 section 4: metric filters on the organization trail's log group
and an alarm for each, notifying the security topic.

The filters live in the account that owns the log group (management: organization trails deliver to
CloudWatch Logs there); the alarms publish across accounts to the security account's topic, whose
policy admits CloudWatch from this account.

Patterns follow the benchmark's intent, with one correction: CIS 4.1 as printed joins every term
with `||`, so its `!=` terms match almost any event. Here the two error codes are grouped and the
exclusions are required with `&&`. Every mix of `&&` and `||` is parenthesised, so no reading of
operator precedence changes what a pattern means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

NAMESPACE = "Bakehouse/CIS"
PATTERN_MAX_CHARS = 1024  # CloudWatch Logs limit on a metric filter pattern


def _any_event(*names: str) -> str:
    return "(" + " || ".join(f'($.eventName = "{n}")' for n in names) + ")"


def _braced(expression: str) -> str:
    return "{ " + expression + " }"


@dataclass(frozen=True)
class CisControl:
    control: str  # CIS 3.0 recommendation number
    key: str  # stable logical name: metric, filter and alarm names derive from it
    title: str
    pattern: str


CIS_CONTROLS: tuple[CisControl, ...] = (
    CisControl(
        "4.1",
        "unauthorized-api-calls",
        "Unauthorized API calls",
        '{ (($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*")) && '
        '($.sourceIPAddress != "delivery.logs.amazonaws.com") && ($.eventName != "HeadBucket") }',
    ),
    CisControl(
        "4.2",
        "console-login-without-mfa",
        "Management console sign-in without MFA",
        '{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") && '
        '($.userIdentity.type = "IAMUser") && ($.responseElements.ConsoleLogin = "Success") }',
    ),
    CisControl(
        "4.3",
        "root-account-usage",
        "Usage of the root account",
        '{ ($.userIdentity.type = "Root") && ($.userIdentity.invokedBy NOT EXISTS) && ($.eventType != "AwsServiceEvent") }',
    ),
    CisControl(
        "4.4",
        "iam-policy-changes",
        "IAM policy changes",
        '{ ($.eventSource = "iam.amazonaws.com") && '
        + _any_event(
            "DeleteGroupPolicy",
            "DeleteRolePolicy",
            "DeleteUserPolicy",
            "PutGroupPolicy",
            "PutRolePolicy",
            "PutUserPolicy",
            "CreatePolicy",
            "DeletePolicy",
            "CreatePolicyVersion",
            "DeletePolicyVersion",
            "SetDefaultPolicyVersion",
            "AttachRolePolicy",
            "DetachRolePolicy",
            "AttachUserPolicy",
            "DetachUserPolicy",
            "AttachGroupPolicy",
            "DetachGroupPolicy",
        )
        + " }",
    ),
    CisControl(
        "4.5",
        "cloudtrail-changes",
        "CloudTrail configuration changes",
        '{ ($.eventSource = "cloudtrail.amazonaws.com") && '
        + _any_event("CreateTrail", "UpdateTrail", "DeleteTrail", "StartLogging", "StopLogging", "PutEventSelectors")
        + " }",
    ),
    CisControl(
        "4.6",
        "console-auth-failures",
        "Management console authentication failures",
        '{ ($.eventName = "ConsoleLogin") && ($.errorMessage = "Failed authentication") }',
    ),
    CisControl(
        "4.7",
        "cmk-disable-or-deletion",
        "Disabling or scheduled deletion of customer-managed keys",
        '{ ($.eventSource = "kms.amazonaws.com") && ' + _any_event("DisableKey", "ScheduleKeyDeletion") + " }",
    ),
    CisControl(
        "4.8",
        "s3-bucket-policy-changes",
        "S3 bucket policy changes",
        '{ ($.eventSource = "s3.amazonaws.com") && '
        + _any_event(
            "PutBucketAcl",
            "PutBucketPolicy",
            "PutBucketCors",
            "PutBucketLifecycle",
            "PutBucketReplication",
            "DeleteBucketPolicy",
            "DeleteBucketCors",
            "DeleteBucketLifecycle",
            "DeleteBucketReplication",
            "PutBucketPublicAccessBlock",
            "DeleteBucketPublicAccessBlock",
        )
        + " }",
    ),
    CisControl(
        "4.9",
        "config-changes",
        "AWS Config configuration changes",
        '{ ($.eventSource = "config.amazonaws.com") && '
        + _any_event(
            "StopConfigurationRecorder",
            "DeleteDeliveryChannel",
            "PutDeliveryChannel",
            "PutConfigurationRecorder",
            "DeleteConfigurationRecorder",
        )
        + " }",
    ),
    CisControl(
        "4.10",
        "security-group-changes",
        "Security group changes",
        _braced(
            _any_event(
                "AuthorizeSecurityGroupIngress",
                "AuthorizeSecurityGroupEgress",
                "RevokeSecurityGroupIngress",
                "RevokeSecurityGroupEgress",
                "CreateSecurityGroup",
                "DeleteSecurityGroup",
                "ModifySecurityGroupRules",
            )
        ),
    ),
    CisControl(
        "4.11",
        "nacl-changes",
        "Network ACL changes",
        _braced(
            _any_event(
                "CreateNetworkAcl",
                "CreateNetworkAclEntry",
                "DeleteNetworkAcl",
                "DeleteNetworkAclEntry",
                "ReplaceNetworkAclEntry",
                "ReplaceNetworkAclAssociation",
            )
        ),
    ),
    CisControl(
        "4.12",
        "network-gateway-changes",
        "Network gateway changes",
        _braced(
            _any_event(
                "CreateCustomerGateway",
                "DeleteCustomerGateway",
                "AttachInternetGateway",
                "CreateInternetGateway",
                "DeleteInternetGateway",
                "DetachInternetGateway",
                "CreateNatGateway",
                "DeleteNatGateway",
                "CreateTransitGateway",
                "DeleteTransitGateway",
            )
        ),
    ),
    CisControl(
        "4.13",
        "route-table-changes",
        "Route table changes",
        '{ ($.eventSource = "ec2.amazonaws.com") && '
        + _any_event(
            "CreateRoute",
            "CreateRouteTable",
            "ReplaceRoute",
            "ReplaceRouteTableAssociation",
            "DeleteRouteTable",
            "DeleteRoute",
            "DisassociateRouteTable",
        )
        + " }",
    ),
    CisControl(
        "4.14",
        "vpc-changes",
        "VPC changes",
        _braced(
            _any_event(
                "CreateVpc",
                "DeleteVpc",
                "ModifyVpcAttribute",
                "AcceptVpcPeeringConnection",
                "CreateVpcPeeringConnection",
                "DeleteVpcPeeringConnection",
                "RejectVpcPeeringConnection",
                "AttachClassicLinkVpc",
                "DetachClassicLinkVpc",
                "DisableVpcClassicLink",
                "EnableVpcClassicLink",
            )
        ),
    ),
    CisControl(
        "4.15",
        "organizations-changes",
        "AWS Organizations changes",
        '{ ($.eventSource = "organizations.amazonaws.com") && '
        + _any_event(
            "AcceptHandshake",
            "AttachPolicy",
            "CreateAccount",
            "CreateOrganizationalUnit",
            "CreatePolicy",
            "DeclineHandshake",
            "DeleteOrganization",
            "DeleteOrganizationalUnit",
            "DeletePolicy",
            "DetachPolicy",
            "DisablePolicyType",
            "EnablePolicyType",
            "InviteAccountToOrganization",
            "LeaveOrganization",
            "MoveAccount",
            "RemoveAccountFromOrganization",
            "UpdatePolicy",
            "UpdateOrganizationalUnit",
        )
        + " }",
    ),
)


def role_use_controls(break_glass_role: str, access_role: str) -> tuple[CisControl, ...]:
    """Alarms on the use of roles nobody should use routinely, from any account and any region.

    The organization trail is multi-region and covers every account, so one filter on its log group
    sees an AssumeRole made through any regional STS endpoint (CloudTrail records it in that region)
    and every call made with the resulting session (its sessionIssuer names the role). A leading `*`
    matches any account id in the role ARN (CloudWatch Logs User Guide, "Using filter patterns to
    match terms in JSON log events").
    """

    def use_of(role: str) -> str:
        return (
            '{ (($.eventSource = "sts.amazonaws.com") && ($.eventName = "AssumeRole") && '
            f'($.requestParameters.roleArn = "*:role/{role}")) || '
            f'($.userIdentity.sessionContext.sessionIssuer.userName = "{role}") }}'
        )

    return (
        CisControl("BH.1", "break-glass-use", f"Break-glass role {break_glass_role} assumed or used", use_of(break_glass_role)),
        CisControl(
            "BH.2", "organization-access-role-use", f"Organization access role {access_role} assumed or used", use_of(access_role)
        ),
    )


@dataclass(frozen=True)
class CisAlarmsArgs:
    log_group_name: pulumi.Input[str]
    topic_arn: str
    controls: Sequence[CisControl] = CIS_CONTROLS

    def __post_init__(self) -> None:
        keys = [c.key for c in self.controls]
        if len(set(keys)) != len(keys):
            raise ValueError("CIS controls repeat a key")
        for c in self.controls:
            if len(c.pattern) > PATTERN_MAX_CHARS:
                raise ValueError(
                    f"CIS {c.control} pattern is {len(c.pattern)} characters; CloudWatch Logs allows {PATTERN_MAX_CHARS}"
                )


class CisAlarms(pulumi.ComponentResource):
    """One metric filter and one alarm per control; an alarm fires on the first matching event."""

    def __init__(self, name: str, args: CisAlarmsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:org:CisAlarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.alarms: dict[str, aws.cloudwatch.MetricAlarm] = {}
        for c in args.controls:
            metric = "".join(part.capitalize() for part in c.key.split("-"))
            metric_filter = aws.cloudwatch.LogMetricFilter(
                f"{name}-{c.key}",
                name=f"cis-{c.control}-{c.key}",
                log_group_name=args.log_group_name,
                pattern=c.pattern,
                metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                    name=metric, namespace=NAMESPACE, value="1", unit="Count"
                ),
                opts=child,
            )
            self.alarms[c.key] = aws.cloudwatch.MetricAlarm(
                f"{name}-{c.key}",
                name=f"bakehouse-cis-{c.control}-{c.key}",
                alarm_description=f"CIS {c.control}: {c.title}",
                namespace=NAMESPACE,
                metric_name=metric,
                statistic="Sum",
                period=300,
                evaluation_periods=1,
                threshold=1,
                comparison_operator="GreaterThanOrEqualToThreshold",
                # No matching events means nothing happened, not that data is missing.
                treat_missing_data="notBreaching",
                alarm_actions=[args.topic_arn],
                ok_actions=[],
                opts=child.merge(pulumi.ResourceOptions(depends_on=[metric_filter])),
            )
        self.register_outputs({"alarm_names": [a.name for a in self.alarms.values()]})
