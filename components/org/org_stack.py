"""Root of the `org` stack (management account): organization, accounts, guardrails, the organization
trail's log group with its CIS alarms, and the delegated administrators (security services to the
security account, Service Catalog to the build account). The trail itself is declared by the security
stack, after the bucket and key it delivers to (components/security/org_trail.py says why)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from estate import models
from estate.aws_rules import LOG_RETENTION_DAYS
from estate.config import ROLE_NAME, Problems, StackConfig, require_keys, section
from estate.naming import BREAK_GLASS_ROLE, security_topic_arn

from ..lib.account_baseline import AccountBaseline, AccountBaselineArgs
from ..lib.account_storage import account_storage
from ..security.org_trail import OrgTrailLogs
from .account_access import AccountAccess, member_access_args
from .ci_access import CiAccess, CiAccessArgs
from .cis_alarms import CIS_CONTROLS, CisAlarms, CisAlarmsArgs, role_use_controls
from .delegated_admins import DelegatedAdmins, DelegatedAdminsArgs
from .organization import MemberAccount, Organization, OrganizationArgs, ou_for_account
from .scps import org_policies

SECTION = "org"
EMAIL = models.EMAIL  # the models' (estate/models.py), written once
GITHUB_REPOSITORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")


@dataclass(frozen=True)
class OrgSettings:
    account_emails: Mapping[str, str]
    access_role_name: str
    prod_envs: tuple[str, ...]
    trail_log_retention_days: int
    github_repository: str  # owner/name whose workflows deploy the estate


def parse_org_settings(cfg: StackConfig) -> OrgSettings:
    members = ("security", "build", *cfg.estate.accounts.workloads)

    def parse(raw: Mapping[str, Any], problems: Problems) -> OrgSettings | None:
        require_keys(raw, SECTION, problems)
        emails = raw.get("accountEmails")
        if not isinstance(emails, Mapping):
            problems.add(
                f"bakehouse:{SECTION}.accountEmails", emails, f"an object of account -> owner email for {', '.join(members)}"
            )
            emails = {}
        for member in members:
            problems.check(
                isinstance(emails.get(member), str) and bool(EMAIL.fullmatch(emails.get(member, ""))),
                f"bakehouse:{SECTION}.accountEmails.{member}",
                emails.get(member),
                "an email address",
            )
        for extra in sorted(set(emails) - set(members)):
            problems.add(
                f"bakehouse:{SECTION}.accountEmails.{extra}",
                emails[extra],
                f"only accounts named in bakehouse:accounts ({', '.join(members)})",
            )
        addresses = [e for e in emails.values() if isinstance(e, str)]
        for dupe in sorted({e for e in addresses if addresses.count(e) > 1}):
            problems.add(f"bakehouse:{SECTION}.accountEmails", dupe, "a distinct email per account (AWS requires it)")

        role = raw.get("accountAccessRoleName", "OrganizationAccountAccessRole")
        problems.check(
            isinstance(role, str) and bool(ROLE_NAME.fullmatch(role)),
            f"bakehouse:{SECTION}.accountAccessRoleName",
            role,
            "an IAM role name",
        )
        prod = raw.get("prodEnvs", ["prod"])
        workloads = sorted(cfg.estate.accounts.workloads)
        if not (isinstance(prod, list) and all(p in workloads for p in prod)):
            problems.add(f"bakehouse:{SECTION}.prodEnvs", prod, f"a list of workload envs from {', '.join(workloads)}")
            prod = []
        retention = raw.get("trailLogRetentionDays", 365)
        problems.check(
            retention in LOG_RETENTION_DAYS and not isinstance(retention, bool),
            f"bakehouse:{SECTION}.trailLogRetentionDays",
            retention,
            "a CloudWatch Logs retention period: " + ", ".join(map(str, LOG_RETENTION_DAYS)),
        )
        repository = raw.get("githubRepository")
        problems.check(
            isinstance(repository, str) and bool(GITHUB_REPOSITORY.fullmatch(repository)),
            f"bakehouse:{SECTION}.githubRepository",
            repository,
            "the GitHub repository whose workflows deploy, as owner/name",
        )
        if problems.items:
            return None
        return OrgSettings(dict(emails), role, tuple(prod), retention, repository)

    return section(cfg, SECTION, parse)


class OrgStack(pulumi.ComponentResource):
    settings = staticmethod(parse_org_settings)

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions, settings: OrgSettings | None = None):
        settings = settings or parse_org_settings(cfg)  # first: a bad section declares nothing
        super().__init__("bakehouse:org:Stack", name, None, opts)
        policies = org_policies(cfg.estate, settings.access_role_name)
        child = pulumi.ResourceOptions(parent=self)

        storage = account_storage(name, cfg, self)
        # Everything but Config recording: the central Config bucket does not exist until the security
        # stack, which records this account itself (components/security/management_recording.py).
        AccountBaseline(
            f"{name}-baseline",
            AccountBaselineArgs.for_estate(cfg.estate, cfg.account_id, kms_key_arn=storage.key.arn, record_config=False),
            opts=child,
        )
        members = tuple(
            MemberAccount(key, settings.account_emails[key], ou_for_account(key, settings.prod_envs))
            for key in ("security", "build", *cfg.estate.accounts.workloads)
        )
        self.organization = Organization(
            f"{name}-organization", OrganizationArgs(cfg.estate, members, settings.access_role_name, tuple(policies)), opts=child
        )
        security_account = self.organization.accounts["security"]
        DelegatedAdmins(
            f"{name}-delegated",
            DelegatedAdminsArgs(
                admin_account_id=security_account.id,
                home_region=cfg.estate.home_region,
                regions=cfg.estate.allowed_regions,
                catalog_admin_account_id=self.organization.accounts["build"].id,
            ),
            opts=child.merge(pulumi.ResourceOptions(depends_on=[self.organization.organization])),
        )

        # The pipeline's roles (management) and each member's deploy/preview/read-only roles, made here
        # through the access role Organizations creates with the account: none is made by hand.
        accounts = {"management": cfg.account_id, **{k: a.id for k, a in self.organization.accounts.items()}}
        self.ci = CiAccess(
            f"{name}-ci",
            CiAccessArgs(
                cfg.account_id,
                settings.github_repository,
                cfg.estate.deploy_role_name,
                accounts,
                settings.prod_envs,
                settings.access_role_name,
            ),
            opts=child,
        )
        self.account_access = AccountAccess(
            f"{name}-access",
            member_access_args(
                cfg, {k: a.id for k, a in self.organization.accounts.items()}, settings.prod_envs, settings.access_role_name
            ),
            opts=child,
        )

        self.exports: dict[str, Any] = {
            "accountId": cfg.account_id,
            "kmsKeyArn": storage.key.arn,
            "accessLogBucket": storage.access_logs.name,
            "organizationId": self.organization.organization.id,
            "rootId": self.organization.root_id,
            "ouIds": {key: ou.id for key, ou in self.organization.ous.items()},
            "accountIds": {key: account.id for key, account in self.organization.accounts.items()},
            "policies": [p.name for p in policies],
            "ciRoleArns": {role: r.arn for role, r in self.ci.roles.items()},
        }
        # Nothing here waits for the log archive: the log group fills once the security stack has
        # created the trail, and the alarms publish to the security topic by its derived ARN.
        trail_logs = OrgTrailLogs(f"{name}-trail", cfg.estate, storage.key.arn, settings.trail_log_retention_days, opts=child)
        controls = (*CIS_CONTROLS, *role_use_controls(BREAK_GLASS_ROLE, settings.access_role_name))
        CisAlarms(f"{name}-cis", CisAlarmsArgs(trail_logs.log_group_name, security_topic_arn(cfg.estate), controls), opts=child)
        self.exports["trailLogGroup"] = trail_logs.log_group_name
        self.exports["trailAdminRoleArn"] = trail_logs.admin_role.arn
        self.register_outputs(self.exports)
