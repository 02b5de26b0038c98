"""The build account's roles, created bare (trust only) before anything else.

KMS refuses a key policy naming a principal that does not exist yet, and the factory's keys name
these roles; their permissions, which name the keys, buckets and documents, are attached later as
inline policies by the component that owns those resources. Fixed names keep every ARN known at
preview, so the policy pack and the key policies can read them.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from estate.config import StackConfig
from estate.naming import CATALOG_LAUNCH_ROLE, FACTORY_AUTOMATION_ROLE, role_arn

from ..lib.iam import assume_role_document, document, service_trust, statement
from .factory_config import APPROVER_ROLE, FactoryConfig, factory_config

BUILD_INSTANCE_ROLE = "BakehouseBuildInstance"
SCHEDULER_ROLE = "BakehouseFactoryScheduler"
LIFECYCLE_ROLE = "BakehouseImageLifecycle"
SSM_CORE_POLICY = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


def approver_statements(cfg: StackConfig) -> list[dict[str, Any]]:
    """Answer the factory's approval steps and nothing else.

    SendAutomationSignal takes only the automation-execution resource, whose ARN carries the execution
    id, not the document (Service Authorization Reference, "Actions defined by AWS Systems Manager"):
    the account's executions are the narrowest scope IAM offers, and aws:approve itself accepts a
    decision only from the principals in its Approvers list, which only Bakehouse-ApproveImage names.
    """
    region, account = cfg.region, cfg.account_id
    return [
        statement(
            "AnswerFactoryApprovals", ["ssm:SendAutomationSignal"], [f"arn:aws:ssm:{region}:{account}:automation-execution/*"]
        ),
    ]


def approver_trust(principals: tuple[str, ...]) -> dict[str, Any]:
    return statement("TrustConfiguredApprovers", ["sts:AssumeRole"], principals={"AWS": list(principals)})


class FactoryRoles(pulumi.ComponentResource):
    """automation (SSM), build instance (EC2), scheduler, lifecycle (Lambda), catalog launch, approver."""

    def __init__(
        self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions | None = None, factory: FactoryConfig | None = None
    ):
        super().__init__("bakehouse:build:FactoryRoles", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = cfg.account_id
        factory = factory or factory_config(cfg)

        def role(key: str, role_name: str, service: str, description: str) -> aws.iam.Role:
            return aws.iam.Role(
                f"{name}-{key}",
                name=role_name,
                description=description,
                assume_role_policy=assume_role_document(service_trust(service, account)),
                max_session_duration=3600,
                opts=child,
            )

        self.automation = role(
            "automation", FACTORY_AUTOMATION_ROLE, "ssm.amazonaws.com", "Runs the image factory's SSM Automation documents"
        )
        self.build_instance = role(
            "build-instance",
            BUILD_INSTANCE_ROLE,
            "ec2.amazonaws.com",
            "Build, validation and scan instances: SSM managed, read the build scripts",
        )
        self.scheduler = role(
            "scheduler",
            SCHEDULER_ROLE,
            "scheduler.amazonaws.com",
            "EventBridge Scheduler: starts the rescan automation and the lifecycle function",
        )
        self.lifecycle = role(
            "lifecycle", LIFECYCLE_ROLE, "lambda.amazonaws.com", "Image lifecycle function: deprecates and retires old images"
        )
        self.catalog_launch = role(
            "catalog-launch",
            CATALOG_LAUNCH_ROLE,
            "servicecatalog.amazonaws.com",
            "Service Catalog launch constraint: provisions the hardened-instance product",
        )
        # Configured (bakehouse:factory.approverPrincipals), never guessed: the people who approve images.
        self.approver = aws.iam.Role(
            f"{name}-approver",
            name=APPROVER_ROLE,
            max_session_duration=3600,
            description="Answers the image factory's approval steps (ssm:SendAutomationSignal only)",
            assume_role_policy=assume_role_document(approver_trust(factory.approver_principals)),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-approver-policy", role=self.approver.name, policy=document(*approver_statements(cfg)), opts=child
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-build-instance-ssm-core", role=self.build_instance.name, policy_arn=SSM_CORE_POLICY, opts=child
        )
        self.build_instance_profile = aws.iam.InstanceProfile(
            f"{name}-build-instance-profile", name=BUILD_INSTANCE_ROLE, role=self.build_instance.name, opts=child
        )

        # Known at preview (fixed names), for policies that must name these roles.
        self.arns = {
            "automation": role_arn(account, FACTORY_AUTOMATION_ROLE),
            "build_instance": role_arn(account, BUILD_INSTANCE_ROLE),
            "scheduler": role_arn(account, SCHEDULER_ROLE),
            "lifecycle": role_arn(account, LIFECYCLE_ROLE),
            "catalog_launch": role_arn(account, CATALOG_LAUNCH_ROLE),
            "approver": role_arn(account, APPROVER_ROLE),
        }
        self.register_outputs(
            {"automation_role_arn": self.automation.arn, "build_instance_profile": self.build_instance_profile.name}
        )
