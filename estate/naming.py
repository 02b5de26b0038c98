"""Deterministic names that let each stack find another's resources without a live backend."""

from __future__ import annotations

from .config import EstateConfig

PREFIX = "bakehouse"
# Central buckets in the security (log-archive) account, by what they hold.
LOG_BUCKET_KINDS = ("trail", "config", "flowlogs", "evidence", "sessions")


def bucket_name(purpose: str, account_id: str, region: str) -> str:
    """Globally unique yet predictable: the account id and region make it so (63 chars max)."""
    name = f"{PREFIX}-{purpose}-{account_id}-{region}"
    if len(name) > 63:
        raise ValueError(f"bucket name {name!r} is {len(name)} characters; S3 allows 63")
    return name


def central_bucket(estate: EstateConfig, kind: str) -> str:
    if kind not in LOG_BUCKET_KINDS:
        raise ValueError(f"unknown central bucket kind {kind!r}; known: {', '.join(LOG_BUCKET_KINDS)}")
    return bucket_name(kind, estate.accounts.security, estate.home_region)


def central_bucket_arn(estate: EstateConfig, kind: str) -> str:
    return f"arn:aws:s3:::{central_bucket(estate, kind)}"


def security_topic_name() -> str:
    return f"{PREFIX}-security"


def security_topic_arn(estate: EstateConfig) -> str:
    return f"arn:aws:sns:{estate.home_region}:{estate.accounts.security}:{security_topic_name()}"


def role_arn(account_id: str, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{account_id}:role{path}{name}"


def central_key_alias(kind: str) -> str:
    """Alias of a log-kind KMS key in the security account (e.g. alias/bakehouse-trail)."""
    return f"alias/{PREFIX}-{kind}"


# --- Roles other stacks must know by name (created in one account, assumed from another) ---------
# Build account: the role SSM Automation runs the factory documents as.
FACTORY_AUTOMATION_ROLE = "BakehouseFactoryAutomation"
# Workload accounts: lets the build account's factory write /bakehouse/<env>/ami/<family> there.
IMAGE_PUBLISHER_ROLE = "BakehouseImagePublisher"
# Workload accounts: read-only, lets the build account's rescan list the AMIs running instances use.
IMAGE_SCANNER_ROLE = "BakehouseImageScanner"
# Security account: the incident responders, the only principals the break-glass roles trust.
RESPONDER_ROLE = "BakehouseResponder"
# Workload accounts: the audited break-glass role.
BREAK_GLASS_ROLE = "BakehouseBreakGlass"
# Every account: read-only access for people.
READ_ONLY_ROLE = "BakehouseReadOnly"
# Every account: what `pulumi preview` runs as (read-only); the deploy role's name is config (deployRoleName).
PREVIEW_ROLE = "BakehousePreview"
# Management account: the role pull requests' GitHub OIDC tokens become; may assume only PREVIEW_ROLE.
GITHUB_PREVIEW_ROLE = "BakehouseGitHubPreview"
# Workload accounts: the EventBridge rules that alarm on break-glass use and start isolation (names
# in components/workload/break_glass.py and components/workload/incident_response.py); the SCPs protect these prefixes.
RESPONSE_RULE_PREFIXES = (f"{PREFIX}-break-glass-", f"{PREFIX}-isolate-")
# Every account: the Session Manager preferences document (logging, encryption of sessions).
SESSION_PREFERENCES_DOCUMENT = "SSM-SessionManagerRunShell"
# The GitHub environment a prod env deploys in (its required reviewers gate the job).
PRODUCTION_ENVIRONMENT = "production"


def github_environment(account_key: str, prod_envs: tuple[str, ...]) -> str:
    """The GitHub environment that deploys an account's stack: `production` for prod envs and for the
    management account (the org stack administers every account, prod's included, so it deploys behind
    the same gate and prod is reachable from that one environment only), else the account's own key."""
    return PRODUCTION_ENVIRONMENT if account_key in prod_envs or account_key == "management" else account_key


def github_deploy_role(environment: str) -> str:
    """Management account: the role one GitHub environment's OIDC tokens become (one per environment)."""
    return f"BakehouseGitHubDeploy-{environment}"


# --- Parameter Store names ----------------------------------------------------------------------
def image_parameter(family: str) -> str:
    """Build account: the approved AMI id of a family, as the factory publishes it."""
    return f"/{PREFIX}/images/{family}/latest"


def image_history_parameter(family: str) -> str:
    """Build account: the family's published AMI ids, one version per approval (with quarantine marks)."""
    return f"/{PREFIX}/images/{family}/history"


def env_prefix(env: str) -> str:
    return f"/{PREFIX}/{env}"


def env_ami_parameter(env: str, family: str) -> str:
    """Workload account: the AMI id app teams launch, written by the factory's distribution."""
    return f"{env_prefix(env)}/ami/{family}"


# --- SSM Automation documents: automation/<stem>.yaml deploys as Bakehouse-<PascalCase> ---------
def automation_document_name(stem: str) -> str:
    return "Bakehouse-" + "".join(part.capitalize() for part in stem.split("_"))


# The organization trail (management account): the log-archive bucket and key policies name it.
ORGANIZATION_TRAIL = f"{PREFIX}-organization"
# Workload accounts: the tag (key, value) distribution puts on a golden AMI shared into the account
# (tags on a shared AMI are per account); the org-wide Config rule approved-amis-by-tag checks it.
APPROVED_IMAGE_TAG = ("bakehouse-approved", "true")
# Build account + every account the catalog portfolio reaches: the launch constraint's LocalRoleName.
CATALOG_LAUNCH_ROLE = "BakehouseCatalogLaunch"
# Workload accounts: the principal app teams (people or pipelines) provision catalog products as.
APP_DEPLOYER_ROLE = "BakehouseAppDeployer"
# Build account: the factory's settings and ready Pipeline parameters (JSON, no secrets).
FACTORY_SETTINGS_PARAMETER = f"/{PREFIX}/factory/settings"
