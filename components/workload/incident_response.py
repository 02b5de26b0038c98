"""Incident response in a workload account: GuardDuty EC2 findings (and a manual "isolate" event)
start the IsolateInstance automation, which runs as a role allowed exactly the playbook's steps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from estate import naming
from estate.naming import automation_document_name, bucket_name, central_key_alias, role_arn

from ..lib.automation_documents import automation_document
from ..lib.handler_package import handler_sources, package
from ..lib.iam import document, service_trust, statement
from ..lib.secure_bucket import SecureBucket, SecureBucketArgs
from .app_access import APP_ROLE_PATH
from .break_glass import topic_key_statement

ISOLATE_STEM = "isolate_instance"
ISOLATE_DOCUMENT = automation_document_name(ISOLATE_STEM)  # Bakehouse-IsolateInstance
AUTOMATION_ROLE = "BakehouseIsolateInstanceAutomation"
MANUAL_SOURCE = "bakehouse.incident"
MANUAL_DETAIL_TYPE = "Isolate instance"
EVIDENCE_PREFIX = "incidents"  # handlers/isolate.py writes incidents/<finding>/<instance ARN>/...
# Where the stack writes the configured forensic source (handlers/isolate.FORENSIC_SOURCE_PARAMETER).
FORENSIC_SOURCE_PARAMETER = naming.FORENSIC_SOURCE_PARAMETER
CAPTURE_DOCUMENT = "AWS-RunShellScript"  # memory capture runs AVML through the stock shell document
PROJECT_DIR = Path(__file__).resolve().parents[2]
DOCUMENT_PATH = PROJECT_DIR / "automation" / f"{ISOLATE_STEM}.yaml"


@dataclass(frozen=True)
class IncidentResponseArgs:
    account_id: str
    region: str
    home_region: str
    security_account_id: str
    min_severity: float
    evidence_bucket: str
    security_topic_arn: str
    kms_key_arn: pulumi.Input[str]  # the account key: encrypts the attachment bucket
    access_log_bucket: pulumi.Input[str]
    document_path: Path = DOCUMENT_PATH
    forensic_source: str | None = None  # a CIDR or security group id the isolation group admits

    @property
    def evidence_key_arn(self) -> str:
        """The security account's evidence key by alias ARN: EBS accepts an alias ARN for a copy's key."""
        return f"arn:aws:kms:{self.home_region}:{self.security_account_id}:{central_key_alias('evidence')}"

    @property
    def automation_role_arn(self) -> str:
        return role_arn(self.account_id, AUTOMATION_ROLE)

    @property
    def automation_definition_arn(self) -> str:
        return f"arn:aws:ssm:{self.region}:{self.account_id}:automation-definition/{ISOLATE_DOCUMENT}"


def guardduty_pattern(min_severity: float) -> str:
    """GuardDuty findings about an EC2 instance at or above the configured severity."""
    return json.dumps(
        {
            "source": ["aws.guardduty"],
            "detail-type": ["GuardDuty Finding"],
            "detail": {"severity": [{"numeric": [">=", min_severity]}], "resource": {"resourceType": ["Instance"]}},
        },
        sort_keys=True,
    )


def manual_pattern() -> str:
    return json.dumps({"source": [MANUAL_SOURCE], "detail-type": [MANUAL_DETAIL_TYPE]}, sort_keys=True)


def automation_input(args: IncidentResponseArgs, finding: str) -> str:
    """The automation's parameters (SSM takes every value as a list) with EventBridge placeholders."""
    params = {
        "AutomationAssumeRole": [args.automation_role_arn],
        "InstanceId": ["<instance>"],
        "FindingId": [finding],
        "EvidenceBucket": [args.evidence_bucket],
        "TopicArn": [args.security_topic_arn],
        "SecurityAccountId": [args.security_account_id],
        "EvidenceKeyArn": [args.evidence_key_arn],
    }
    return json.dumps(params, sort_keys=True)


def automation_role_statements(args: IncidentResponseArgs) -> list[dict[str, Any]]:
    """Exactly what handlers/isolate*.py and the document's own steps (aws:changeInstanceState polls
    DescribeInstanceStatus; OpenTicket creates an OpsItem) call, scoped to this account and region."""
    ec2 = f"arn:aws:ec2:{args.region}:{args.account_id}"
    in_region = {"StringEquals": {"aws:RequestedRegion": args.region}}
    evidence = f"arn:aws:s3:::{args.evidence_bucket}"
    isolation_tag = {"StringEquals": {"aws:ResourceTag/bakehouse:purpose": "isolation"}}
    # Evidence copies are made in the evidence key's region (the home region); the originals are here.
    snapshots = sorted({f"arn:aws:ec2:{r}::snapshot/*" for r in (args.region, args.home_region)})
    evidence_key = f"arn:aws:kms:{args.home_region}:{args.security_account_id}:key/*"
    evidence_alias = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": central_key_alias("evidence")}}
    return [
        # EC2, Auto Scaling and ELB Describe* calls have no resource-level permissions: "*" is the only form.
        statement(
            "DescribeForIsolation",
            [
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceStatus",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSnapshots",
                "autoscaling:DescribeAutoScalingInstances",
                "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetHealth",
            ],
            ["*"],
            conditions={"StringEquals": {"aws:RequestedRegion": sorted({args.region, args.home_region})}},
        ),
        # DescribeInstanceAttribute takes the instance ARN (Service Authorization Reference, Amazon EC2).
        statement("ReadInstanceAttributes", ["ec2:DescribeInstanceAttribute"], [f"{ec2}:instance/*"]),
        statement(
            "ContainInstance",
            ["ec2:ModifyInstanceAttribute", "ec2:StopInstances"],
            [f"{ec2}:instance/*", f"{ec2}:security-group/*"],
        ),
        statement(
            "SwapInterfaceGroups",
            ["ec2:ModifyNetworkInterfaceAttribute"],
            [f"{ec2}:network-interface/*", f"{ec2}:instance/*", f"{ec2}:security-group/*"],
        ),
        statement("CreateIsolationGroupInAnyVpc", ["ec2:CreateSecurityGroup"], [f"{ec2}:vpc/*"]),
        statement(
            "CreateIsolationGroupTagged",
            ["ec2:CreateSecurityGroup"],
            [f"{ec2}:security-group/*"],
            conditions={"StringEquals": {"aws:RequestTag/bakehouse:purpose": "isolation"}},
        ),
        statement(
            "EmptyIsolationGroup",
            ["ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress"],
            [f"{ec2}:security-group/*"],
            conditions=isolation_tag,
        ),
        statement(
            "AdmitForensicSource", ["ec2:AuthorizeSecurityGroupIngress"], [f"{ec2}:security-group/*"], conditions=isolation_tag
        ),
        statement(
            "ReadForensicSource",
            ["ssm:GetParameter"],
            [f"arn:aws:ssm:{args.region}:{args.account_id}:parameter{FORENSIC_SOURCE_PARAMETER}"],
        ),
        statement("SnapshotVolumes", ["ec2:CreateSnapshot"], [f"{ec2}:volume/*"]),
        statement(
            "SnapshotsCarryTheFinding",
            ["ec2:CreateSnapshot"],
            [f"arn:aws:ec2:{args.region}::snapshot/*"],
            conditions={"Null": {"aws:RequestTag/bakehouse:finding-id": "false"}},
        ),
        # CopySnapshot is authorized on the source and on the new snapshot, both with the request's tags.
        statement(
            "CopyEvidenceSnapshots",
            ["ec2:CopySnapshot"],
            snapshots,
            conditions={"Null": {"aws:RequestTag/bakehouse:copy-of": "false"}},
        ),
        statement("ReadEvidenceCopySharing", ["ec2:DescribeSnapshotAttribute"], snapshots),
        statement(
            "ShareEvidenceCopiesWithSecurityOnly",
            ["ec2:ModifySnapshotAttribute"],
            snapshots,
            conditions={
                "StringEquals": {"ec2:Add/userId": args.security_account_id},
                "Null": {"aws:ResourceTag/bakehouse:copy-of": "false"},
            },
        ),
        statement(
            "TagOnlyWhatItCreates",
            ["ec2:CreateTags"],
            [*snapshots, f"{ec2}:security-group/*"],
            conditions={"StringEquals": {"ec2:CreateAction": ["CreateSnapshot", "CopySnapshot", "CreateSecurityGroup"]}},
        ),
        statement(
            "DetachFromAutoScaling",
            ["autoscaling:DetachInstances"],
            [f"arn:aws:autoscaling:{args.region}:{args.account_id}:autoScalingGroup:*:autoScalingGroupName/*"],
        ),
        statement(
            "DeregisterFromTargetGroups",
            ["elasticloadbalancing:DeregisterTargets"],
            [f"arn:aws:elasticloadbalancing:{args.region}:{args.account_id}:targetgroup/*/*"],
        ),
        statement(
            "CaptureMemory", ["ssm:SendCommand"], [f"arn:aws:ssm:{args.region}::document/{CAPTURE_DOCUMENT}", f"{ec2}:instance/*"]
        ),
        # Command status and listing have no resource-level permissions.
        statement("FollowCapture", ["ssm:GetCommandInvocation", "ssm:ListCommands"], ["*"], conditions=in_region),
        statement(
            "ReadOwnExecution",
            ["ssm:GetAutomationExecution"],
            [f"arn:aws:ssm:{args.region}:{args.account_id}:automation-execution/*"],
        ),
        # CreateOpsItem takes no resource type (Service Authorization Reference, AWS Systems Manager).
        statement("OpenTicket", ["ssm:CreateOpsItem"], ["*"], conditions=in_region),
        statement(
            "RevokeAppRoleSessions",
            ["iam:GetInstanceProfile", "iam:GetRolePolicy", "iam:PutRolePolicy"],
            [
                f"arn:aws:iam::{args.account_id}:role{APP_ROLE_PATH}*",
                f"arn:aws:iam::{args.account_id}:instance-profile{APP_ROLE_PATH}*",
            ],
        ),
        statement("WriteEvidence", ["s3:PutObject", "s3:GetObject"], [f"{evidence}/{EVIDENCE_PREFIX}/*"]),
        statement(
            "ListEvidence", ["s3:ListBucket"], [evidence], conditions={"StringLike": {"s3:prefix": f"{EVIDENCE_PREFIX}/*"}}
        ),
        statement("EvidenceKey", ["kms:GenerateDataKey", "kms:Decrypt"], [evidence_key], conditions=evidence_alias),
        # EBS re-encrypts a copy under the evidence key with grants it makes as the caller ("How Amazon EBS
        # uses AWS KMS", EBS user guide); the source key is this account's, which encrypts the volumes.
        statement(
            "EvidenceKeyForSnapshotCopies",
            [
                "kms:CreateGrant",
                "kms:DescribeKey",
                "kms:GenerateDataKeyWithoutPlaintext",
                "kms:ReEncryptTo",
                "kms:ReEncryptFrom",
                "kms:Decrypt",
            ],
            [evidence_key],
            conditions={**evidence_alias, "StringEquals": {"kms:ViaService": f"ec2.{args.home_region}.amazonaws.com"}},
        ),
        statement(
            "VolumeKeyForSnapshotCopies",
            ["kms:CreateGrant", "kms:DescribeKey", "kms:ReEncryptFrom", "kms:Decrypt"],
            [args.kms_key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": sorted({f"ec2.{r}.amazonaws.com" for r in (args.region, args.home_region)})}
            },
        ),
        statement("NotifySecurityTopic", ["sns:Publish"], [args.security_topic_arn]),
        topic_key_statement(args.security_account_id, args.home_region),
    ]


def events_role_statements(args: IncidentResponseArgs) -> list[dict[str, Any]]:
    return [
        statement("StartIsolation", ["ssm:StartAutomationExecution"], [f"{args.automation_definition_arn}:*"]),
        statement(
            "PassAutomationRole",
            ["iam:PassRole"],
            [args.automation_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}},
        ),
    ]


class IncidentResponse(pulumi.ComponentResource):
    def __init__(self, name: str, args: IncidentResponseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:workload:IncidentResponse", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.automation_role = aws.iam.Role(
            f"{name}-automation-role",
            name=AUTOMATION_ROLE,
            max_session_duration=3600,
            description="SSM Automation: the IsolateInstance playbook's steps, nothing else",
            assume_role_policy=document(service_trust("ssm.amazonaws.com", args.account_id)),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-automation-policy",
            role=self.automation_role.id,
            policy=document(*automation_role_statements(args)),
            opts=child,
        )

        self._attachments(name, args, child)
        if args.forensic_source is not None:
            aws.ssm.Parameter(
                f"{name}-forensic-source",
                name=FORENSIC_SOURCE_PARAMETER,
                type="String",
                value=args.forensic_source,
                description="Who the isolation group admits (docs/operations.md)",
                opts=child,
            )
        self.document = None
        if args.document_path.is_file():
            self.document = self._document(name, args, child)
        else:
            pulumi.log.warn(
                f"{name}: {args.document_path.name} not found; the isolation rules target "
                f"{ISOLATE_DOCUMENT}, which must be deployed before they can start it",
                self,
            )

        events_role = aws.iam.Role(
            f"{name}-events-role",
            description="EventBridge: start the IsolateInstance automation",
            assume_role_policy=document(service_trust("events.amazonaws.com", args.account_id)),
            max_session_duration=3600,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-events-policy", role=events_role.id, policy=document(*events_role_statements(args)), opts=child
        )

        target_arn = f"{args.automation_definition_arn}:$DEFAULT"
        depends = [self.document] if self.document is not None else []
        self.guardduty_rule = aws.cloudwatch.EventRule(
            f"{name}-guardduty-ec2",
            name="bakehouse-isolate-on-guardduty-ec2-finding",
            description=f"GuardDuty EC2 findings with severity >= {args.min_severity}",
            event_pattern=guardduty_pattern(args.min_severity),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-guardduty-isolate",
            rule=self.guardduty_rule.name,
            arn=target_arn,
            role_arn=events_role.arn,
            input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                input_paths={"instance": "$.detail.resource.instanceDetails.instanceId", "finding": "$.detail.id"},
                input_template=automation_input(args, "<finding>"),
            ),
            opts=child.merge(pulumi.ResourceOptions(depends_on=depends)),
        )
        self.manual_rule = aws.cloudwatch.EventRule(
            f"{name}-manual-isolate",
            name="bakehouse-isolate-on-request",
            description="Responder asks to isolate an instance",
            event_pattern=manual_pattern(),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-manual-isolate",
            rule=self.manual_rule.name,
            arn=target_arn,
            role_arn=events_role.arn,
            input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                input_paths={"instance": "$.detail.instanceId", "event": "$.id"},
                input_template=automation_input(args, "manual-<event>"),
            ),
            opts=child.merge(pulumi.ResourceOptions(depends_on=depends)),
        )
        self.register_outputs(
            {
                "automation_role_arn": self.automation_role.arn,
                "guardduty_rule": self.guardduty_rule.name,
                "manual_rule": self.manual_rule.name,
            }
        )

    def _attachments(self, name: str, args: IncidentResponseArgs, child: pulumi.ResourceOptions) -> None:
        """The handlers package in this account, where SSM copies document attachments from. Declared
        whether or not the document exists yet, so its arrival adds only the document itself."""
        self.handlers = package(PROJECT_DIR, handler_sources(PROJECT_DIR), "handlers")
        self.attachments_bucket = bucket_name("automation", args.account_id, args.region)
        bucket = SecureBucket(
            f"{name}-attachments",
            SecureBucketArgs(
                purpose="automation-attachments",
                kms_key_arn=args.kms_key_arn,
                access_log_bucket=args.access_log_bucket,
                bucket_name=self.attachments_bucket,
            ),
            opts=child,
        )
        self.handlers_key = f"automation/handlers-{self.handlers.sha256}.zip"
        self.handlers_object = aws.s3.BucketObjectv2(
            f"{name}-handlers",
            bucket=self.attachments_bucket,
            key=self.handlers_key,
            source=pulumi.FileAsset(str(self.handlers.path)),
            source_hash=self.handlers.sha256,
            server_side_encryption="aws:kms",
            kms_key_id=args.kms_key_arn,
            content_type="application/zip",
            opts=child.merge(pulumi.ResourceOptions(depends_on=[bucket])),
        )

    def _document(self, name: str, args: IncidentResponseArgs, child: pulumi.ResourceOptions) -> aws.ssm.Document:
        return automation_document(
            f"{name}-isolate-document",
            ISOLATE_DOCUMENT,
            args.document_path.read_text(),
            self.handlers,
            f"s3://{self.attachments_bucket}/{self.handlers_key}",
            self.handlers_object,
            child,
        )
