"""Org-wide detection, configured from the security account as delegated administrator (the org
stack registers it): GuardDuty, Security Hub central configuration, Inspector, the Config
aggregator and the organization's IAM Access Analyzer.

These live in the security stack rather than behind a second provider in the org stack: the calls
must be made in this account, this stack already writes here through its own explicit provider, and
it runs after the org stack, which is the order AWS requires (delegate first, then configure).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from estate.config import EstateConfig

from ..lib.iam import document, service_trust

# Every GuardDuty protection plan, with the agents GuardDuty manages for runtime monitoring.
GUARDDUTY_FEATURES = (
    "S3_DATA_EVENTS",
    "EKS_AUDIT_LOGS",
    "EBS_MALWARE_PROTECTION",
    "RDS_LOGIN_EVENTS",
    "LAMBDA_NETWORK_LOGS",
    "RUNTIME_MONITORING",
)
RUNTIME_AGENTS = ("EKS_ADDON_MANAGEMENT", "ECS_FARGATE_AGENT_MANAGEMENT", "EC2_AGENT_MANAGEMENT")
INSPECTOR_RESOURCE_TYPES = ("EC2", "ECR", "LAMBDA", "LAMBDA_CODE")
CONFIG_ORGANIZATIONS_POLICY = "arn:aws:iam::aws:policy/service-role/AWSConfigRoleForOrganizations"


def securityhub_standards(region: str) -> dict[str, str]:
    return {
        "cis-3.0": f"arn:aws:securityhub:{region}::standards/cis-aws-foundations-benchmark/v/3.0.0",
        "fsbp": f"arn:aws:securityhub:{region}::standards/aws-foundational-security-best-practices/v/1.0.0",
    }


@dataclass(frozen=True)
class SecurityServicesArgs:
    estate: EstateConfig
    organization_root_id: str


class SecurityServices(pulumi.ComponentResource):
    def __init__(self, name: str, args: SecurityServicesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:security:SecurityServices", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        estate = args.estate
        home = estate.home_region
        members = [a for a in estate.accounts.all_ids if a != estate.accounts.management]

        self.detector_ids: dict[str, pulumi.Output[str]] = {}
        for region in estate.allowed_regions:
            # Designating this account GuardDuty's delegated administrator (org stack, per region) enables
            # its detector there; creating another would fail, so it is looked up, never created
            # (GuardDuty user guide, "Designating a delegated GuardDuty administrator account"). It keeps
            # the default publishing frequency, which paces only updates to findings already exported
            # (CreateDetector API, FindingPublishingFrequency); new findings still reach EventBridge at once.
            detector = aws.guardduty.get_detector_output(region=region, opts=pulumi.InvokeOutputOptions(parent=self))
            self.detector_ids[region] = detector_id = detector.id
            aws.guardduty.OrganizationConfiguration(
                f"{name}-guardduty-org-{region}",
                detector_id=detector_id,
                auto_enable_organization_members="ALL",
                region=region,
                opts=child,
            )
            for feature in GUARDDUTY_FEATURES:
                agents = RUNTIME_AGENTS if feature == "RUNTIME_MONITORING" else ()
                aws.guardduty.OrganizationConfigurationFeature(
                    f"{name}-guardduty-org-{region}-{feature.lower()}",
                    detector_id=detector_id,
                    name=feature,
                    auto_enable="ALL",
                    region=region,
                    additional_configurations=[
                        aws.guardduty.OrganizationConfigurationFeatureAdditionalConfigurationArgs(name=a, auto_enable="ALL")
                        for a in agents
                    ]
                    or None,
                    opts=child,
                )
                aws.guardduty.DetectorFeature(
                    f"{name}-guardduty-{region}-{feature.lower()}",
                    detector_id=detector_id,
                    name=feature,
                    status="ENABLED",
                    region=region,
                    additional_configurations=[
                        aws.guardduty.DetectorFeatureAdditionalConfigurationArgs(name=a, status="ENABLED") for a in agents
                    ]
                    or None,
                    opts=child,
                )

            aws.inspector2.OrganizationConfiguration(
                f"{name}-inspector-org-{region}",
                region=region,
                auto_enable=aws.inspector2.OrganizationConfigurationAutoEnableArgs(
                    ec2=True, ecr=True, lambda_=True, lambda_code=True
                ),
                opts=child,
            )
            aws.inspector2.Enabler(
                f"{name}-inspector-{region}",
                account_ids=members,
                resource_types=list(INSPECTOR_RESOURCE_TYPES),
                region=region,
                opts=child,
            )

        hub = aws.securityhub.Account(
            f"{name}-securityhub",
            enable_default_standards=False,
            control_finding_generator="SECURITY_CONTROL",
            auto_enable_controls=True,
            region=home,
            opts=child,
        )
        others = [r for r in estate.allowed_regions if r != home]
        self.aggregator = aws.securityhub.FindingAggregator(
            f"{name}-securityhub-aggregator",
            region=home,
            linking_mode="SPECIFIED_REGIONS" if others else "NO_REGIONS",
            specified_regions=others or None,
            opts=child.merge(pulumi.ResourceOptions(depends_on=[hub])),
        )
        # Central configuration requires auto-enable off: the configuration policy decides instead.
        hub_org = aws.securityhub.OrganizationConfiguration(
            f"{name}-securityhub-org",
            auto_enable=False,
            auto_enable_standards="NONE",
            region=home,
            organization_configuration=aws.securityhub.OrganizationConfigurationOrganizationConfigurationArgs(
                configuration_type="CENTRAL"
            ),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[self.aggregator])),
        )
        self.hub_policy = aws.securityhub.ConfigurationPolicy(
            f"{name}-securityhub-policy",
            name="bakehouse-standards",
            region=home,
            description="CIS AWS Foundations 3.0 and AWS Foundational Security Best Practices everywhere",
            configuration_policy=aws.securityhub.ConfigurationPolicyConfigurationPolicyArgs(
                service_enabled=True,
                enabled_standard_arns=list(securityhub_standards(home).values()),
                security_controls_configuration=aws.securityhub.ConfigurationPolicyConfigurationPolicySecurityControlsConfigurationArgs(
                    disabled_control_identifiers=[]
                ),
            ),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[hub_org])),
        )
        aws.securityhub.ConfigurationPolicyAssociation(
            f"{name}-securityhub-policy-root",
            policy_id=self.hub_policy.id,
            target_id=args.organization_root_id,
            region=home,
            opts=child,
        )

        aggregator_role = aws.iam.Role(
            f"{name}-config-aggregator",
            description="Config reads the organization for the aggregator",
            assume_role_policy=document(service_trust("config.amazonaws.com", estate.accounts.security)),
            opts=child,
        )
        policy = aws.iam.RolePolicyAttachment(
            f"{name}-config-aggregator", role=aggregator_role.name, policy_arn=CONFIG_ORGANIZATIONS_POLICY, opts=child
        )
        self.config_aggregator = aws.cfg.ConfigurationAggregator(
            f"{name}-config-aggregator",
            name="bakehouse-organization",
            organization_aggregation_source=aws.cfg.ConfigurationAggregatorOrganizationAggregationSourceArgs(
                all_regions=True, role_arn=aggregator_role.arn
            ),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[policy])),
        )
        self.analyzer = aws.accessanalyzer.Analyzer(
            f"{name}-access-analyzer", analyzer_name="bakehouse-organization", type="ORGANIZATION", opts=child
        )
        self.register_outputs({"securityhub_policy_id": self.hub_policy.id, "config_aggregator": self.config_aggregator.name})
