"""The second build engine: CodePipeline -> CodeBuild (in the build VPC) -> `packer build`.

Per family with `engine: packer`, a pipeline takes the versioned Packer bundle from the scripts
bucket and runs packer/buildspec.yml in one shared CodeBuild project: first the container twin
(Packer's docker source, pushed to ECR and scanned by Inspector), then the AMI, whose id starts
Bakehouse-ReleaseImage (validate -> approve -> publish -> distribute -> catalog, the same child
documents the SSM engine's Pipeline runs). Roles exist bare first (PackerRoles) because the factory
key's policy names the build role; this component attaches their policies.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from estate.config import StackConfig
from estate.naming import FACTORY_SETTINGS_PARAMETER, automation_document_name, role_arn

from ..lib.account_storage import logs_grant
from ..lib.iam import assume_role_document, document, service_trust, statement
from ..lib.kms_key import KmsKey, KmsKeyArgs, ServiceGrant
from ..lib.secure_bucket import SecureBucket, SecureBucketArgs
from .factory_config import FactoryConfig

PACKER_BUILD_ROLE = "BakehousePackerBuild"
PACKER_PIPELINE_ROLE = "BakehousePackerPipeline"
PROJECT_NAME = "bakehouse-packer"
TWIN_REPOSITORY = "bakehouse/provisioning-twin"
# tools/packer_bundle.py builds this zip (CodePipeline's S3 source hands CodeBuild a .zip, unpacked).
BUNDLE_KEY = "provisioning/packer.zip"
PIPELINE_PREFIX = "bakehouse-packer-"  # one pipeline a family; tools/release.py starts it by this name
# Failed and stopped Packer runs reach the factory's notifications topic, which admits this rule by name.
PACKER_PIPELINE_FAILED_RULE = "bakehouse-packer-pipeline-failed"
SOURCE_ACTION = "Bundle"  # the S3 source action tools/release.py pins to the uploaded zip's version
RELEASE_STEM = "release_image"  # automation/release_image.yaml: the chain after the build
BUILT_BY_TAG = ("bakehouse:built-by", "packer")  # sources.pkr.hcl tags instances, volumes and images so
CANONICAL_ACCOUNT = "099720109477"
BASE_IMAGE_PARAMETERS = (
    "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
)
LOG_GROUP = "/bakehouse/packer"
# ECR's repository-level push actions (ECR user guide, "Private repository policies": push an image).
ECR_PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchGetImage",
    "ecr:DescribeImages",
    "ecr:DescribeImageScanFindings",
)


class PackerRoles(pulumi.ComponentResource):
    """CodeBuild's and CodePipeline's service roles, bare: the keys' policies name them."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:build:PackerRoles", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.build = aws.iam.Role(
            f"{name}-build",
            name=PACKER_BUILD_ROLE,
            max_session_duration=3600,
            description="CodeBuild: runs packer build for the Packer engine families",
            assume_role_policy=assume_role_document(service_trust("codebuild.amazonaws.com", cfg.account_id)),
            opts=child,
        )
        self.pipeline = aws.iam.Role(
            f"{name}-pipeline",
            name=PACKER_PIPELINE_ROLE,
            max_session_duration=3600,
            description="CodePipeline: hands the Packer bundle to CodeBuild",
            assume_role_policy=assume_role_document(service_trust("codepipeline.amazonaws.com", cfg.account_id)),
            opts=child,
        )
        self.arns = {
            "build": role_arn(cfg.account_id, PACKER_BUILD_ROLE),
            "pipeline": role_arn(cfg.account_id, PACKER_PIPELINE_ROLE),
        }
        self.register_outputs(self.arns)


def pipeline_failed_event_pattern(pipeline_names: Sequence[str]) -> str:
    """A run of one of these pipelines that ended FAILED or STOPPED. SUPERSEDED is left out: a newer run
    carries on. (CodePipeline user guide, "Monitoring CodePipeline events": pipeline execution states.)"""
    return json.dumps(
        {
            "source": ["aws.codepipeline"],
            "detail-type": ["CodePipeline Pipeline Execution State Change"],
            "detail": {"pipeline": sorted(pipeline_names), "state": ["FAILED", "STOPPED"]},
        }
    )


def twin_scan_event_pattern(repository_arn: str) -> str:
    """Inspector's "scan complete" for the twin's images (Inspector user guide, "Amazon EventBridge
    event schema for Amazon Inspector events": ECR initial scan; `repository-name` carries the ARN)."""
    return json.dumps(
        {
            "source": ["aws.inspector2"],
            "detail-type": ["Inspector2 Scan"],
            "resources": [repository_arn],
            "detail": {"scan-status": ["INITIAL_SCAN_COMPLETE"]},
        }
    )


def build_statements(
    cfg: StackConfig,
    *,
    repository_arn: pulumi.Input[str],
    artifact_bucket_arn: str,
    scripts_bucket_arn: str,
    scripts_key_arn: pulumi.Input[str],
    engine_key_arn: pulumi.Input[str],
    factory_key_arn: pulumi.Input[str],
    subnet_arns: Sequence[pulumi.Input[str]],
    security_group_arn: pulumi.Input[str],
    build_instance_role_arn: str,
    automation_role_arn: str,
) -> list[dict[str, Any]]:
    """Least privilege for `packer build` (Packer amazon plugin docs, "IAM Task or Instance Role":
    its minimal EC2 list, less what this template never does: no temporary security group, no volume
    surgery, no sharing) plus CodeBuild's VPC interface, logs, the twin's pushes and one automation."""
    region, account = cfg.region, cfg.account_id
    built_by = {f"aws:RequestTag/{BUILT_BY_TAG[0]}": BUILT_BY_TAG[1]}
    tagged = {f"ec2:ResourceTag/{BUILT_BY_TAG[0]}": BUILT_BY_TAG[1]}
    instances = f"arn:aws:ec2:{region}:{account}:instance/*"
    images = [f"arn:aws:ec2:{region}::image/*", f"arn:aws:ec2:{region}::snapshot/*"]
    return [
        # Describe* and GetAuthorizationToken take no resource ARN; the region is the only scope AWS offers.
        statement(
            "DescribeWithoutResourceScope",
            [
                "ec2:DescribeImages",
                "ec2:DescribeInstances",
                "ec2:DescribeInstanceStatus",
                "ec2:DescribeRegions",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeSnapshots",
                "ec2:DescribeSubnets",
                "ec2:DescribeTags",
                "ec2:DescribeVolumes",
                "ec2:DescribeKeyPairs",
                "ec2:DescribeVpcs",
                "ec2:DescribeDhcpOptions",
                "ec2:DescribeNetworkInterfaces",
                "ecr:GetAuthorizationToken",
            ],
            ["*"],
            conditions={"StringEquals": {"aws:RequestedRegion": region}},
        ),
        statement(
            "CodeBuildInterfacesInBuildNetwork",
            ["ec2:CreateNetworkInterface"],
            [f"arn:aws:ec2:{region}:{account}:network-interface/*", *subnet_arns, security_group_arn],
        ),
        statement(
            "CodeBuildRemovesItsInterfaces",
            ["ec2:DeleteNetworkInterface"],
            [f"arn:aws:ec2:{region}:{account}:network-interface/*"],
        ),
        # CodeBuild in a VPC (CodeBuild user guide, "Use CodeBuild with Amazon VPC": service role policy).
        statement(
            "CodeBuildInterfacePermission",
            ["ec2:CreateNetworkInterfacePermission"],
            [f"arn:aws:ec2:{region}:{account}:network-interface/*"],
            conditions={
                "StringEquals": {"ec2:AuthorizedService": "codebuild.amazonaws.com"},
                "ArnEquals": {"ec2:Subnet": list(subnet_arns)},
            },
        ),
        statement(
            "LaunchPackerInstancesTagged",
            ["ec2:RunInstances"],
            [instances, f"arn:aws:ec2:{region}:{account}:volume/*"],
            conditions={"StringEquals": built_by},
        ),
        statement(
            "LaunchWithInterfacesAndKeyPairs",
            ["ec2:RunInstances"],
            [f"arn:aws:ec2:{region}:{account}:network-interface/*", f"arn:aws:ec2:{region}:{account}:key-pair/packer_*"],
        ),
        statement("LaunchIntoBuildNetworkOnly", ["ec2:RunInstances"], [*subnet_arns, security_group_arn]),
        statement(
            "LaunchFromAmazonOrCanonicalImages",
            ["ec2:RunInstances"],
            [f"arn:aws:ec2:{region}::image/*"],
            conditions={"StringEquals": {"ec2:Owner": ["amazon", CANONICAL_ACCOUNT]}},
        ),
        statement(
            "TagAtLaunch",
            ["ec2:CreateTags"],
            [instances, f"arn:aws:ec2:{region}:{account}:volume/*"],
            conditions={"StringEquals": {"ec2:CreateAction": ["RunInstances"]}},
        ),
        statement(
            "ManagePackerInstancesOnly",
            ["ec2:StopInstances", "ec2:TerminateInstances", "ec2:ModifyInstanceAttribute", "ec2:CreateImage"],
            [instances],
            conditions={"StringEquals": tagged},
        ),
        # The image and its snapshots do not exist before CreateImage, so they carry no tag to test.
        statement("CreateImagesInHomeRegion", ["ec2:CreateImage"], images),
        statement(
            "TagImagesWithBakehouseKeys",
            ["ec2:CreateTags"],
            images,
            conditions={"ForAllValues:StringLike": {"aws:TagKeys": ["bakehouse:*", "Name"]}},
        ),
        statement("ReadImageAttributes", ["ec2:DescribeImageAttribute"], [images[0]]),
        # Packer's temporary key pair for the Session Manager tunnel is named packer_<uuid>.
        statement(
            "TemporaryKeyPairs", ["ec2:CreateKeyPair", "ec2:DeleteKeyPair"], [f"arn:aws:ec2:{region}:{account}:key-pair/packer_*"]
        ),
        statement(
            "TunnelToPackerInstancesOnly",
            ["ssm:StartSession"],
            [instances],
            conditions={"StringEquals": {f"ssm:resourceTag/{BUILT_BY_TAG[0]}": BUILT_BY_TAG[1]}},
        ),
        statement(
            "PortForwardingDocument", ["ssm:StartSession"], [f"arn:aws:ssm:{region}::document/AWS-StartPortForwardingSession"]
        ),
        statement("EndOwnSessions", ["ssm:TerminateSession"], [f"arn:aws:ssm:{region}:{account}:session/*"]),
        statement(
            "PassBuildInstanceRoleToEc2",
            ["iam:PassRole"],
            [build_instance_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        statement(
            "ReadBaseImageAndFactorySettings",
            ["ssm:GetParameter", "ssm:GetParameters"],
            [
                *(f"arn:aws:ssm:{region}::parameter{p}" for p in BASE_IMAGE_PARAMETERS),
                f"arn:aws:ssm:{region}:{account}:parameter{FACTORY_SETTINGS_PARAMETER}",
            ],
        ),
        statement(
            "WriteBuildLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [f"arn:aws:logs:{region}:{account}:log-group:{LOG_GROUP}:*"],
        ),
        statement("PipelineArtifacts", ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], [f"{artifact_bucket_arn}/*"]),
        # The bundle's commit is its object metadata (HEAD of a version needs GetObjectVersion).
        statement("ReadBundleMetadata", ["s3:GetObject", "s3:GetObjectVersion"], [f"{scripts_bucket_arn}/{BUNDLE_KEY}"]),
        # The memory-capture tool the release staged (tools/release.py AVML_KEY), fetched by its pinned
        # version and checked against its SHA-256 before Packer provisions it into the image.
        statement("ReadMemoryCaptureTool", ["s3:GetObject", "s3:GetObjectVersion"], [f"{scripts_bucket_arn}/tools/avml/*"]),
        statement(
            "DecryptScriptsThroughS3",
            ["kms:Decrypt"],
            [scripts_key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
        ),
        statement("PushTwinOnly", list(ECR_PUSH_ACTIONS), [repository_arn]),
        statement("UseEngineKey", ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"], [engine_key_arn]),
        # Packer encrypts the AMI's volumes with the factory key; EBS creates its grant with our credentials.
        statement(
            "UseFactoryKeyForImageVolumes",
            ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
            [factory_key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"ec2.{region}.amazonaws.com"}},
        ),
        statement(
            "EbsGrantsOnFactoryKey",
            ["kms:CreateGrant"],
            [factory_key_arn],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        ),
        statement(
            "StartReleaseChainOnly",
            ["ssm:StartAutomationExecution"],
            [f"arn:aws:ssm:{region}:{account}:automation-definition/{automation_document_name(RELEASE_STEM)}:*"],
        ),
        statement(
            "PassAutomationRoleToSsm",
            ["iam:PassRole"],
            [automation_role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}},
        ),
    ]


def pipeline_statements(
    cfg: StackConfig,
    *,
    project_arn: str,
    artifact_bucket_arn: str,
    scripts_bucket_arn: str,
    scripts_key_arn: pulumi.Input[str],
    engine_key_arn: pulumi.Input[str],
) -> list[dict[str, Any]]:
    region = cfg.region
    return [
        statement("ReadBundle", ["s3:GetObject", "s3:GetObjectVersion"], [f"{scripts_bucket_arn}/{BUNDLE_KEY}"]),
        statement("SeeBundleVersions", ["s3:GetBucketVersioning"], [scripts_bucket_arn]),
        statement(
            "DecryptBundleThroughS3",
            ["kms:Decrypt"],
            [scripts_key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
        ),
        statement("PipelineArtifacts", ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"], [f"{artifact_bucket_arn}/*"]),
        statement("UseEngineKey", ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"], [engine_key_arn]),
        statement("RunPackerProjectOnly", ["codebuild:StartBuild", "codebuild:BatchGetBuilds"], [project_arn]),
    ]


@dataclass(frozen=True)
class PackerPipelineArgs:
    cfg: StackConfig
    factory: FactoryConfig
    roles: PackerRoles
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    subnet_arns: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    security_group_arn: pulumi.Input[str]
    scripts_bucket_name: str
    scripts_key_arn: pulumi.Input[str]
    factory_key_arn: pulumi.Input[str]
    access_log_bucket: pulumi.Input[str]
    build_instance_role_arn: str
    build_instance_profile: pulumi.Input[str]
    automation_role_arn: str
    notifications_topic_arn: pulumi.Input[str]  # the factory's (ImageFactory), which admits PACKER_PIPELINE_FAILED_RULE
    log_retention_days: int = 365


class PackerPipeline(pulumi.ComponentResource):
    """ECR twin repository, CodeBuild project, one pipeline per Packer family, the twin's scan rule."""

    def __init__(self, name: str, args: PackerPipelineArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:build:PackerPipeline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cfg, region, account = args.cfg, args.cfg.region, args.cfg.account_id
        scripts_arn = f"arn:aws:s3:::{args.scripts_bucket_name}"

        # The engine's own key: ECR creates its grant with the deployer's credentials through ECR, which
        # the factory key does not admit; logs and EventBridge -> SNS use it as services.
        self.key = KmsKey(
            f"{name}-key",
            KmsKeyArgs(
                description=f"Bakehouse {cfg.stack}: Packer engine artifacts, logs, twin images, scan topic",
                alias="bakehouse-packer",
                admin_arns=[cfg.deploy_role_arn],
                user_arns=[args.roles.arns["build"], args.roles.arns["pipeline"]],
                services=[
                    logs_grant(cfg),
                    ServiceGrant(
                        sid="EventBridgeToTwinTopic",
                        service="events.amazonaws.com",
                        actions=("kms:GenerateDataKey*", "kms:Decrypt"),
                        conditions={"StringEquals": {"aws:SourceAccount": account}},
                    ),
                ],
                extra_statements=[
                    statement(
                        # ECR user guide, "Encryption at rest": the creator needs CreateGrant/RetireGrant/DescribeKey.
                        "DeployerThroughEcr",
                        ["kms:CreateGrant", "kms:RetireGrant", "kms:DescribeKey"],
                        ["*"],
                        principals={"AWS": [cfg.deploy_role_arn]},
                        conditions={
                            "StringEquals": {"kms:ViaService": f"ecr.{region}.amazonaws.com", "kms:CallerAccount": account}
                        },
                    )
                ],
            ),
            opts=child,
        )

        artifacts_name = f"bakehouse-packer-artifacts-{account}-{region}"
        self.artifacts = SecureBucket(
            f"{name}-artifacts",
            SecureBucketArgs(
                purpose="packer-artifacts",
                kms_key_arn=self.key.arn,
                access_log_bucket=args.access_log_bucket,
                bucket_name=artifacts_name,
            ),
            opts=child,
        )
        artifacts_arn = f"arn:aws:s3:::{artifacts_name}"

        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=LOG_GROUP, kms_key_id=self.key.arn, retention_in_days=args.log_retention_days, opts=child
        )

        self.repository = aws.ecr.Repository(
            f"{name}-twin",
            name=TWIN_REPOSITORY,
            image_tag_mutability="IMMUTABLE",
            force_delete=False,
            encryption_configurations=[
                aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=self.key.arn)
            ],
            opts=child,
        )
        # The twins are rehearsals, not products: keep the last few for comparison.
        aws.ecr.LifecyclePolicy(
            f"{name}-twin-lifecycle",
            repository=self.repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": "keep the 30 newest twins",
                            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 30},
                            "action": {"type": "expire"},
                        }
                    ]
                }
            ),
            opts=child,
        )
        # Enhanced scanning is a registry setting: Inspector scans the twins on push (ECR user guide,
        # "Scan images for OS and programming language package vulnerabilities in Amazon ECR").
        aws.ecr.RegistryScanningConfiguration(
            f"{name}-scanning",
            scan_type="ENHANCED",
            rules=[
                aws.ecr.RegistryScanningConfigurationRuleArgs(
                    scan_frequency="SCAN_ON_PUSH",
                    repository_filters=[
                        aws.ecr.RegistryScanningConfigurationRuleRepositoryFilterArgs(
                            filter="bakehouse/*", filter_type="WILDCARD"
                        )
                    ],
                )
            ],
            opts=child,
        )

        project_arn = f"arn:aws:codebuild:{region}:{account}:project/{PROJECT_NAME}"
        aws.iam.RolePolicy(
            f"{name}-build-policy",
            role=args.roles.build.name,
            policy=document(
                *build_statements(
                    cfg,
                    repository_arn=self.repository.arn,
                    artifact_bucket_arn=artifacts_arn,
                    scripts_bucket_arn=scripts_arn,
                    scripts_key_arn=args.scripts_key_arn,
                    engine_key_arn=self.key.arn,
                    factory_key_arn=args.factory_key_arn,
                    subnet_arns=args.subnet_arns,
                    security_group_arn=args.security_group_arn,
                    build_instance_role_arn=args.build_instance_role_arn,
                    automation_role_arn=args.automation_role_arn,
                )
            ),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-pipeline-policy",
            role=args.roles.pipeline.name,
            policy=document(
                *pipeline_statements(
                    cfg,
                    project_arn=project_arn,
                    artifact_bucket_arn=artifacts_arn,
                    scripts_bucket_arn=scripts_arn,
                    scripts_key_arn=args.scripts_key_arn,
                    engine_key_arn=self.key.arn,
                )
            ),
            opts=child,
        )

        env = {
            "TWIN_REPOSITORY": self.repository.repository_url,
            "SCRIPTS_BUCKET": args.scripts_bucket_name,
            "BUNDLE_KEY": BUNDLE_KEY,
            "FACTORY_KMS_KEY_ID": args.factory_key_arn,
            "SUBNET_ID": args.subnet_ids[0],
            "SECURITY_GROUP_ID": args.security_group_id,
            "INSTANCE_PROFILE": args.build_instance_profile,
            "RELEASE_DOCUMENT": automation_document_name(RELEASE_STEM),
            "SEVERITY_THRESHOLD": args.factory.severity_threshold,
        }
        self.project = aws.codebuild.Project(
            f"{name}-project",
            name=PROJECT_NAME,
            description="packer build: container twin, then the AMI",
            service_role=args.roles.build.arn,
            encryption_key=self.key.arn,
            build_timeout=120,
            source=aws.codebuild.ProjectSourceArgs(type="CODEPIPELINE", buildspec="packer/buildspec.yml"),
            artifacts=aws.codebuild.ProjectArtifactsArgs(type="CODEPIPELINE"),
            environment=aws.codebuild.ProjectEnvironmentArgs(
                compute_type="BUILD_GENERAL1_SMALL",
                type="LINUX_CONTAINER",
                image="aws/codebuild/amazonlinux-x86_64-standard:5.0",
                # The docker source needs the Docker daemon in the build container.
                privileged_mode=True,
                image_pull_credentials_type="CODEBUILD",
                environment_variables=[
                    aws.codebuild.ProjectEnvironmentEnvironmentVariableArgs(name=k, value=v, type="PLAINTEXT")
                    for k, v in env.items()
                ],
            ),
            vpc_config=aws.codebuild.ProjectVpcConfigArgs(
                vpc_id=args.vpc_id, subnets=list(args.subnet_ids), security_group_ids=[args.security_group_id]
            ),
            logs_config=aws.codebuild.ProjectLogsConfigArgs(
                cloudwatch_logs=aws.codebuild.ProjectLogsConfigCloudwatchLogsArgs(
                    status="ENABLED", group_name=self.log_group.name
                ),
                s3_logs=aws.codebuild.ProjectLogsConfigS3LogsArgs(status="DISABLED"),
            ),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[self.log_group])),
        )

        self.pipelines = {
            family.name: self._pipeline(name, family.name, family.base, args, artifacts_name, child)
            for family in args.factory.packer_families
        }

        self.twin_topic = aws.sns.Topic(
            f"{name}-twin-scans", name="bakehouse-packer-twin-scans", kms_master_key_id=self.key.arn, opts=child
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-twin-scan",
            name="bakehouse-packer-twin-scan",
            description="Inspector finished the first scan of a provisioning twin",
            event_pattern=self.repository.arn.apply(twin_scan_event_pattern),
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{name}-twin-scans-policy",
            arn=self.twin_topic.arn,
            policy=document(
                statement(
                    "EventBridgeTwinScans",
                    ["sns:Publish"],
                    [self.twin_topic.arn],
                    principals={"Service": "events.amazonaws.com"},
                    conditions={"ArnEquals": {"aws:SourceArn": rule.arn}},
                )
            ),
            opts=child,
        )
        aws.cloudwatch.EventTarget(f"{name}-twin-scan-topic", rule=rule.name, arn=self.twin_topic.arn, opts=child)

        failed = aws.cloudwatch.EventRule(
            f"{name}-pipeline-failed",
            name=PACKER_PIPELINE_FAILED_RULE,
            description="A Packer pipeline run that failed or was stopped: no image came of it",
            event_pattern=pipeline_failed_event_pattern([f"{PIPELINE_PREFIX}{family}" for family in self.pipelines]),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-pipeline-failed-topic", rule=failed.name, arn=args.notifications_topic_arn, opts=child
        )

        self.register_outputs(
            {
                "repository_url": self.repository.repository_url,
                "project": self.project.name,
                "pipelines": {f: p.name for f, p in self.pipelines.items()},
                "twin_topic_arn": self.twin_topic.arn,
            }
        )

    def _pipeline(
        self, name: str, family: str, base: str, args: PackerPipelineArgs, artifacts_name: str, child: pulumi.ResourceOptions
    ) -> aws.codepipeline.Pipeline:
        overrides = json.dumps(
            [
                {"name": "FAMILY", "value": family, "type": "PLAINTEXT"},
                {"name": "BASE", "value": base, "type": "PLAINTEXT"},
                # The S3 source's output variable: the bundle version this run builds.
                {"name": "BUNDLE_VERSION_ID", "value": "#{SourceVariables.VersionId}", "type": "PLAINTEXT"},
            ]
        )
        return aws.codepipeline.Pipeline(
            f"{name}-{family}",
            name=f"{PIPELINE_PREFIX}{family}",
            role_arn=args.roles.pipeline.arn,
            pipeline_type="V2",
            execution_mode="QUEUED",
            artifact_stores=[
                aws.codepipeline.PipelineArtifactStoreArgs(
                    type="S3",
                    location=artifacts_name,
                    encryption_key=aws.codepipeline.PipelineArtifactStoreEncryptionKeyArgs(type="KMS", id=self.key.arn),
                )
            ],
            stages=[
                aws.codepipeline.PipelineStageArgs(
                    name="Source",
                    actions=[
                        aws.codepipeline.PipelineStageActionArgs(
                            name=SOURCE_ACTION,
                            category="Source",
                            owner="AWS",
                            provider="S3",
                            version="1",
                            namespace="SourceVariables",
                            output_artifacts=["bundle"],
                            # Started by the release tool after it uploads the bundle, not by polling.
                            configuration={
                                "S3Bucket": args.scripts_bucket_name,
                                "S3ObjectKey": BUNDLE_KEY,
                                "PollForSourceChanges": "false",
                            },
                        )
                    ],
                ),
                aws.codepipeline.PipelineStageArgs(
                    name="Build",
                    actions=[
                        aws.codepipeline.PipelineStageActionArgs(
                            name="Packer",
                            category="Build",
                            owner="AWS",
                            provider="CodeBuild",
                            version="1",
                            input_artifacts=["bundle"],
                            configuration={"ProjectName": PROJECT_NAME, "EnvironmentVariables": overrides},
                        )
                    ],
                ),
            ],
            opts=child.merge(pulumi.ResourceOptions(depends_on=[self.project])),
        )
