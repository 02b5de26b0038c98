"""The golden-image factory: its SSM Automation documents, their role, topics and handler code.

Every `automation/*.yaml` (but the workload-side ones) deploys as `Bakehouse-<PascalCase>`, so a new
document ships without a code change. Python for `aws:executeScript` steps travels as one zip of
`handlers/`, uploaded under a content-hashed key and attached to the documents that use it.

The image registry (`/bakehouse/images/<family>/latest` and `/history`) is written by the handlers
at approval time; nothing here declares those parameters, so a `pulumi up` never resets a published
image id to a stale value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from estate import naming
from estate.config import StackConfig
from estate.naming import (
    FACTORY_SETTINGS_PARAMETER,
    IMAGE_PUBLISHER_ROLE,
    IMAGE_SCANNER_ROLE,
    automation_document_name,
    role_arn,
    security_topic_arn,
)

from ..lib.automation_documents import automation_document
from ..lib.handler_package import handler_sources, package
from ..lib.iam import document, statement
from ..lib.org_paths import ou_path_patterns
from .factory_config import FactoryConfig
from .factory_targets import target_parameters, target_path_arns
from .packer_pipeline import PACKER_PIPELINE_FAILED_RULE

PROJECT_DIR = Path(__file__).resolve().parents[2]
AUTOMATION_DIR = PROJECT_DIR / "automation"
# Documents deployed by the workload stacks, not here.
WORKLOAD_DOCUMENTS = frozenset({"isolate_instance"})
SETTINGS_PARAMETER = FACTORY_SETTINGS_PARAMETER
PIPELINE_STEM = "pipeline"
# The instances the factory launches carry one of these, and may only be touched while they do.
PURPOSE_TAG = naming.TAG_PURPOSE
PURPOSES = ("build", "validation", "rescan")  # values the documents tag their instances with
# Images the factory made carry their family; distribution and retirement act on nothing else.
FAMILY_TAG = naming.TAG_FAMILY
CANONICAL_ACCOUNT = "099720109477"  # owner of the official Ubuntu AMIs
BASE_IMAGE_PARAMETERS = {
    "al2023": "/aws/service/ami-amazon-linux-latest/*",
    "ubuntu2404": "/aws/service/canonical/ubuntu/server/24.04/*",
}
# The Pipeline announces its own success (with the AMI id and catalog version); the rule covers
# the outcomes the Pipeline cannot report itself.
EXECUTION_STATUSES = ("Failed", "TimedOut", "Cancelled")


def factory_documents(directory: Path = AUTOMATION_DIR) -> dict[str, str]:
    """stem -> YAML text of every factory document in the directory."""
    return {p.stem: p.read_text() for p in sorted(directory.glob("*.yaml")) if p.stem not in WORKLOAD_DOCUMENTS}


def calls(text: str, stem: str) -> bool:
    """Whether a document names another factory document (by its deployed name)."""
    return automation_document_name(stem) in text


def deployment_order(texts: Mapping[str, str]) -> list[str]:
    """Stems ordered so every document comes after the documents it calls; a cycle is an error."""
    ordered: list[str] = []
    pending = sorted(texts)
    while pending:
        ready = [s for s in pending if all(o in ordered for o in texts if o != s and calls(texts[s], o))]
        if not ready:
            raise ValueError(f"automation documents call each other in a cycle: {', '.join(pending)}")
        ordered += ready
        pending = [s for s in pending if s not in ready]
    return ordered


def automation_statements(
    cfg: StackConfig,
    factory: FactoryConfig,
    *,
    automation_role_arn: str,
    build_instance_role_arn: str,
    scripts_bucket_arn: str,
    findings_bucket_arn: str,
    subnet_arns: Sequence[pulumi.Input[str]],
    security_group_arn: pulumi.Input[str],
    key_arns: Sequence[pulumi.Input[str]],
    topic_arns: Sequence[pulumi.Input[str]],
    product_arn: pulumi.Input[str] | None,
    regional_product_arns: Sequence[pulumi.Input[str]] = (),
) -> list[dict[str, Any]]:
    """Least privilege for the factory's documents: build, validate, approve, publish, distribute, rescan."""
    region, account = cfg.region, cfg.account_id
    regions = (region, *factory.regions)
    purpose = {f"aws:RequestTag/{PURPOSE_TAG}": list(PURPOSES)}
    instances = f"arn:aws:ec2:{region}:{account}:instance/*"
    launched = [f"arn:aws:ec2:{region}:{account}:{kind}/*" for kind in ("instance", "volume", "network-interface")]
    images = [f"arn:aws:ec2:{r}::{kind}/*" for r in regions for kind in ("image", "snapshot")]
    bases = sorted({f.base for f in factory.families})
    statements = [
        # These APIs offer no resource-level permissions; the region condition is the only scope AWS allows.
        statement(
            "ReadOnlyWithoutResourceScope",
            [
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceStatus",
                "ec2:DescribeSnapshots",
                "ec2:DescribeTags",
                "ec2:DescribeRegions",
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
                "servicecatalog:DescribeConstraint",
                "servicecatalog:UpdateConstraint",
                "servicecatalog:ListConstraintsForPortfolio",
            ],
            ["*"],
            conditions={"StringEquals": {"aws:RequestedRegion": list(regions)}},
        ),
        statement("LaunchTaggedFactoryInstances", ["ec2:RunInstances"], [instances], conditions={"StringEquals": purpose}),
        # Volumes and interfaces are tagged (or not) by the document; the instance condition above gates them.
        statement("LaunchVolumesAndInterfaces", ["ec2:RunInstances"], launched[1:]),
        statement("LaunchIntoBuildNetworkOnly", ["ec2:RunInstances"], [*subnet_arns, security_group_arn]),
        statement(
            "LaunchFromAmazonCanonicalOrOwnImages",
            ["ec2:RunInstances"],
            [f"arn:aws:ec2:{region}::image/*"],
            conditions={"StringEquals": {"ec2:Owner": ["amazon", CANONICAL_ACCOUNT, account]}},
        ),
        statement(
            "TagAtLaunch", ["ec2:CreateTags"], launched, conditions={"StringEquals": {"ec2:CreateAction": ["RunInstances"]}}
        ),
        statement(
            "ManageOnlyFactoryInstances",
            ["ec2:StopInstances", "ec2:StartInstances", "ec2:TerminateInstances", "ec2:CreateImage"],
            [f"arn:aws:ec2:{region}:{account}:instance/*"],
            conditions={"StringEquals": {f"ec2:ResourceTag/{PURPOSE_TAG}": list(PURPOSES)}},
        ),
        # The image and snapshots CreateImage/CopyImage make do not exist yet, so carry no tag to test.
        statement("CreateAndCopyImages", ["ec2:CreateImage", "ec2:CopyImage"], images),
        statement("ReadImageAttributes", ["ec2:DescribeImageAttribute", "ec2:DescribeSnapshotAttribute"], images),
        statement(
            "TagImagesWithBakehouseKeys",
            ["ec2:CreateTags"],
            images,
            conditions={"ForAllValues:StringLike": {"aws:TagKeys": ["bakehouse:*", "Name"]}},
        ),
        statement(
            "ShareAndRetireFactoryImagesOnly",
            ["ec2:ModifyImageAttribute", "ec2:DeregisterImage", "ec2:EnableImageDeprecation", "ec2:DisableImageDeprecation"],
            [i for i in images if ":image/" in i],
            conditions={"Null": {f"ec2:ResourceTag/{FAMILY_TAG}": "false"}},
        ),
        # CreateImage and CopyImage do not pass the image's tags to its snapshots, so snapshots cannot be
        # told apart by tag; the scope is the factory's regions in this account, which holds no other images.
        statement(
            "ShareAndRetireImageSnapshots",
            ["ec2:ModifySnapshotAttribute", "ec2:DeleteSnapshot"],
            [i for i in images if ":snapshot/" in i],
        ),
        # A build whose tagging failed leaves an untagged image behind; its cleanup step must remove it.
        statement("DeregisterFailedBuilds", ["ec2:DeregisterImage"], [f"arn:aws:ec2:{region}::image/*"]),
        statement(
            "PassBuildInstanceRoleToEc2",
            ["iam:PassRole"],
            [build_instance_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        statement(
            "PassOwnRoleToChildAutomations",
            ["iam:PassRole"],
            [automation_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}},
        ),
        statement("RunShellScriptDocumentOnly", ["ssm:SendCommand"], [f"arn:aws:ssm:{region}::document/AWS-RunShellScript"]),
        statement(
            "SendCommandToFactoryInstancesOnly",
            ["ssm:SendCommand"],
            [f"arn:aws:ec2:{region}:{account}:instance/*"],
            conditions={"StringEquals": {f"ssm:resourceTag/{PURPOSE_TAG}": list(PURPOSES)}},
        ),
        statement("ReadBuildScriptsAndTemplates", ["s3:GetObject", "s3:GetObjectVersion"], [f"{scripts_bucket_arn}/*"]),
        statement("ListBuildScripts", ["s3:ListBucket"], [scripts_bucket_arn]),
        # Validation summaries and rescan reports: the record of why an image was approved or quarantined.
        statement("WriteFindingsReports", ["s3:PutObject", "s3:GetObject"], [f"{findings_bucket_arn}/*"]),
        # The summary handler reads the bucket's default key so it can name it on each upload.
        statement("ReadFindingsBucketEncryption", ["s3:GetEncryptionConfiguration"], [findings_bucket_arn]),
        statement(
            "ImageRegistry",
            [
                "ssm:PutParameter",
                "ssm:GetParameter",
                "ssm:GetParameters",
                "ssm:GetParameterHistory",
                "ssm:GetParametersByPath",
                "ssm:LabelParameterVersion",
                "ssm:AddTagsToResource",
                "ssm:ListTagsForResource",
            ],
            [f"arn:aws:ssm:{region}:{account}:parameter/bakehouse/images/*"],
        ),
        statement("ReadFactorySettings", ["ssm:GetParameter"], [f"arn:aws:ssm:{region}:{account}:parameter{SETTINGS_PARAMETER}"]),
        # Distribution and the rescan find their accounts under one path, however many there are.
        statement("ReadFactoryTargets", ["ssm:GetParametersByPath"], target_path_arns(region, account)),
        statement(
            "ReadBaseImageParameters",
            ["ssm:GetParameter", "ssm:GetParameters"],
            [f"arn:aws:ssm:{region}::parameter{BASE_IMAGE_PARAMETERS[b]}" for b in bases],
        ),
        # By role name in the workload OUs, not by account: one ARN per target account passed IAM's
        # 10,240-character inline quota at 15 envs. aws:ResourceOrgPaths is the role's account's place in
        # the organization (IAM User Guide, "AWS global condition context keys"); the publisher and
        # scanner roles trust only this role, and images are shared to the target accounts alone.
        statement(
            "AssumeWorkloadPublisherAndScanner",
            ["sts:AssumeRole"],
            [role_arn("*", n) for n in (IMAGE_PUBLISHER_ROLE, IMAGE_SCANNER_ROLE)],
            conditions={
                "ForAnyValue:StringLike": {
                    "aws:ResourceOrgPaths": ou_path_patterns(cfg.estate.organization_id, factory.workload_ous)
                }
            },
        ),
        statement(
            "UseFactoryKeys",
            ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
            list(key_arns),
        ),
        statement(
            "EbsGrantsOnFactoryKeys",
            ["kms:CreateGrant"],
            list(key_arns),
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        statement("NotifyApproversAndSecurity", ["sns:Publish"], [*topic_arns, security_topic_arn(cfg.estate)]),
        # The security topic is encrypted with a key in the security account whose id is not known
        # here; the grant is limited to that account's keys, used through SNS in the home region.
        statement(
            "EncryptForSecurityTopic",
            ["kms:GenerateDataKey*", "kms:Decrypt"],
            [f"arn:aws:kms:{region}:{cfg.estate.accounts.security}:key/*"],
            conditions={"StringEquals": {"kms:ViaService": f"sns.{region}.amazonaws.com"}},
        ),
        statement(
            "StartFactoryAutomations",
            ["ssm:StartAutomationExecution"],
            [f"arn:aws:ssm:{region}:{account}:automation-definition/Bakehouse-*:*"],
        ),
        statement(
            "FollowFactoryAutomations",
            ["ssm:GetAutomationExecution", "ssm:StopAutomationExecution", "ssm:DescribeAutomationStepExecutions"],
            [f"arn:aws:ssm:{region}:{account}:automation-execution/*"],
        ),
    ]
    if product_arn is not None:
        statements.append(
            statement(
                "CatalogVersions",
                [
                    "servicecatalog:CreateProvisioningArtifact",
                    "servicecatalog:UpdateProvisioningArtifact",
                    "servicecatalog:DeleteProvisioningArtifact",
                    "servicecatalog:ListProvisioningArtifacts",
                    "servicecatalog:DescribeProvisioningArtifact",
                    "servicecatalog:DescribeProductAsAdmin",
                ],
                # each regional catalog's product too (bakehouse:factory.catalogRegionalPortfolios)
                [product_arn, *regional_product_arns],
            )
        )
    return statements


def build_instance_statements(
    cfg: StackConfig,
    scripts_bucket_arn: str,
    scripts_key_arn: pulumi.Input[str],
) -> list[dict[str, Any]]:
    region, account = cfg.region, cfg.account_id
    return [
        statement("ReadBuildScripts", ["s3:GetObject", "s3:GetObjectVersion"], [f"{scripts_bucket_arn}/*"]),
        statement(
            "DecryptBuildScriptsThroughS3",
            ["kms:Decrypt"],
            [scripts_key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
        ),
        statement(
            "WriteBuildLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [f"arn:aws:logs:{region}:{account}:log-group:/bakehouse/build/*:*"],
        ),
        statement(
            "CreateBuildLogGroups", ["logs:CreateLogGroup"], [f"arn:aws:logs:{region}:{account}:log-group:/bakehouse/build/*"]
        ),
    ]


def automation_failure_pattern(prefix: str = "Bakehouse-") -> str:
    """Every factory automation (the Pipeline, its children, the standalone rescan and others) that ends
    Failed, TimedOut or Cancelled. `Definition` and `Status` are fields of the "EC2 Automation
    Execution Status-change Notification" event (Systems Manager user guide, "Monitoring Systems
    Manager events with Amazon EventBridge")."""
    return json.dumps(
        {
            "source": ["aws.ssm"],
            "detail-type": ["EC2 Automation Execution Status-change Notification"],
            "detail": {"Definition": [{"prefix": prefix}], "Status": list(EXECUTION_STATUSES)},
        }
    )


def pipeline_event_pattern(pipeline_name: str) -> str:
    return json.dumps(
        {
            "source": ["aws.ssm"],
            "detail-type": ["EC2 Automation Execution Status-change Notification"],
            "detail": {"Definition": [pipeline_name], "Status": list(EXECUTION_STATUSES)},
        }
    )


def pipeline_parameters(
    args: ImageFactoryArgs, approvers_topic_arn: pulumi.Input[str], notifications_topic_arn: pulumi.Input[str]
) -> dict[str, Any]:
    factory = args.factory
    params: dict[str, Any] = {
        "AutomationAssumeRole": args.role_arns["automation"],
        "SubnetId": args.subnet_ids[0],
        "SecurityGroupIds": [args.security_group_id],
        "InstanceProfileName": args.build_instance_role.name,
        "FactoryKmsKeyId": args.factory_key_arn,
        "ScriptsBucket": args.scripts_bucket_name,
        "FindingsBucket": args.findings_bucket_name,
        "SeverityThreshold": factory.severity_threshold,
        # The home region holds the original: its accounts need launch permission and parameters too.
        "Regions": {args.cfg.region: args.factory_key_arn, **args.region_key_arns},
        # No Accounts: the documents default to every env under /bakehouse/factory/targets.
        # One launch permission per region for every account under these OUs (handlers/distribute.py).
        "ShareWith": [
            f"arn:aws:organizations::{args.cfg.estate.accounts.management}:ou/{args.cfg.estate.organization_id}/{ou}"
            for ou in factory.workload_ous
        ],
        "MaxCatalogVersions": factory.max_catalog_versions,
        "NotificationTopicArn": notifications_topic_arn,
    }
    if args.product_id is not None:
        params["CatalogProductId"] = args.product_id
        params["CatalogPortfolioId"] = args.portfolio_id
        # The catalog step and a quarantine's repin act on each region's product and portfolio too.
        params["CatalogRegions"] = [
            {"Region": region, "ProductId": product, "PortfolioId": portfolio}
            for region, (product, portfolio, _) in sorted(args.regional_catalogs.items())
        ]
    return params


@dataclass(frozen=True)
class ImageFactoryArgs:
    cfg: StackConfig
    factory: FactoryConfig
    automation_role: aws.iam.Role
    build_instance_role: aws.iam.Role
    role_arns: Mapping[str, str]  # FactoryRoles.arns
    scripts_bucket_name: str
    scripts_key_arn: pulumi.Input[str]  # the account key the scripts bucket is encrypted with
    factory_key_arn: pulumi.Input[str]
    image_key_arns: Sequence[pulumi.Input[str]]  # home + per-region copy keys
    region_key_arns: Mapping[str, pulumi.Input[str]]  # distribution region -> its copy key
    findings_bucket_name: str
    subnet_arns: Sequence[pulumi.Input[str]]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    security_group_arn: pulumi.Input[str]
    product_arn: pulumi.Input[str] | None  # None while the catalog has no product
    product_id: pulumi.Input[str] | None
    portfolio_id: pulumi.Input[str]  # whose template constraint pins the approved AMI id
    automation_dir: Path = AUTOMATION_DIR
    # region -> (product id, portfolio id, product ARN) of its catalog (ServiceCatalog.regional_ids)
    regional_catalogs: Mapping[str, tuple[pulumi.Input[str], pulumi.Input[str], pulumi.Input[str]]] = field(default_factory=dict)


class ImageFactory(pulumi.ComponentResource):
    def __init__(self, name: str, args: ImageFactoryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:build:ImageFactory", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cfg, factory = args.cfg, args.factory
        scripts_arn = f"arn:aws:s3:::{args.scripts_bucket_name}"

        self.handlers = package(PROJECT_DIR, handler_sources(PROJECT_DIR), "handlers")
        self.handlers_key = f"automation/{self.handlers.path.name}"
        handlers_object = aws.s3.BucketObjectv2(
            f"{name}-handlers",
            bucket=args.scripts_bucket_name,
            key=self.handlers_key,
            source=pulumi.FileAsset(str(self.handlers.path)),
            source_hash=self.handlers.sha256,
            server_side_encryption="aws:kms",
            kms_key_id=args.scripts_key_arn,
            content_type="application/zip",
            opts=child,
        )

        self.approvers_topic = aws.sns.Topic(
            f"{name}-approvers", name="bakehouse-image-approvers", kms_master_key_id=args.factory_key_arn, opts=child
        )
        self.notifications_topic = aws.sns.Topic(
            f"{name}-notifications", name="bakehouse-factory-notifications", kms_master_key_id=args.factory_key_arn, opts=child
        )

        aws.iam.RolePolicy(
            f"{name}-automation-policy",
            role=args.automation_role.name,
            policy=document(
                *automation_statements(
                    cfg,
                    factory,
                    automation_role_arn=args.role_arns["automation"],
                    build_instance_role_arn=args.role_arns["build_instance"],
                    scripts_bucket_arn=scripts_arn,
                    findings_bucket_arn=f"arn:aws:s3:::{args.findings_bucket_name}",
                    subnet_arns=args.subnet_arns,
                    security_group_arn=args.security_group_arn,
                    key_arns=[*args.image_key_arns, args.scripts_key_arn],
                    topic_arns=[self.approvers_topic.arn, self.notifications_topic.arn],
                    product_arn=args.product_arn,
                    regional_product_arns=[arn for _, _, arn in args.regional_catalogs.values()],
                )
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-build-instance-policy",
            role=args.build_instance_role.name,
            policy=document(*build_instance_statements(cfg, scripts_arn, args.scripts_key_arn)),
            opts=child,
        )

        self.settings = aws.ssm.Parameter(
            f"{name}-settings",
            name=SETTINGS_PARAMETER,
            type="String",
            tier="Standard",
            description="Image factory settings the documents and handlers read (no secrets)",
            value=pulumi.Output.json_dumps(
                {
                    **factory.as_settings(),
                    "subnetIds": list(args.subnet_ids),
                    "securityGroupId": args.security_group_id,
                    "handlersKey": self.handlers_key,
                    "portfolioId": args.portfolio_id,
                    # tools/release.py encrypts the bundle it uploads with the scripts bucket's key.
                    "scriptsKmsKeyId": args.scripts_key_arn,
                    # Read by Bakehouse-ApproveImage (handlers/approval.py), never taken from its caller.
                    "approval": {
                        "environment": factory.approval_environment,
                        "autoApprove": factory.auto_approve,
                        "approvers": list(factory.approvers),
                        "topicArn": self.approvers_topic.arn,
                    },
                    # What a caller (CI, the rescan's rebuild) passes to Bakehouse-Pipeline besides the
                    # per-run Family, BaseImageParameter, ScriptsVersionId and ScriptsCommit.
                    "pipelineParameters": pipeline_parameters(args, self.approvers_topic.arn, self.notifications_topic.arn),
                }
            ),
            opts=child,
        )

        self.targets = target_parameters(name, factory, child)

        self.documents: dict[str, aws.ssm.Document] = {}
        texts = factory_documents(args.automation_dir)
        for stem in deployment_order(texts):
            text = texts[stem]
            # A document calling another by name (Pipeline -> children) needs it to exist first.
            callees = [self.documents[other] for other in texts if other != stem and calls(text, other)]
            self.documents[stem] = automation_document(
                f"{name}-doc-{stem}",
                automation_document_name(stem),
                text,
                self.handlers,
                f"s3://{args.scripts_bucket_name}/{self.handlers_key}",
                handlers_object,
                child,
                depends_on=callees,
            )

        # The Packer engine's failed runs come here too (components/build/packer_pipeline.py), by the rule's
        # name: that rule is declared after this policy, by the component that owns the pipelines.
        packer_failure_rules = (
            [f"arn:aws:events:{cfg.region}:{cfg.account_id}:rule/{PACKER_PIPELINE_FAILED_RULE}"]
            if factory.packer_families
            else []
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-pipeline-outcome",
            name="bakehouse-automation-failed",
            description="Every Bakehouse-* automation that ends Failed, TimedOut or Cancelled",
            event_pattern=automation_failure_pattern(),
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{name}-notifications-policy",
            arn=self.notifications_topic.arn,
            policy=document(
                statement(
                    "EventBridgePipelineOutcome",
                    ["sns:Publish"],
                    [self.notifications_topic.arn],
                    principals={"Service": "events.amazonaws.com"},
                    conditions={"ArnEquals": {"aws:SourceArn": [rule.arn, *packer_failure_rules]}},
                ),
                # The factory's alarms (lifecycle and schedule dead letters, components/build/factory_schedules.py).
                statement(
                    "CloudWatchFactoryAlarms",
                    ["sns:Publish"],
                    [self.notifications_topic.arn],
                    principals={"Service": "cloudwatch.amazonaws.com"},
                    conditions={
                        "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{cfg.region}:{cfg.account_id}:alarm:bakehouse-*"},
                        "StringEquals": {"aws:SourceAccount": cfg.account_id},
                    },
                ),
            ),
            opts=child,
        )
        for topic_key, topic in (("approvers", self.approvers_topic), ("notifications", self.notifications_topic)):
            for sub in factory.subscriptions.get(topic_key, ()):
                # Keyed by the subscriber, not its position, so reordering config replaces nothing.
                slug = re.sub(r"[^a-z0-9]+", "-", f"{sub.protocol}-{sub.endpoint}".lower()).strip("-")[:80]
                aws.sns.TopicSubscription(
                    f"{name}-{topic_key}-{slug}", topic=topic.arn, protocol=sub.protocol, endpoint=sub.endpoint, opts=child
                )
        aws.cloudwatch.EventTarget(f"{name}-pipeline-outcome-topic", rule=rule.name, arn=self.notifications_topic.arn, opts=child)

        self.register_outputs(
            {
                "documents": {stem: d.name for stem, d in self.documents.items()},
                "approvers_topic_arn": self.approvers_topic.arn,
                "notifications_topic_arn": self.notifications_topic.arn,
                "handlers_key": self.handlers_key,
            }
        )
