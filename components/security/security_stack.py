"""Root of the `security` stack (security / log-archive account): the account baseline (its Config
recorder delivers to the archive's own bucket), the log archive, the security topic, org-wide detection
as delegated administrator, flow-log analytics."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from estate import models
from estate.config import Problems, StackConfig, require_keys, section
from estate.naming import PREVIEW_ROLE, bucket_name, role_arn

from ..lib.account_baseline import AccountBaseline, AccountBaselineArgs
from ..lib.account_storage import account_storage
from ..lib.providers import reads_through_preview_role
from ..lib.secure_bucket import Lifecycle, ObjectLock, SecureBucket, SecureBucketArgs
from .flowlog_athena import FlowLogAthena, FlowLogAthenaArgs, analyst_key_statements
from .log_archive import LogArchive, LogArchiveArgs
from .management_recording import ManagementRecording, ManagementRecordingArgs
from .org_trail import OrgTrail, OrgTrailArgs
from .responders import Responders, RespondersArgs
from .security_services import SecurityServices, SecurityServicesArgs
from .security_topic import SecurityTopic, SecurityTopicArgs

SECTION = "security"
ROOT_ID = re.compile(r"r-[0-9a-z]{4,32}")
EMAIL = models.EMAIL
LOCK_MODES = models.choices(models.Security, "object_lock_mode")


@dataclass(frozen=True)
class SecuritySettings:
    object_lock: ObjectLock
    lifecycle: Lifecycle
    organization_root_id: str
    alert_emails: tuple[str, ...]


def _days(raw: Mapping[str, Any], key: str, field: str, problems: Problems, default: Any = None) -> int | None:
    value = raw.get(key, default)
    low, high = models.bounds(models.Security, field)
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    problems.check(ok, f"bakehouse:{SECTION}.{key}", value, f"a whole number of days from {low} to {high}")
    return value if ok else None


def parse_security_settings(cfg: StackConfig) -> SecuritySettings:
    def parse(raw: Mapping[str, Any], problems: Problems) -> SecuritySettings | None:
        require_keys(raw, SECTION, problems)
        mode = raw.get("objectLockMode")
        # No default: whether even the root user can shorten retention is a decision, not a fallback.
        problems.check(
            mode in LOCK_MODES,
            f"bakehouse:{SECTION}.objectLockMode",
            mode,
            "GOVERNANCE (dev estates: privileged deletes possible) or COMPLIANCE (prod: nobody can delete)",
        )
        lock_days = _days(raw, "objectLockDays", "object_lock_days", problems)
        glacier = _days(raw, "glacierAfterDays", "glacier_after_days", problems, 90)
        expire = _days(raw, "expireAfterDays", "expire_after_days", problems, 2557)
        if None not in (lock_days, glacier, expire):
            problems.check(
                expire >= lock_days,
                f"bakehouse:{SECTION}.expireAfterDays",
                expire,
                f"at least objectLockDays ({lock_days}); S3 cannot expire locked versions",
            )
            problems.check(
                glacier < expire, f"bakehouse:{SECTION}.glacierAfterDays", glacier, f"fewer days than expireAfterDays ({expire})"
            )
        root = raw.get("organizationRootId")
        problems.check(
            isinstance(root, str) and bool(ROOT_ID.fullmatch(root)),
            f"bakehouse:{SECTION}.organizationRootId",
            root,
            "the organization root id, like r-ab12 (org stack export rootId)",
        )
        emails = raw.get("alertEmails")
        # A topic nobody subscribes to announces every finding to no one (issue 15.5).
        if not (isinstance(emails, list) and emails and all(isinstance(e, str) and EMAIL.fullmatch(e) for e in emails)):
            problems.add(
                f"bakehouse:{SECTION}.alertEmails",
                emails,
                "a non-empty list of email addresses: the security topic's subscribers",
            )
            emails = []
        if problems.items:
            return None
        return SecuritySettings(
            ObjectLock(mode, lock_days), Lifecycle(glacier_after_days=glacier, expire_after_days=expire), root, tuple(emails)
        )

    return section(cfg, SECTION, parse)


class SecurityStack(pulumi.ComponentResource):
    settings = staticmethod(parse_security_settings)

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions, settings: SecuritySettings | None = None):
        settings = settings or parse_security_settings(cfg)  # first: a bad section declares nothing
        super().__init__("bakehouse:security:Stack", name, None, opts)
        storage = account_storage(name, cfg, self, key_statements=analyst_key_statements(cfg.account_id, cfg.region))
        child = pulumi.ResourceOptions(parent=self)
        estate = cfg.estate

        self.log_archive = LogArchive(
            f"{name}-archive",
            LogArchiveArgs(
                estate, cfg.region, cfg.deploy_role_arn, storage.access_logs.name, settings.object_lock, settings.lifecycle
            ),
            opts=child,
        )
        # The organization trail waits for its bucket and key in this same run: no second org run.
        self.org_trail = OrgTrail(
            f"{name}-org-trail",
            OrgTrailArgs(
                estate,
                self.log_archive.keys["trail"].arn,
                self.log_archive.buckets["trail"].name,
                cfg.default_tags,
                after=[self.log_archive],
                # A pull request's preview reaches only preview roles; the trail-admin role trusts the deploy role.
                management_role_arn=(
                    role_arn(estate.accounts.management, PREVIEW_ROLE) if reads_through_preview_role(cfg) else None
                ),
            ),
            opts=child,
        )
        config_bucket = self.log_archive.buckets["config"]
        # The central Config bucket is made here, so this account's deliveries wait for it and its policy.
        self.baseline = AccountBaseline(
            f"{name}-baseline",
            AccountBaselineArgs.for_estate(
                estate,
                cfg.account_id,
                kms_key_arn=storage.key.arn,
                config_bucket_ready=[config_bucket.bucket, config_bucket.policy],
            ),
            opts=child,
        )
        # So do the management account's: the org stack, deployed first, could not declare them.
        self.management_recording = ManagementRecording(
            f"{name}-management-config",
            ManagementRecordingArgs(
                estate,
                cfg.default_tags,
                after=[config_bucket.bucket, config_bucket.policy],
                management_role_arn=(
                    role_arn(estate.accounts.management, PREVIEW_ROLE) if reads_through_preview_role(cfg) else None
                ),
            ),
            opts=child,
        )
        self.topic = SecurityTopic(
            f"{name}-alerts", SecurityTopicArgs(estate, cfg.deploy_role_arn, settings.alert_emails), opts=child
        )
        SecurityServices(f"{name}-detection", SecurityServicesArgs(estate, settings.organization_root_id), opts=child)
        self.responders = Responders(
            f"{name}-responders", RespondersArgs(estate.accounts.security, tuple(estate.accounts.workloads.values())), opts=child
        )
        results_bucket = bucket_name("athena-results", cfg.account_id, cfg.region)
        results = SecureBucket(
            f"{name}-athena-results",
            SecureBucketArgs(
                purpose="athena-results",
                kms_key_arn=storage.key.arn,
                access_log_bucket=storage.access_logs.name,
                bucket_name=results_bucket,
                lifecycle=Lifecycle(expire_after_days=30),
            ),
            opts=child,
        )
        athena = FlowLogAthena(
            f"{name}-flowlogs",
            FlowLogAthenaArgs(
                estate, cfg.account_id, cfg.region, results_bucket, storage.key.arn, self.log_archive.keys["flowlogs"].arn
            ),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[results])),
        )

        self.log_buckets = self.log_archive.buckets
        self.exports = {
            "accountId": cfg.account_id,
            "kmsKeyArn": storage.key.arn,
            "accessLogBucket": storage.access_logs.name,
            "logBuckets": {kind: bucket.name for kind, bucket in self.log_archive.buckets.items()},
            "logKeyArns": {kind: key.arn for kind, key in self.log_archive.keys.items()},
            "securityTopicArn": self.topic.arn,
            "trailArn": self.org_trail.arn,
            "flowLogTable": athena.table.name,
            "athenaWorkgroup": athena.workgroup.name,
            "flowLogAnalystRoleArn": athena.analyst.arn,
        }
        self.register_outputs(self.exports)
