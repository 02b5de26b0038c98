"""The audited way in when automation is not enough: responders only, with MFA, one hour, and an
alarm to the security topic every time it is used."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from estate.naming import BREAK_GLASS_ROLE, RESPONDER_ROLE, role_arn

from ..lib.iam import document, statement

MAX_SESSION_SECONDS = 3600
# Break-glass exists for when the scoped roles are not enough (including broken IAM); anything
# narrower would defeat it. Use is bounded instead: MFA, one hour, responders only, alarmed.
BREAK_GLASS_POLICY_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
# The security topic's key (components/security/security_topic.py); publishers need it to encrypt messages.
SECURITY_TOPIC_KEY_ALIAS = "alias/bakehouse-security-alerts"


def topic_key_statement(security_account_id: str, home_region: str) -> dict:
    """Use of the security topic's key, named by alias (its id is not known here), only through SNS."""
    return statement(
        "EncryptForSecurityTopic",
        ["kms:GenerateDataKey*", "kms:Decrypt"],
        [f"arn:aws:kms:{home_region}:{security_account_id}:key/*"],
        conditions={
            "ForAnyValue:StringEquals": {"kms:ResourceAliases": SECURITY_TOPIC_KEY_ALIAS},
            "StringEquals": {"kms:ViaService": f"sns.{home_region}.amazonaws.com"},
        },
    )


@dataclass(frozen=True)
class BreakGlassArgs:
    account_id: str
    security_account_id: str
    organization_id: str
    security_topic_arn: str
    home_region: str
    region: str  # where the stack (and the rule that alarms) runs
    # The STS global endpoint records AssumeRole in us-east-1; a provider there lets a rule forward
    # those events to this region's bus. None when the stack already runs in us-east-1.
    global_events_provider: pulumi.ProviderResource | None = None


def trust_statements(args: BreakGlassArgs) -> list[dict]:
    return [
        statement(
            "SecurityAccountRespondersWithMfa",
            ["sts:AssumeRole"],
            principals={"AWS": role_arn(args.security_account_id, RESPONDER_ROLE)},
            conditions={
                "Bool": {"aws:MultiFactorAuthPresent": "true"},
                "NumericLessThan": {"aws:MultiFactorAuthAge": str(MAX_SESSION_SECONDS)},
                "StringEquals": {"aws:PrincipalOrgID": args.organization_id},
            },
        )
    ]


def assume_role_pattern(break_glass_arn: str) -> str:
    """CloudTrail's record of AssumeRole on the break-glass role, as EventBridge sees it."""
    return json.dumps(
        {
            "source": ["aws.sts"],
            "detail-type": ["AWS API Call via CloudTrail"],
            "detail": {
                "eventSource": ["sts.amazonaws.com"],
                "eventName": ["AssumeRole"],
                "requestParameters": {"roleArn": [break_glass_arn]},
            },
        },
        sort_keys=True,
    )


def publish_to_topic_role(name: str, args: BreakGlassArgs, child: pulumi.ResourceOptions) -> aws.iam.Role:
    """EventBridge delivers to the security account's topic with this role: a cross-account target
    needs an execution role, and must be in the rule's region (workload stacks run in the home region)."""
    account_id, topic_arn = args.account_id, args.security_topic_arn
    role = aws.iam.Role(
        name,
        description="EventBridge: publish security alarms to the central security topic",
        assume_role_policy=document(
            statement(
                "TrustEventBridgeFromThisAccount",
                ["sts:AssumeRole"],
                principals={"Service": "events.amazonaws.com"},
                conditions={"StringEquals": {"aws:SourceAccount": account_id}},
            )
        ),
        max_session_duration=3600,
        opts=child,
    )
    aws.iam.RolePolicy(
        f"{name}-policy",
        role=role.id,
        policy=document(
            statement("PublishToSecurityTopic", ["sns:Publish"], [topic_arn]),
            topic_key_statement(args.security_account_id, args.home_region),
        ),
        opts=child,
    )
    return role


class BreakGlass(pulumi.ComponentResource):
    def __init__(self, name: str, args: BreakGlassArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:workload:BreakGlass", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.arn_known = role_arn(args.account_id, BREAK_GLASS_ROLE)
        self.role = aws.iam.Role(
            f"{name}-role",
            name=BREAK_GLASS_ROLE,
            max_session_duration=MAX_SESSION_SECONDS,
            description="Bakehouse break-glass: security-account responders with MFA, 1 hour, alarmed on use",
            assume_role_policy=document(*trust_statements(args)),
            opts=child,
        )
        aws.iam.RolePolicyAttachment(f"{name}-access", role=self.role.name, policy_arn=BREAK_GLASS_POLICY_ARN, opts=child)

        alarm_role = publish_to_topic_role(f"{name}-alarm-delivery", args, child)
        self.rule = aws.cloudwatch.EventRule(
            f"{name}-used",
            name="bakehouse-break-glass-used",
            description="Break-glass role assumed: alarm the security topic",
            event_pattern=assume_role_pattern(self.arn_known),
            # CloudTrail marks AssumeRole read-only; EventBridge delivers those only to rules in this state.
            state="ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-used-alarm",
            rule=self.rule.name,
            arn=args.security_topic_arn,
            role_arn=alarm_role.arn,
            input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                input_paths={
                    "who": "$.detail.userIdentity.arn",
                    "when": "$.time",
                    "account": "$.account",
                    "source_ip": "$.detail.sourceIPAddress",
                },
                input_template='"BREAK-GLASS USED in account <account> by <who> from <source_ip> at <when>"',
            ),
            opts=child,
        )
        if args.global_events_provider is not None:
            self._forward_global_endpoint_events(name, args, child)
        self.register_outputs({"role_arn": self.role.arn, "rule": self.rule.name})

    def _forward_global_endpoint_events(self, name: str, args: BreakGlassArgs, child: pulumi.ResourceOptions) -> None:
        """AssumeRole through sts.amazonaws.com (the global endpoint) lands in us-east-1: forward it to
        this region's default bus, where the rule above matches it like any local one."""
        bus = f"arn:aws:events:{args.region}:{args.account_id}:event-bus/default"
        forward_role = aws.iam.Role(
            f"{name}-global-forward",
            description="EventBridge: forward us-east-1 break-glass events home",
            assume_role_policy=document(
                statement(
                    "TrustEventBridgeFromThisAccount",
                    ["sts:AssumeRole"],
                    principals={"Service": "events.amazonaws.com"},
                    conditions={"StringEquals": {"aws:SourceAccount": args.account_id}},
                )
            ),
            max_session_duration=3600,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-global-forward-policy",
            role=forward_role.id,
            policy=document(statement("PutToHomeBus", ["events:PutEvents"], [bus])),
            opts=child,
        )
        in_us_east_1 = child.merge(pulumi.ResourceOptions(provider=args.global_events_provider))
        self.global_rule = aws.cloudwatch.EventRule(
            f"{name}-used-global-endpoint",
            name="bakehouse-break-glass-used-global-endpoint",
            description=f"Break-glass AssumeRole via the STS global endpoint: forward to {args.region}",
            event_pattern=assume_role_pattern(self.arn_known),
            state="ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
            opts=in_us_east_1,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-used-global-endpoint-forward",
            rule=self.global_rule.name,
            arn=bus,
            role_arn=forward_role.arn,
            opts=in_us_east_1,
        )
