"""What an app team launches with: an instance role scoped to its environment, a log group, a
launch template on the approved AMI, and Session Manager (logged centrally) as the only way in."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from estate.naming import PREFIX, central_key_alias, env_prefix

from ..lib.iam import document, service_trust, statement

# Incident response may attach a revocation policy to roles on this path, and to nothing else.
APP_ROLE_PATH = f"/{PREFIX}/app/"
SESSION_DOCUMENT = "SSM-SessionManagerRunShell"  # the name AWS reads Session Manager preferences from


def app_role_name(env: str) -> str:
    return f"{PREFIX}-{env}-app"


def log_group_name(env: str) -> str:
    return f"/{PREFIX}/{env}/app"


@dataclass(frozen=True)
class AppAccessArgs:
    env: str
    region: str
    account_id: str
    security_account_id: str
    home_region: str
    kms_key_arn: pulumi.Input[str]
    ami_parameter: str  # /bakehouse/<env>/ami/<family>
    parameter_names: Sequence[str]  # full names the user data lists (never values)
    instance_type: str
    log_retention_days: int
    vpc_id: pulumi.Input[str]
    vpc_cidr: str
    gateway_prefix_list_ids: Sequence[pulumi.Input[str]]
    extra_https_cidrs: Sequence[str]  # endpoint hub / egress proxy networks
    sessions_bucket: str
    evidence_bucket: str  # incident response uploads memory captures from the instance itself
    proxy: tuple[str, int] | None = None  # egress proxy network and port, when egress is configured

    @property
    def parameter_arn_prefix(self) -> str:
        return f"arn:aws:ssm:{self.region}:{self.account_id}:parameter{env_prefix(self.env)}"


def own_instance_arn(region: str, account_id: str, instance_id: str) -> str:
    return f"arn:aws:ec2:{region}:{account_id}:instance/{instance_id}"


def memory_capture_prefix(finding_id: str, instance_arn: str) -> str:
    """Where an instance uploads its own memory capture: incidents/<finding>/<instance ARN>/ (the key
    layout handlers/isolate.py must use for the capture and for the Run Command output)."""
    return f"incidents/{finding_id}/{instance_arn}/"


def instance_role_statements(args: AppAccessArgs) -> list[dict[str, Any]]:
    """Least privilege for an app instance: its environment's parameters and key, its log group,
    Session Manager, and session logs into the central bucket under this account's prefix."""
    params = args.parameter_arn_prefix
    log_group = f"arn:aws:logs:{args.region}:{args.account_id}:log-group:{log_group_name(args.env)}"
    return [
        statement(
            "ReadOwnEnvironmentParameters",
            ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
            [params, f"{params}/*"],
        ),
        statement(
            "DecryptOwnEnvironmentSecretsViaSsm",
            ["kms:Decrypt"],
            [args.kms_key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": f"ssm.{args.region}.amazonaws.com"},
                "StringLike": {"kms:EncryptionContext:PARAMETER_ARN": f"{params}/*"},
            },
        ),
        statement(
            "WriteOwnLogGroup",
            ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [log_group, f"{log_group}:log-stream:*"],
        ),
        statement(
            "RegisterAsManagedInstance",
            ["ssm:UpdateInstanceInformation"],
            [f"arn:aws:ec2:{args.region}:{args.account_id}:instance/*"],
        ),
        # Session Manager's agent channel APIs have no resource-level permissions: "*" is the only form.
        statement(
            "SessionManagerAgentChannel",
            [
                "ssmmessages:CreateControlChannel",
                "ssmmessages:CreateDataChannel",
                "ssmmessages:OpenControlChannel",
                "ssmmessages:OpenDataChannel",
                "ec2messages:AcknowledgeMessage",
                "ec2messages:DeleteMessage",
                "ec2messages:FailMessage",
                "ec2messages:GetEndpoint",
                "ec2messages:GetMessages",
                "ec2messages:SendReply",
            ],
            ["*"],
        ),
        # The agent decrypts each session's data key itself (not through SSM), under the context Session
        # Manager sets: {aws:ssm:SessionId, aws:ssm:TargetId=<instance id>}, so only its own sessions.
        # ec2:InstanceID is not in a KMS request; ec2:SourceInstanceARN is, for instance-profile credentials,
        # and the target id from the encryption context may be a variable in a KMS request that carries it
        # (IAM user guide, "IAM policy elements: Variables and tags"; KMS "kms:EncryptionContext:context-key").
        statement(
            "DecryptOwnSessionKeys",
            ["kms:Decrypt"],
            [args.kms_key_arn],
            conditions={
                "ArnEquals": {
                    "ec2:SourceInstanceARN": own_instance_arn(
                        args.region, args.account_id, "${kms:EncryptionContext:aws:ssm:TargetId}"
                    )
                },
                "Null": {"kms:EncryptionContext:aws:ssm:SessionId": "false"},
            },
        ),
        statement("SessionLogsToCentralBucket", ["s3:PutObject"], [f"arn:aws:s3:::{args.sessions_bucket}/{args.account_id}/*"]),
        statement("SessionLogBucketEncryptionCheck", ["s3:GetEncryptionConfiguration"], [f"arn:aws:s3:::{args.sessions_bucket}"]),
        # The central bucket's key lives in the security account; named by alias, since its id is not known here.
        statement(
            "SessionLogsCentralKey",
            ["kms:GenerateDataKey"],
            [f"arn:aws:kms:{args.home_region}:{args.security_account_id}:key/*"],
            conditions={
                "ForAnyValue:StringEquals": {"kms:ResourceAliases": central_key_alias("sessions")},
                "StringEquals": {"kms:ViaService": f"s3.{args.home_region}.amazonaws.com"},
            },
        ),
        # The agent uploads memory captures (and the command's output) with the instance's own credentials,
        # under memory_capture_prefix(); ec2:SourceInstanceARN is a policy variable in every request made with
        # instance-profile credentials (IAM user guide, "IAM policy elements: Variables and tags"), so each
        # instance reaches its own prefix only.
        statement(
            "MemoryCaptureToOwnEvidencePrefix",
            ["s3:PutObject"],
            [f"arn:aws:s3:::{args.evidence_bucket}/{memory_capture_prefix('*', '${ec2:SourceInstanceARN}')}*"],
        ),
        statement(
            "EvidenceCentralKey",
            ["kms:GenerateDataKey"],
            [f"arn:aws:kms:{args.home_region}:{args.security_account_id}:key/*"],
            conditions={
                "ForAnyValue:StringEquals": {"kms:ResourceAliases": central_key_alias("evidence")},
                "StringEquals": {"kms:ViaService": f"s3.{args.home_region}.amazonaws.com"},
            },
        ),
    ]


def user_data(env: str, parameter_names: Sequence[str], log_group: str) -> str:
    """Boot script naming what the app reads; values (and secrets) are fetched at runtime, never embedded."""
    lines = [
        "#!/bin/bash",
        "# Bakehouse: configuration lives in Parameter Store; this script names it and holds no values.",
        "set -euo pipefail",
        "install -d -m 0755 /etc/bakehouse",
        f"echo 'BAKEHOUSE_PARAMETER_PREFIX={env_prefix(env)}' > /etc/bakehouse/env",
        f"echo 'BAKEHOUSE_LOG_GROUP={log_group}' >> /etc/bakehouse/env",
        "cat > /etc/bakehouse/parameters <<'NAMES'",
        *sorted(parameter_names),
        "NAMES",
    ]
    return base64.b64encode(("\n".join(lines) + "\n").encode()).decode()


class AppAccess(pulumi.ComponentResource):
    def __init__(self, name: str, args: AppAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:workload:AppAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=log_group_name(args.env),
            kms_key_id=args.kms_key_arn,
            retention_in_days=args.log_retention_days,
            opts=child,
        )
        self.role = aws.iam.Role(
            f"{name}-role",
            name=app_role_name(args.env),
            path=APP_ROLE_PATH,
            description=f"Bakehouse {args.env} app instances: own parameters, key, log group and Session Manager",
            assume_role_policy=document(service_trust("ec2.amazonaws.com", args.account_id)),
            max_session_duration=3600,
            opts=child,
        )
        self.role_policy = aws.iam.RolePolicy(
            f"{name}-role-policy", role=self.role.id, policy=document(*instance_role_statements(args)), opts=child
        )
        self.instance_profile = aws.iam.InstanceProfile(
            f"{name}-profile", name=app_role_name(args.env), path=APP_ROLE_PATH, role=self.role.name, opts=child
        )

        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="App instances: no inbound at all; HTTPS out to endpoints",
            ingress=[],  # Session Manager needs no inbound port; nothing opens 22 or 3389
            egress=_egress_rules(args),
            opts=child,
        )

        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-template",
            name=f"{PREFIX}-{args.env}-app",
            description=f"Bakehouse {args.env}: approved AMI from {args.ami_parameter}",
            image_id=f"resolve:ssm:{args.ami_parameter}",
            instance_type=args.instance_type,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(name=self.instance_profile.name),
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1, instance_metadata_tags="disabled"
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        encrypted="true",
                        kms_key_id=args.kms_key_arn,
                        volume_type="gp3",
                        volume_size=20,
                        delete_on_termination="true",
                    ),
                )
            ],
            vpc_security_group_ids=[self.security_group.id],
            monitoring=aws.ec2.LaunchTemplateMonitoringArgs(enabled=True),
            user_data=user_data(args.env, args.parameter_names, log_group_name(args.env)),
            update_default_version=True,
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(
                    resource_type=kind, tags={"bakehouse:env": args.env, "bakehouse:launched-from": "app-template"}
                )
                for kind in ("instance", "volume")
            ],
            opts=child,
        )

        self.session_preferences = aws.ssm.Document(
            f"{name}-session-preferences",
            name=SESSION_DOCUMENT,
            document_type="Session",
            document_format="JSON",
            content=session_preferences(args.sessions_bucket, args.account_id, args.kms_key_arn),
            opts=child,
        )
        self.register_outputs(
            {
                "instance_profile_name": self.instance_profile.name,
                "launch_template_id": self.launch_template.id,
                "log_group_name": self.log_group.name,
            }
        )


def _egress_rules(args: AppAccessArgs) -> list[aws.ec2.SecurityGroupEgressArgs]:
    rules = [
        aws.ec2.SecurityGroupEgressArgs(
            protocol="tcp", from_port=443, to_port=443, cidr_blocks=[args.vpc_cidr], description="HTTPS to interface endpoints"
        )
    ]
    if args.gateway_prefix_list_ids:
        rules.append(
            aws.ec2.SecurityGroupEgressArgs(
                protocol="tcp",
                from_port=443,
                to_port=443,
                prefix_list_ids=list(args.gateway_prefix_list_ids),
                description="HTTPS to S3 and DynamoDB gateway endpoints",
            )
        )
    for cidr in args.extra_https_cidrs:
        rules.append(
            aws.ec2.SecurityGroupEgressArgs(
                protocol="tcp",
                from_port=443,
                to_port=443,
                cidr_blocks=[cidr],
                description="HTTPS to the endpoint hub or egress proxy",
            )
        )
    if args.proxy is not None and args.proxy[1] != 443:
        cidr, port = args.proxy
        rules.append(
            aws.ec2.SecurityGroupEgressArgs(
                protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_blocks=[cidr],
                description="The build account's filtering egress proxy",
            )
        )
    return rules


def session_preferences(bucket: str, account_id: str, kms_key_arn: pulumi.Input[str]) -> pulumi.Output[str]:
    """Session Manager preferences: transcripts encrypted to the central sessions bucket, sessions
    KMS-encrypted end to end, no run-as, short idle timeout."""
    return pulumi.Output.json_dumps(
        {
            "schemaVersion": "1.0",
            "description": "Bakehouse Session Manager preferences",
            "sessionType": "Standard_Stream",
            "inputs": {
                "s3BucketName": bucket,
                "s3KeyPrefix": account_id,
                "s3EncryptionEnabled": True,
                "cloudWatchLogGroupName": "",
                "cloudWatchEncryptionEnabled": True,
                "cloudWatchStreamingEnabled": False,
                "kmsKeyId": kms_key_arn,
                "runAsEnabled": False,
                "runAsDefaultUser": "",
                "idleSessionTimeout": "20",
                "maxSessionDuration": "60",
                "shellProfile": {"linux": "", "windows": ""},
            },
        }
    )
