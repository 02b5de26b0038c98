"""Deterministic names that let each stack find another's resources without a live backend.

The names handlers and components share (roles, parameters, tag keys, id shapes) live in
handlers/contract.py, which ships in the handlers zip; they are re-exported here so components keep
importing estate.naming.
"""

from __future__ import annotations

from handlers.contract import APP_DEPLOYER_ROLE as APP_DEPLOYER_ROLE
from handlers.contract import APPROVED_IMAGE_TAG as APPROVED_IMAGE_TAG
from handlers.contract import BREAK_GLASS_ROLE as BREAK_GLASS_ROLE
from handlers.contract import CATALOG_LAUNCH_ROLE as CATALOG_LAUNCH_ROLE
from handlers.contract import ENV_AMI_PARAMETER as ENV_AMI_PARAMETER
from handlers.contract import ENV_NAME as ENV_NAME
from handlers.contract import FACTORY_AUTOMATION_ROLE as FACTORY_AUTOMATION_ROLE
from handlers.contract import FACTORY_SETTINGS_PARAMETER as FACTORY_SETTINGS_PARAMETER
from handlers.contract import FACTORY_TARGETS_PATH as FACTORY_TARGETS_PATH
from handlers.contract import FAMILY as FAMILY
from handlers.contract import FORENSIC_SOURCE_PARAMETER as FORENSIC_SOURCE_PARAMETER
from handlers.contract import GITHUB_PREVIEW_ROLE as GITHUB_PREVIEW_ROLE
from handlers.contract import IMAGE_HISTORY_PARAMETER as IMAGE_HISTORY_PARAMETER
from handlers.contract import IMAGE_PARAMETER as IMAGE_PARAMETER
from handlers.contract import IMAGE_PUBLISHER_ROLE as IMAGE_PUBLISHER_ROLE
from handlers.contract import IMAGE_SCANNER_ROLE as IMAGE_SCANNER_ROLE
from handlers.contract import IMAGES_PATH as IMAGES_PATH
from handlers.contract import PREFIX as PREFIX
from handlers.contract import PREVIEW_ROLE as PREVIEW_ROLE
from handlers.contract import READ_ONLY_ROLE as READ_ONLY_ROLE
from handlers.contract import RESPONDER_ROLE as RESPONDER_ROLE
from handlers.contract import TAG_FAMILY as TAG_FAMILY
from handlers.contract import TAG_PREFIX as TAG_PREFIX
from handlers.contract import TAG_PURPOSE as TAG_PURPOSE
from handlers.contract import TAG_QUARANTINED as TAG_QUARANTINED
from handlers.contract import TAG_TIER as TAG_TIER
from handlers.contract import env_ami_parameter as env_ami_parameter
from handlers.contract import env_ami_path as env_ami_path
from handlers.contract import image_history_parameter as image_history_parameter
from handlers.contract import image_parameter as image_parameter

from .config import EstateConfig

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
def env_prefix(env: str) -> str:
    return f"/{PREFIX}/{env}"


# --- SSM Automation documents: automation/<stem>.yaml deploys as Bakehouse-<PascalCase> ---------
def automation_document_name(stem: str) -> str:
    return "Bakehouse-" + "".join(part.capitalize() for part in stem.split("_"))


# The organization trail (management account): the log-archive bucket and key policies name it.
ORGANIZATION_TRAIL = f"{PREFIX}-organization"
