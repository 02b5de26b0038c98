"""The management account's AWS Config recording, as the security stack declares it.

The org stack gives the management account the rest of the account baseline, but it deploys before
the security stack creates the central Config bucket, and PutDeliveryChannel refuses a bucket that
does not exist or whose policy does not admit the delivery ("InsufficientDeliveryPolicyException",
AWS Config API reference, PutDeliveryChannel). So, like the organization trail (components/security/org_trail.py),
the recording is declared here, after the bucket and its policy, through a provider in the management
account that assumes `BakehouseOrgTrailAdmin` (the trail-admin role, whose policy also holds exactly the
calls below), or the management preview role in a preview. One pass; no second org run.

SCPs never apply to the management account (AWS Organizations user guide, "Service control policies":
they do not affect users or roles in the management account), so no guardrail can deny these calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi

from estate.config import EstateConfig

from ..lib.account_baseline import AccountBaselineArgs, record_config
from ..lib.providers import account_provider
from .org_trail import trail_admin_role_arn


@dataclass(frozen=True)
class ManagementRecordingArgs:
    estate: EstateConfig
    tags: Mapping[str, str] = field(default_factory=dict)  # the calling stack's default tags
    after: Sequence[pulumi.Resource] = ()  # the central Config bucket and its policy
    management_role_arn: str | None = None  # default: the trail-admin role


class ManagementRecording(pulumi.ComponentResource):
    """Recorder in every allowed region (global types at home), delivery to the central bucket, the
    recorder turned on, then the baseline conformance pack: all in the management account."""

    def __init__(self, name: str, args: ManagementRecordingArgs, opts: pulumi.ResourceOptions | None = None):
        estate = args.estate
        management = estate.accounts.management
        recording_args = AccountBaselineArgs.for_estate(
            estate, management, kms_key_arn=None, config_bucket_ready=tuple(args.after)
        )
        recording_args.region_list()  # first: bad regions declare nothing
        super().__init__("bakehouse:security:ManagementRecording", name, None, opts)
        self.provider = account_provider(
            f"{name}-management",
            account_id=management,
            region=estate.home_region,
            role_arn=args.management_role_arn or trail_admin_role_arn(estate),
            tags=args.tags,
            session_name="bakehouse-management-recording",
            opts=pulumi.ResourceOptions(parent=self),
        )
        recording = record_config(name, recording_args, pulumi.ResourceOptions(parent=self, provider=self.provider))
        self.recorder_status = recording.recorder_status
        self.packs = recording.packs
        self.register_outputs(
            {
                "config_recorders": [s.name for s in self.recorder_status.values()],
                "conformance_packs": sorted({pack for _, pack in self.packs}),
            }
        )
