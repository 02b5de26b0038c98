"""Account-wide guardrails of a workload account: secure defaults that no single resource can forget."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class AccountBaselineArgs:
    account_id: str
    kms_key_arn: pulumi.Input[str]
    config_bucket: str  # central Config bucket in the security account
    config_key_prefix: str = "config"


class AccountBaseline(pulumi.ComponentResource):
    """EBS encryption by default, IMDSv2 by default, public sharing blocked, serial console off,
    CIS password policy, Access Analyzer, Config recording to the central bucket, default VPC locked."""

    def __init__(self, name: str, args: AccountBaselineArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:baseline:AccountBaseline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.ebs_encryption = aws.ebs.EncryptionByDefault(f"{name}-ebs-encryption", enabled=True, opts=child)
        aws.ebs.DefaultKmsKey(f"{name}-ebs-key", key_arn=args.kms_key_arn, opts=child)
        # Applies to every launch that does not say otherwise, including consoles and other tools.
        aws.ec2.InstanceMetadataDefaults(f"{name}-imds", http_tokens="required", http_put_response_hop_limit=1,
                                         http_endpoint="enabled", instance_metadata_tags="disabled", opts=child)
        aws.s3.AccountPublicAccessBlock(f"{name}-s3-public-access", block_public_acls=True, block_public_policy=True,
                                        ignore_public_acls=True, restrict_public_buckets=True, opts=child)
        aws.ec2.ImageBlockPublicAccess(f"{name}-ami-public-access", state="block-new-sharing", opts=child)
        aws.ebs.SnapshotBlockPublicAccess(f"{name}-snapshot-public-access", state="block-all-sharing", opts=child)
        aws.ec2.SerialConsoleAccess(f"{name}-serial-console", enabled=False, opts=child)
        # CIS AWS Foundations 1.8/1.9: length >= 14 and no reuse of the last 24.
        aws.iam.AccountPasswordPolicy(
            f"{name}-password-policy", minimum_password_length=14, require_lowercase_characters=True,
            require_uppercase_characters=True, require_numbers=True, require_symbols=True,
            allow_users_to_change_password=True, password_reuse_prevention=24, max_password_age=90,
            hard_expiry=False, opts=child)
        aws.accessanalyzer.Analyzer(f"{name}-access-analyzer", analyzer_name=f"bakehouse-{name}", type="ACCOUNT",
                                    opts=child)
        self._config_recording(name, args, child)
        self._lock_default_vpc(name, child)
        self.register_outputs({})

    def _config_recording(self, name: str, args: AccountBaselineArgs, child: pulumi.ResourceOptions) -> None:
        # The service-linked role carries AWS's own least-privilege read policy for recording.
        role = aws.iam.ServiceLinkedRole(f"{name}-config-role", aws_service_name="config.amazonaws.com", opts=child)
        recorder = aws.cfg.Recorder(
            f"{name}-config-recorder", name="default", role_arn=role.arn,
            recording_group=aws.cfg.RecorderRecordingGroupArgs(all_supported=True, include_global_resource_types=True),
            opts=child)
        channel = aws.cfg.DeliveryChannel(
            f"{name}-config-delivery", name="default", s3_bucket_name=args.config_bucket,
            s3_key_prefix=args.config_key_prefix,
            snapshot_delivery_properties=aws.cfg.DeliveryChannelSnapshotDeliveryPropertiesArgs(
                delivery_frequency="TwentyFour_Hours"),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[recorder])))
        aws.cfg.RecorderStatus(f"{name}-config-recording", name=recorder.name, is_enabled=True,
                               opts=child.merge(pulumi.ResourceOptions(depends_on=[channel])))

    def _lock_default_vpc(self, name: str, child: pulumi.ResourceOptions) -> None:
        """The default VPC has an internet gateway and public subnets. Adopted, never modified beyond
        emptying its security group and NACL, so nothing launched into it can talk to anything."""
        default_vpc = aws.ec2.DefaultVpc(f"{name}-default-vpc", force_destroy=False,
                                         tags={"bakehouse:purpose": "unused-default-vpc-locked"}, opts=child)
        aws.ec2.DefaultSecurityGroup(f"{name}-default-vpc-sg", vpc_id=default_vpc.id, ingress=[], egress=[],
                                     opts=child)
        aws.ec2.DefaultNetworkAcl(f"{name}-default-vpc-nacl", default_network_acl_id=default_vpc.default_network_acl_id,
                                  ingress=[], egress=[], opts=child)
