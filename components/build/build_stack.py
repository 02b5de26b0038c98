"""Root of the `build` stack (the AMI factory's account).

Order matters once, at the top: the roles exist bare before the keys whose policies name them.
"""

from __future__ import annotations

from typing import Any

import pulumi

from estate.config import StackConfig
from estate.naming import automation_document_name, bucket_name, central_bucket_arn, security_topic_arn
from estate.pulumi_config import PROJECT_DIR
from estate.stack_files import prod_envs

from ..lib.account_baseline import AccountBaseline, AccountBaselineArgs
from ..lib.account_storage import account_storage
from ..lib.providers import account_provider, stack_role_arn
from ..lib.secure_bucket import SecureBucket, SecureBucketArgs
from .build_network import BuildNetwork, BuildNetworkArgs
from .factory_config import FactoryConfig, factory_config
from .factory_keys import factory_keys
from .factory_roles import FactoryRoles
from .factory_schedules import RESCAN_STEM, FactorySchedules, FactorySchedulesArgs
from .image_factory import PIPELINE_STEM, ImageFactory, ImageFactoryArgs
from .packer_pipeline import PackerPipeline, PackerPipelineArgs, PackerRoles
from .service_catalog import ServiceCatalog, ServiceCatalogArgs


def rescan_values(
    cfg: StackConfig, factory: FactoryConfig, roles: FactoryRoles, network: BuildNetwork, findings_bucket: str
) -> dict[str, Any]:
    """What the scheduled rescan may be started with, by the rescan document's parameter names."""
    return {
        "AutomationAssumeRole": roles.arns["automation"],
        "PipelineRoleArn": roles.arns["automation"],
        "PipelineDocument": automation_document_name(PIPELINE_STEM),
        "SubnetId": network.build_subnet_ids[0],
        "SecurityGroupIds": [network.build_security_group.id],
        "InstanceProfileName": roles.build_instance_profile.name,
        "EvidenceBucket": findings_bucket,
        "TopicArn": security_topic_arn(cfg.estate),
        # No WorkloadAccounts: the rescan reads every env under /bakehouse/factory/targets, so the
        # schedule's input stays the same size (StartAutomationExecution: 50 values per parameter).
        # The org's prod envs (bakehouse:org.prodEnvs), whose images a quarantine marks in every prod account.
        "ProdEnvs": list(prod_envs(PROJECT_DIR)),
        "BatchSize": factory.rescan.batch_size,
        "SeverityThreshold": factory.severity_threshold,
    }


class BuildStack(pulumi.ComponentResource):
    settings = staticmethod(factory_config)

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions, settings: FactoryConfig | None = None):
        factory = settings or factory_config(cfg)  # first: a bad section declares nothing
        super().__init__("bakehouse:build:Stack", name, None, opts)
        assert cfg.network is not None  # the loader requires a network on build stacks
        roles = FactoryRoles(f"{name}-roles", cfg, pulumi.ResourceOptions(parent=self), factory=factory)
        # The Packer engine's roles, only when a family builds with it: CodePipeline reads the bundle
        # (scripts key), CodeBuild's Packer encrypts and launches with the factory key.
        packer_roles = (
            PackerRoles(f"{name}-packer-roles", cfg, pulumi.ResourceOptions(parent=self)) if factory.packer_families else None
        )
        # Automation and the instances read the scripts bucket, encrypted with the account key.
        storage = account_storage(
            name,
            cfg,
            self,
            key_users=[
                roles.automation.arn,
                roles.build_instance.arn,
                roles.catalog_launch.arn,
                # CodePipeline reads the Packer bundle; CodeBuild the AVML it stages
                *([packer_roles.pipeline.arn, packer_roles.build.arn] if packer_roles else []),
            ],
        )
        keys = factory_keys(
            name,
            cfg,
            factory.regions,
            factory.target_accounts,
            users=[
                roles.automation.arn,
                roles.build_instance.arn,
                roles.scheduler.arn,
                roles.lifecycle.arn,
                *([packer_roles.build.arn] if packer_roles else []),
            ],
            parent=self,
            # Builds, validation and scans launch with these keys; distribution copies.
            launchers=[roles.arns["automation"], *([packer_roles.arns["build"]] if packer_roles else [])],
        )
        child = pulumi.ResourceOptions(parent=self)
        # The factory key is the EBS default: the roles that launch here may use it and let EBS grant
        # on it. block-ingress keeps the firewall's NAT egress working; no workload pack (the factory
        # launches Amazon's base images, which that pack forbids).
        self.baseline = AccountBaseline(
            f"{name}-baseline",
            AccountBaselineArgs.for_estate(cfg.estate, cfg.account_id, kms_key_arn=keys.home.arn, vpc_block_mode="block-ingress"),
            opts=child,
        )
        scripts_name = bucket_name("scripts", cfg.account_id, cfg.region)
        self.scripts_bucket = SecureBucket(
            f"{name}-scripts",
            SecureBucketArgs(
                purpose="build-scripts",
                kms_key_arn=storage.key.arn,
                access_log_bucket=storage.access_logs.name,
                bucket_name=scripts_name,
            ),
            opts=child,
        )
        # Validation's Inspector summaries: the record of why an image was (not) approved.
        findings_name = bucket_name("findings", cfg.account_id, cfg.region)
        self.findings_bucket = SecureBucket(
            f"{name}-findings",
            SecureBucketArgs(
                purpose="image-findings",
                kms_key_arn=storage.key.arn,
                access_log_bucket=storage.access_logs.name,
                bucket_name=findings_name,
            ),
            opts=child,
        )
        self.network = BuildNetwork(
            f"{name}-network",
            BuildNetworkArgs(
                stack=cfg.stack,
                network=cfg.network,
                region=cfg.region,
                egress_domains=factory.egress_domains,
                kms_key_arn=keys.home.arn,
                logs_kms_key_arn=storage.key.arn,
                flow_log_bucket_arn=central_bucket_arn(cfg.estate, "flowlogs"),
            ),
            opts=child,
        )
        self.catalog = ServiceCatalog(
            f"{name}-catalog",
            ServiceCatalogArgs(
                region=cfg.region,
                account_id=cfg.account_id,
                workload_ous=factory.workload_ous,
                launch_role_names=factory.launch_role_names,
                launch_role=roles.catalog_launch,
                templates_bucket=scripts_name,
                templates_kms_key_arn=storage.key.arn,
                tag_options=factory.catalog_tag_options,
                regional_providers={
                    region: account_provider(
                        f"{name}-catalog-{region}",
                        account_id=cfg.account_id,
                        region=region,
                        role_arn=stack_role_arn(cfg),
                        tags=cfg.default_tags,
                        session_name=f"bakehouse-{cfg.stack}-{region}",
                        opts=pulumi.ResourceOptions(parent=self),
                    )
                    for region in factory.catalog_regions
                    if region != cfg.region
                },
            ),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[self.scripts_bucket])),
        )
        self.factory = ImageFactory(
            f"{name}-factory",
            ImageFactoryArgs(
                cfg=cfg,
                factory=factory,
                automation_role=roles.automation,
                build_instance_role=roles.build_instance,
                role_arns=roles.arns,
                scripts_bucket_name=scripts_name,
                scripts_key_arn=storage.key.arn,
                factory_key_arn=keys.home.arn,
                image_key_arns=keys.all_arns,
                region_key_arns={region: key.arn for region, key in keys.regional.items()},
                findings_bucket_name=findings_name,
                subnet_arns=self.network.build_subnet_arns,
                subnet_ids=self.network.build_subnet_ids,
                security_group_id=self.network.build_security_group.id,
                security_group_arn=self.network.build_security_group.arn,
                product_arn=self.catalog.product_arn,
                product_id=self.catalog.product.id if self.catalog.product else None,
                portfolio_id=self.catalog.portfolio.id,
                regional_catalogs=self.catalog.regional_ids,
            ),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[self.scripts_bucket, self.findings_bucket])),
        )
        self.packer = (
            PackerPipeline(
                f"{name}-packer",
                PackerPipelineArgs(
                    cfg=cfg,
                    factory=factory,
                    roles=packer_roles,
                    vpc_id=self.network.vpc.id,
                    subnet_ids=self.network.build_subnet_ids,
                    subnet_arns=self.network.build_subnet_arns,
                    security_group_id=self.network.build_security_group.id,
                    security_group_arn=self.network.build_security_group.arn,
                    scripts_bucket_name=scripts_name,
                    scripts_key_arn=storage.key.arn,
                    factory_key_arn=keys.home.arn,
                    access_log_bucket=storage.access_logs.name,
                    build_instance_role_arn=roles.arns["build_instance"],
                    build_instance_profile=roles.build_instance_profile.name,
                    automation_role_arn=roles.arns["automation"],
                    notifications_topic_arn=self.factory.notifications_topic.arn,
                ),
                opts=child.merge(pulumi.ResourceOptions(depends_on=[self.factory])),
            )
            if packer_roles
            else None
        )
        rescan_doc = self.factory.documents.get(RESCAN_STEM)
        self.schedules = FactorySchedules(
            f"{name}-schedules",
            FactorySchedulesArgs(
                cfg=cfg,
                factory=factory,
                key_arn=keys.home.arn,
                scheduler_role=roles.scheduler,
                lifecycle_role=roles.lifecycle,
                role_arns=roles.arns,
                rescan_values=rescan_values(cfg, factory, roles, self.network, findings_name),
                depends_on=[rescan_doc] if rescan_doc else [],
            ),
            opts=child,
        )
        self.exports = {
            "accountId": cfg.account_id,
            "kmsKeyArn": storage.key.arn,
            "accessLogBucket": storage.access_logs.name,
            "scriptsBucket": self.scripts_bucket.name,
            "findingsBucket": self.findings_bucket.name,
            "factoryKeyArn": keys.home.arn,
            "imageKeyArns": {region: key.arn for region, key in keys.regional.items()},
            "automationRoleArn": roles.automation.arn,
            "buildSubnetIds": self.network.build_subnet_ids,
            "buildSecurityGroupId": self.network.build_security_group.id,
            "documents": {stem: doc.name for stem, doc in self.factory.documents.items()},
            "approversTopicArn": self.factory.approvers_topic.arn,
            "notificationsTopicArn": self.factory.notifications_topic.arn,
            "portfolioId": self.catalog.portfolio.id,
            "productId": self.catalog.product.id if self.catalog.product else None,
            "lifecycleFunction": self.schedules.lifecycle.name if self.schedules.lifecycle else None,
            "packerTwinRepository": self.packer.repository.repository_url if self.packer else None,
        }
        self.register_outputs(self.exports)
