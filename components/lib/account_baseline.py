"""Account-wide guardrails every account gets (management, security, build, workloads): secure defaults
that no single resource can forget, Config recording in every allowed region, and the conformance packs
that judge the account against the estate's promises.

Use from a stack root, with the account's provider flowing down from the root:

    AccountBaseline(f"{name}-baseline", AccountBaselineArgs.for_estate(
        cfg.estate, cfg.account_id, kms_key_arn=storage.key.arn, workload=True), opts=child)

EC2 instance-metadata defaults and AMI/snapshot public-access blocks are NOT set here: the
organization's EC2 declarative policy owns them (components/org/scps.py `ec2_defaults`, attached at the
root). A declarative policy overrides the account-level setting and cannot be changed from inside the
account, so declaring them here too would give one setting two owners with different values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from estate.config import EstateConfig
from estate.naming import central_bucket

from .config_rules import baseline_rules, pack_template, workload_rules

VPC_BLOCK_MODES = ("block-bidirectional", "block-ingress")
BASELINE_PACK = "bakehouse-baseline"
WORKLOAD_PACK = "bakehouse-workloads"
RECORDER_NAME = "default"  # the recorder and delivery channel name in every account and region


@dataclass(frozen=True)
class AccountBaselineArgs:
    """What the baseline needs to know of its account.

    account_id: the account the stack's provider writes into.
    kms_key_arn: the account's own key (home region), made the EBS default key there; other regions
        encrypt new volumes by default with the AWS-managed EBS key.
    config_bucket: the central Config bucket in the security account (estate.naming.central_bucket).
    home_region: records global resource types (IAM) once, and holds the analyzer and EBS default key.
    regions: every allowed region; each gets a recorder, the packs, a locked default VPC and VPC Block
        Public Access. Empty means the home region only.
    workload: also deploy the workload conformance pack (no public IPs, golden images only), which the
        build account, launching Amazon's base images, cannot meet by design.
    vpc_block_mode: "block-bidirectional" (no internet gateway passes traffic), or "block-ingress"
        where NAT egress must keep working (the build account's egress proxy).
    config_bucket_ready: resources the delivery channels wait for (the security account, where the
        bucket and its policy are created in the same stack).
    record_config: False only for the management account: the org stack deploys before the security
        stack creates the central bucket, and PutDeliveryChannel refuses a bucket that does not exist or
        does not admit the delivery, so the security stack records the management account instead
        (components/security/management_recording.py).
    """

    account_id: str
    kms_key_arn: pulumi.Input[str] | None  # None only where nothing but recording is declared
    config_bucket: str
    home_region: str | None = None
    regions: Sequence[str] = ()
    workload: bool = False
    vpc_block_mode: str = "block-bidirectional"
    config_key_prefix: str = "config"
    config_bucket_ready: Sequence[pulumi.Resource] = ()
    record_config: bool = True

    @classmethod
    def for_estate(
        cls, estate: EstateConfig, account_id: str, kms_key_arn: pulumi.Input[str] | None, **options
    ) -> AccountBaselineArgs:
        """The usual arguments: central Config bucket, the estate's home and allowed regions."""
        return cls(
            account_id=account_id,
            kms_key_arn=kms_key_arn,
            config_bucket=central_bucket(estate, "config"),
            home_region=estate.home_region,
            regions=tuple(estate.allowed_regions),
            **options,
        )

    def region_list(self) -> list[str | None]:
        """Regions to baseline, home first; [None] (the provider's region) when none are named."""
        if self.vpc_block_mode not in VPC_BLOCK_MODES:
            raise ValueError(
                f"AccountBaselineArgs.vpc_block_mode is {self.vpc_block_mode!r}; allowed: {', '.join(VPC_BLOCK_MODES)}"
            )
        if not self.regions:
            return [self.home_region]
        if self.home_region not in self.regions:
            raise ValueError(f"AccountBaselineArgs.home_region {self.home_region!r} is not among regions {list(self.regions)}")
        return [self.home_region, *(r for r in self.regions if r != self.home_region)]


def config_role_arn(account_id: str) -> str:
    """AWS Config's service-linked role: its path and name are fixed by AWS (AWS Config developer guide,
    "Using Service-Linked Roles for AWS Config"), so the ARN is known before the role exists."""
    return f"arn:aws:iam::{account_id}:role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig"


@dataclass
class ConfigRecording:
    """What recording declared: the service-linked role, each region's recorder status and packs."""

    config_role: aws.iam.ServiceLinkedRole
    recorder_status: dict[str | None, aws.cfg.RecorderStatus]
    packs: dict[tuple[str | None, str], aws.cfg.ConformancePack]


def record_config(name: str, args: AccountBaselineArgs, opts: pulumi.ResourceOptions) -> ConfigRecording:
    """Config recording in every region of `args` through `opts` (parent and provider): a recorder (global
    types at home only), its delivery channel to the central bucket, the recorder turned on, then the
    account's conformance packs. Resources are children of the caller, not of a component of their own,
    so the account baseline's URNs do not move."""
    regions = args.region_list()
    # The service-linked role carries AWS's own least-privilege read policy for recording (one per account).
    config_role = aws.iam.ServiceLinkedRole(f"{name}-config-role", aws_service_name="config.amazonaws.com", opts=opts)
    recording = ConfigRecording(config_role, {}, {})
    for region in regions:
        suffix = f"-{region}" if region else ""
        status = _recorder(f"{name}{suffix}", args, region, region == regions[0], config_role, opts)
        recording.recorder_status[region] = status
        recording.packs.update(_conformance_packs(f"{name}{suffix}", args, region, status, opts))
    return recording


def _recorder(
    name: str,
    args: AccountBaselineArgs,
    region: str | None,
    home: bool,
    config_role: aws.iam.ServiceLinkedRole,
    opts: pulumi.ResourceOptions,
) -> aws.cfg.RecorderStatus:
    recorder = aws.cfg.Recorder(
        f"{name}-config-recorder",
        name=RECORDER_NAME,
        role_arn=config_role_arn(args.account_id),
        region=region,
        # Global types (IAM) once, in the home region, so they are not recorded and billed per region.
        recording_group=aws.cfg.RecorderRecordingGroupArgs(all_supported=True, include_global_resource_types=home),
        opts=opts.merge(pulumi.ResourceOptions(depends_on=[config_role])),
    )
    # Config delivers cross-region to the central bucket, whose policy admits every estate account.
    channel = aws.cfg.DeliveryChannel(
        f"{name}-config-delivery",
        name=RECORDER_NAME,
        s3_bucket_name=args.config_bucket,
        s3_key_prefix=args.config_key_prefix,
        region=region,
        snapshot_delivery_properties=aws.cfg.DeliveryChannelSnapshotDeliveryPropertiesArgs(delivery_frequency="TwentyFour_Hours"),
        opts=opts.merge(pulumi.ResourceOptions(depends_on=[recorder, *args.config_bucket_ready])),
    )
    return aws.cfg.RecorderStatus(
        f"{name}-config-recording",
        name=recorder.name,
        is_enabled=True,
        region=region,
        opts=opts.merge(pulumi.ResourceOptions(depends_on=[channel])),
    )


def _conformance_packs(
    name: str, args: AccountBaselineArgs, region: str | None, status: aws.cfg.RecorderStatus, opts: pulumi.ResourceOptions
) -> dict[tuple[str | None, str], aws.cfg.ConformancePack]:
    """Account-level packs, not organization packs from the security account: an organization pack
    fails in every member without a running recorder, and is created regardless of when each
    account's recorder comes up. Here each pack follows its own account's recorder in its region.
    (AWS Config developer guide, "Prerequisites for conformance packs": turn on recording first.)"""
    packs = [(BASELINE_PACK, baseline_rules())]
    if args.workload:
        packs.append((WORKLOAD_PACK, workload_rules()))
    after_recording = opts.merge(pulumi.ResourceOptions(depends_on=[status]))
    return {
        (region, pack): aws.cfg.ConformancePack(
            f"{name}-{pack.removeprefix('bakehouse-')}-pack",
            name=pack,
            template_body=pack_template(rules),
            region=region,
            opts=after_recording,
        )
        for pack, rules in packs
    }


class AccountBaseline(pulumi.ComponentResource):
    """EBS encryption by default, S3 public access blocked, serial console off, CIS password policy,
    Access Analyzer, Config recording to the central bucket with the estate's conformance packs (unless
    `record_config` is off), and in every allowed region a default VPC that nothing can use."""

    def __init__(self, name: str, args: AccountBaselineArgs, opts: pulumi.ResourceOptions | None = None):
        regions = args.region_list()  # first: bad args declare nothing
        if args.kms_key_arn is None:
            raise ValueError("AccountBaselineArgs.kms_key_arn is None; the baseline makes it the EBS default key")
        super().__init__("bakehouse:lib:AccountBaseline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        home = regions[0]

        aws.s3.AccountPublicAccessBlock(
            f"{name}-s3-public-access",
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        # CIS AWS Foundations 1.8/1.9: length >= 14 and no reuse of the last 24.
        aws.iam.AccountPasswordPolicy(
            f"{name}-password-policy",
            minimum_password_length=14,
            require_lowercase_characters=True,
            require_uppercase_characters=True,
            require_numbers=True,
            require_symbols=True,
            allow_users_to_change_password=True,
            password_reuse_prevention=24,
            max_password_age=90,
            hard_expiry=False,
            opts=child,
        )
        aws.accessanalyzer.Analyzer(
            f"{name}-access-analyzer", analyzer_name=f"bakehouse-{name}", type="ACCOUNT", region=home, opts=child
        )
        # The key lives in the home region, and an EBS default key must be in the volume's region.
        aws.ebs.DefaultKmsKey(f"{name}-ebs-key", key_arn=args.kms_key_arn, region=home, opts=child)
        for region in regions:
            suffix = f"-{region}" if region else ""
            aws.ebs.EncryptionByDefault(f"{name}-ebs-encryption{suffix}", enabled=True, region=region, opts=child)
            aws.ec2.SerialConsoleAccess(f"{name}-serial-console{suffix}", enabled=False, region=region, opts=child)
            self._lock_default_vpc(f"{name}{suffix}", args, region, child)

        recording = record_config(name, args, child) if args.record_config else None
        self.config_role = recording.config_role if recording else None
        self.recorder_status = recording.recorder_status if recording else {}
        self.packs = recording.packs if recording else {}
        self.register_outputs(
            {
                "config_recorders": [s.name for s in self.recorder_status.values()],
                "conformance_packs": sorted({pack for _, pack in self.packs}),
            }
        )

    def _lock_default_vpc(self, name: str, args: AccountBaselineArgs, region: str | None, child: pulumi.ResourceOptions) -> None:
        """The default VPC has an internet gateway and public subnets. Adopted, never modified beyond
        emptying its security group and NACL, so nothing launched into it can talk to anything; and VPC
        Block Public Access stops its internet gateway (or any later one) passing traffic in."""
        default_vpc = aws.ec2.DefaultVpc(
            f"{name}-default-vpc",
            force_destroy=False,
            region=region,
            tags={"bakehouse:purpose": "unused-default-vpc-locked"},
            opts=child,
        )
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-vpc-sg", vpc_id=default_vpc.id, ingress=[], egress=[], region=region, opts=child
        )
        aws.ec2.DefaultNetworkAcl(
            f"{name}-default-vpc-nacl",
            default_network_acl_id=default_vpc.default_network_acl_id,
            ingress=[],
            egress=[],
            region=region,
            opts=child,
        )
        # Amazon VPC user guide, "Block public access to VPCs and subnets": account-wide in the region.
        aws.ec2.VpcBlockPublicAccessOptions(
            f"{name}-vpc-block-public-access", internet_gateway_block_mode=args.vpc_block_mode, region=region, opts=child
        )
