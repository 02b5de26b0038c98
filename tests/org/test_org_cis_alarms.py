"""CIS 3.0 section 4 alarms: each metric filter pattern, as declared, is parsed and run against sample
CloudTrail events that must and must not trigger it.

The evaluator covers the CloudWatch Logs JSON filter-pattern subset the estate uses: `{ ... }`,
`$.a.b` selectors, `=` / `!=` with quoted or bare values and `*` wildcards, `NOT EXISTS` / `EXISTS`,
`&&`, `||` and parentheses. It refuses `&&` and `||` mixed without parentheses, so no pattern can
depend on a precedence reading.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from components.org.cis_alarms import CIS_CONTROLS, NAMESPACE, PATTERN_MAX_CHARS

SECURITY_TOPIC = "arn:aws:sns:eu-west-1:222222222222:bakehouse-security"
TOKEN = re.compile(r'\s*(\{|\}|\(|\)|&&|\|\||!=|=|NOT EXISTS|EXISTS|\$[\w.\[\]]*|"(?:[^"\\]|\\.)*"|[^\s(){}=!&|"]+)')


# --- the evaluator ---------------------------------------------------------------------------------


def tokenize(pattern: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(pattern.rstrip()):
        match = TOKEN.match(pattern, pos)
        if not match:
            raise ValueError(f"cannot read pattern at {pattern[pos : pos + 20]!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


class Parser:
    def __init__(self, pattern: str):
        self.tokens = tokenize(pattern)
        self.pos = 0

    def take(self, expected: str | None = None) -> str:
        token = self.tokens[self.pos]
        if expected is not None and token != expected:
            raise ValueError(f"expected {expected!r}, found {token!r}")
        self.pos += 1
        return token

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def parse(self):
        self.take("{")
        tree = self.expr()
        self.take("}")
        if self.peek() is not None:
            raise ValueError("text after the closing brace")
        return tree

    def expr(self):
        terms, joiner = [self.term()], None
        while self.peek() in ("&&", "||"):
            op = self.take()
            if joiner is not None and op != joiner:
                raise ValueError("&& and || mixed without parentheses")
            joiner = op
            terms.append(self.term())
        return terms[0] if joiner is None else ("and" if joiner == "&&" else "or", terms)

    def term(self):
        if self.peek() == "(":
            self.take("(")
            inner = self.expr()
            self.take(")")
            return inner
        selector = self.take()
        if not selector.startswith("$."):
            raise ValueError(f"expected a $. selector, found {selector!r}")
        op = self.take()
        if op in ("NOT EXISTS", "EXISTS"):
            return (op, selector, None)
        if op not in ("=", "!="):
            raise ValueError(f"unsupported operator {op!r}")
        value = self.take()
        return (op, selector, value[1:-1] if value.startswith('"') else value)


def _lookup(event: dict[str, Any], selector: str) -> tuple[bool, Any]:
    node: Any = event
    for part in selector[2:].split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _wildcard(value: str, actual: Any) -> bool:
    regex = ".*".join(re.escape(piece) for piece in value.split("*"))
    return re.fullmatch(regex, str(actual)) is not None


def evaluate(tree, event: dict[str, Any]) -> bool:
    kind = tree[0]
    if kind == "and":
        return all(evaluate(t, event) for t in tree[1])
    if kind == "or":
        return any(evaluate(t, event) for t in tree[1])
    op, selector, value = tree
    present, actual = _lookup(event, selector)
    if op == "NOT EXISTS":
        return not present
    if op == "EXISTS":
        return present
    if not present:  # a comparison on an absent property never matches
        return False
    return _wildcard(value, actual) if op == "=" else not _wildcard(value, actual)


def matches(pattern: str, event: dict[str, Any]) -> bool:
    return evaluate(Parser(pattern).parse(), event)


# --- sample CloudTrail events ----------------------------------------------------------------------


def event(name: str, source: str, **extra: Any) -> dict[str, Any]:
    base = {
        "eventVersion": "1.09",
        "eventName": name,
        "eventSource": source,
        "eventType": "AwsApiCall",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "203.0.113.7",
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::444444444444:assumed-role/app/s"},
    }
    for key, value in extra.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) and key in base else value
    return base


def ec2(name: str, **extra: Any) -> dict[str, Any]:
    return event(name, "ec2.amazonaws.com", **extra)


ROOT = {"type": "Root", "arn": "arn:aws:iam::444444444444:root"}
IAM_USER = {"type": "IAMUser", "arn": "arn:aws:iam::444444444444:user/alice"}

# control -> (events that must trigger it, events that must not)
SAMPLES: dict[str, tuple[list[dict], list[dict]]] = {
    "4.1": (
        [
            ec2("RunInstances", errorCode="Client.UnauthorizedOperation"),
            event("GetObject", "s3.amazonaws.com", errorCode="AccessDenied"),
        ],
        [
            event("HeadBucket", "s3.amazonaws.com", errorCode="AccessDenied"),
            event("PutObject", "s3.amazonaws.com", errorCode="AccessDenied", sourceIPAddress="delivery.logs.amazonaws.com"),
            ec2("DescribeInstances"),
            event("GetObject", "s3.amazonaws.com", errorCode="NoSuchKey"),
        ],
    ),
    "4.2": (
        [
            event(
                "ConsoleLogin",
                "signin.amazonaws.com",
                userIdentity=IAM_USER,
                additionalEventData={"MFAUsed": "No"},
                responseElements={"ConsoleLogin": "Success"},
            )
        ],
        [
            event(
                "ConsoleLogin",
                "signin.amazonaws.com",
                userIdentity=IAM_USER,
                additionalEventData={"MFAUsed": "Yes"},
                responseElements={"ConsoleLogin": "Success"},
            ),
            event(
                "ConsoleLogin",
                "signin.amazonaws.com",
                userIdentity=IAM_USER,
                additionalEventData={"MFAUsed": "No"},
                responseElements={"ConsoleLogin": "Failure"},
            ),
        ],
    ),
    "4.3": (
        [
            event("ListBuckets", "s3.amazonaws.com", userIdentity=ROOT),
            event("ConsoleLogin", "signin.amazonaws.com", userIdentity=ROOT),
        ],
        [
            event("ListBuckets", "s3.amazonaws.com", userIdentity={**ROOT, "invokedBy": "support.amazonaws.com"}),
            event("Decrypt", "kms.amazonaws.com", userIdentity=ROOT, eventType="AwsServiceEvent"),
            event("ListBuckets", "s3.amazonaws.com"),
        ],
    ),
    "4.4": (
        [
            event("PutRolePolicy", "iam.amazonaws.com"),
            event("AttachUserPolicy", "iam.amazonaws.com"),
            event("CreatePolicyVersion", "iam.amazonaws.com"),
        ],
        [
            event("GetRolePolicy", "iam.amazonaws.com"),
            event("CreateRole", "iam.amazonaws.com"),
            event("PutRolePolicy", "sso.amazonaws.com"),
        ],
    ),
    "4.5": (
        [event("StopLogging", "cloudtrail.amazonaws.com"), event("UpdateTrail", "cloudtrail.amazonaws.com")],
        [event("LookupEvents", "cloudtrail.amazonaws.com"), event("DescribeTrails", "cloudtrail.amazonaws.com")],
    ),
    "4.6": (
        [event("ConsoleLogin", "signin.amazonaws.com", errorMessage="Failed authentication")],
        [
            event("ConsoleLogin", "signin.amazonaws.com", responseElements={"ConsoleLogin": "Success"}),
            event("GetSigninToken", "signin.amazonaws.com", errorMessage="Failed authentication"),
        ],
    ),
    "4.7": (
        [event("DisableKey", "kms.amazonaws.com"), event("ScheduleKeyDeletion", "kms.amazonaws.com")],
        [event("Decrypt", "kms.amazonaws.com"), event("EnableKey", "kms.amazonaws.com")],
    ),
    "4.8": (
        [
            event("PutBucketPolicy", "s3.amazonaws.com"),
            event("DeleteBucketPolicy", "s3.amazonaws.com"),
            event("PutBucketAcl", "s3.amazonaws.com"),
        ],
        [event("GetBucketPolicy", "s3.amazonaws.com"), event("PutObject", "s3.amazonaws.com")],
    ),
    "4.9": (
        [event("StopConfigurationRecorder", "config.amazonaws.com"), event("DeleteDeliveryChannel", "config.amazonaws.com")],
        [event("DescribeConfigurationRecorders", "config.amazonaws.com"), event("PutEvaluations", "config.amazonaws.com")],
    ),
    "4.10": (
        [ec2("AuthorizeSecurityGroupIngress"), ec2("DeleteSecurityGroup")],
        [ec2("DescribeSecurityGroups"), ec2("CreateTags")],
    ),
    "4.11": ([ec2("CreateNetworkAclEntry"), ec2("ReplaceNetworkAclAssociation")], [ec2("DescribeNetworkAcls")]),
    "4.12": (
        [ec2("CreateInternetGateway"), ec2("AttachInternetGateway"), ec2("CreateCustomerGateway")],
        [ec2("DescribeInternetGateways")],
    ),
    "4.13": (
        [ec2("CreateRoute"), ec2("ReplaceRouteTableAssociation"), ec2("DisassociateRouteTable")],
        [ec2("DescribeRouteTables"), event("CreateRoute", "apigateway.amazonaws.com")],
    ),
    "4.14": (
        [ec2("CreateVpc"), ec2("ModifyVpcAttribute"), ec2("AcceptVpcPeeringConnection")],
        [ec2("DescribeVpcs"), ec2("CreateSubnet")],
    ),
    "4.15": (
        [
            event("CreateAccount", "organizations.amazonaws.com"),
            event("DetachPolicy", "organizations.amazonaws.com"),
            event("LeaveOrganization", "organizations.amazonaws.com"),
        ],
        [event("DescribeOrganization", "organizations.amazonaws.com"), event("AttachPolicy", "iam.amazonaws.com")],
    ),
}

# Everyday traffic: none of it may page the security team.
BACKGROUND = [
    ec2("DescribeInstances"),
    event("GetObject", "s3.amazonaws.com"),
    event("AssumeRole", "sts.amazonaws.com"),
    event("PutLogEvents", "logs.amazonaws.com"),
    event("HeadBucket", "s3.amazonaws.com", errorCode="AccessDenied"),
    event("Decrypt", "kms.amazonaws.com", userIdentity={"type": "AWSService", "invokedBy": "s3.amazonaws.com"}),
]


@pytest.fixture(scope="module")
def declared(stack_run):
    run = stack_run("org")
    filters = {r.inputs["name"]: r for r in run.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")}
    alarms = {r.inputs["metricName"]: r for r in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    return filters, alarms


def test_cis_alarms_cover_all_fourteen_events(declared):
    filters, alarms = declared
    by_control = {name.split("-")[1]: f for name, f in filters.items()}
    assert set(SAMPLES) <= set(by_control), f"missing CIS controls: {set(SAMPLES) - set(by_control)}"
    assert len(by_control) >= 14
    for control, (triggers, quiet) in SAMPLES.items():
        metric_filter = by_control[control]
        pattern = metric_filter.inputs["pattern"]
        assert metric_filter.inputs["logGroupName"] == "/bakehouse/cloudtrail/organization"
        for sample in triggers:
            assert matches(pattern, sample), f"CIS {control} misses {sample['eventName']}"
        for sample in quiet + BACKGROUND:
            assert not matches(pattern, sample), f"CIS {control} fires on {sample['eventName']}"
        transformation = metric_filter.inputs["metricTransformation"]
        alarm = alarms[transformation["name"]]
        assert transformation["namespace"] == NAMESPACE == alarm.inputs["namespace"]
        assert alarm.inputs["alarmActions"] == [SECURITY_TOPIC]
        assert alarm.inputs["threshold"] == 1 and alarm.inputs["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm.inputs["treatMissingData"] == "notBreaching"


def test_cis_patterns_fit_cloudwatch_limits_and_group_every_mixed_operator():
    for control in CIS_CONTROLS:
        assert len(control.pattern) <= PATTERN_MAX_CHARS
        Parser(control.pattern).parse()  # raises on && and || mixed without parentheses


def test_the_printed_cis_4_1_pattern_would_fire_on_ordinary_traffic_and_ours_does_not():
    printed = (
        '{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") || '
        '($.sourceIPAddress != "delivery.logs.amazonaws.com") || ($.eventName != "HeadBucket") }'
    )
    ordinary = ec2("DescribeInstances")
    assert matches(printed, ordinary)
    ours = next(c.pattern for c in CIS_CONTROLS if c.control == "4.1")
    assert not matches(ours, ordinary)


def test_evaluator_rejects_ungrouped_mixed_operators_and_reads_wildcards_and_absence():
    with pytest.raises(ValueError, match="mixed"):
        Parser('{ ($.a = "x") || ($.b = "y") && ($.c = "z") }').parse()
    assert matches('{ $.errorCode = "*UnauthorizedOperation" }', {"errorCode": "Client.UnauthorizedOperation"})
    assert not matches('{ $.errorCode = "*UnauthorizedOperation" }', {"errorCode": "UnauthorizedOperationX"})
    assert matches("{ $.user.invokedBy NOT EXISTS }", {"user": {}})
    assert not matches('{ $.a != "x" }', {})


# --- role-use alarms on the organization trail (every account, every region) -----------------------


def assume(role_arn: str, region: str = "eu-west-1", **extra: Any) -> dict[str, Any]:
    return event(
        "AssumeRole",
        "sts.amazonaws.com",
        awsRegion=region,
        requestParameters={"roleArn": role_arn, "roleSessionName": "s"},
        **extra,
    )


def acting_as(role: str, account: str = "555555555555", region: str = "ap-southeast-2") -> dict[str, Any]:
    return event(
        "TerminateInstances",
        "ec2.amazonaws.com",
        awsRegion=region,
        userIdentity={
            "type": "AssumedRole",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/s",
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": role, "arn": f"arn:aws:iam::{account}:role/{role}"}},
        },
    )


ROLE_USE_SAMPLES: dict[str, tuple[list[dict], list[dict]]] = {
    "break-glass-use": (
        [
            assume("arn:aws:iam::666666666666:role/BakehouseBreakGlass", region="ap-southeast-2"),
            assume("arn:aws:iam::444444444444:role/BakehouseBreakGlass", region="sa-east-1", errorCode="AccessDenied"),
            acting_as("BakehouseBreakGlass"),
        ],
        [
            assume("arn:aws:iam::666666666666:role/BakehouseResponder"),
            assume("arn:aws:iam::666666666666:role/BakehouseBreakGlassReview"),
            event("GetRole", "iam.amazonaws.com", requestParameters={"roleName": "BakehouseBreakGlass"}),
            acting_as("BakehouseResponder"),
        ],
    ),
    "organization-access-role-use": (
        [
            assume("arn:aws:iam::444444444444:role/OrganizationAccountAccessRole", region="us-west-2"),
            acting_as("OrganizationAccountAccessRole", region="eu-north-1"),
        ],
        [
            assume("arn:aws:iam::444444444444:role/BakehouseDeploy"),
            event("UpdateAssumeRolePolicy", "iam.amazonaws.com", requestParameters={"roleName": "OrganizationAccountAccessRole"}),
            acting_as("BakehouseDeploy"),
        ],
    ),
}


def test_break_glass_and_organization_access_role_use_alarm_from_any_account_and_region(declared):
    filters, alarms = declared
    by_key = {f.inputs["metricTransformation"]["name"]: f for f in filters.values()}
    for key, (triggers, quiet) in ROLE_USE_SAMPLES.items():
        metric = "".join(part.capitalize() for part in key.split("-"))
        assert metric in by_key, f"no metric filter for {key}"
        metric_filter = by_key[metric]
        assert metric_filter.inputs["logGroupName"] == "/bakehouse/cloudtrail/organization"
        pattern = metric_filter.inputs["pattern"]
        Parser(pattern).parse()
        assert len(pattern) <= PATTERN_MAX_CHARS
        for sample in triggers:
            assert matches(pattern, sample), f"{key} misses {sample['eventName']} in {sample['awsRegion']}"
        for sample in quiet + BACKGROUND:
            assert not matches(pattern, sample), f"{key} fires on {sample['eventName']}"
        alarm = alarms[metric]
        assert alarm.inputs["alarmActions"] == [SECURITY_TOPIC]
        assert alarm.inputs["threshold"] == 1 and alarm.inputs["treatMissingData"] == "notBreaching"


def test_role_use_alarms_follow_a_renamed_organization_access_role():
    from tools.mockrun import cached_run

    section = {
        "accountEmails": {k: f"aws+{k}@example.com" for k in ("security", "build", "dev", "uat", "prod")},
        "githubRepository": "acme/bakehouse",
        "accountAccessRoleName": "OrgBootstrap",
    }
    run = cached_run("org", overrides={"bakehouse:org": section})
    (metric_filter,) = [
        f
        for f in run.of_type("aws:cloudwatch/logMetricFilter:LogMetricFilter")
        if f.inputs["metricTransformation"]["name"] == "OrganizationAccessRoleUse"
    ]
    assert matches(metric_filter.inputs["pattern"], assume("arn:aws:iam::444444444444:role/OrgBootstrap"))
    assert not matches(metric_filter.inputs["pattern"], assume("arn:aws:iam::444444444444:role/OrganizationAccountAccessRole"))
