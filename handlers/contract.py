"""The contract between the stacks and the handlers: role names, tag keys, parameter names, id shapes.

A component creates a role, writes a parameter or grants on a tag; a handler, at run time in another
account, assumes that role, reads that parameter or writes that tag. Both sides import the name from
here (components through estate.naming), so the two can never drift apart. tests/unit/test_contract.py
fails when a handler re-declares one of these values.

Standard library only: this module ships in every handler zip (Lambda and SSM `aws:executeScript`,
whose runtimes offer the standard library and boto3) as well as running inside `pulumi up`.
"""

from __future__ import annotations

import re

PREFIX = "bakehouse"

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
# Build account + every account the catalog portfolio reaches: the launch constraint's LocalRoleName.
CATALOG_LAUNCH_ROLE = "BakehouseCatalogLaunch"
# Workload accounts: the principal app teams (people or pipelines) provision catalog products as.
APP_DEPLOYER_ROLE = "BakehouseAppDeployer"

# --- Parameter Store ----------------------------------------------------------------------------
# Build account: the factory's settings and ready Pipeline parameters (JSON, no secrets;
# components/build/image_factory.py writes it).
FACTORY_SETTINGS_PARAMETER = "/bakehouse/factory/settings"
# Build account: one parameter per target env, <path>/<env>, value the env's account id
# (components/build/factory_targets.py writes them, handlers/targets.py reads them).
FACTORY_TARGETS_PATH = "/bakehouse/factory/targets"
# Build account: every family's published image (handlers/publish.py writes, the rescan reads).
IMAGES_PATH = "/bakehouse/images/"
# Build account: the approved AMI id of a family, as the factory publishes it.
IMAGE_PARAMETER = "/bakehouse/images/{family}/latest"
# Build account: the family's published AMI ids, one version per approval (with quarantine marks).
IMAGE_HISTORY_PARAMETER = "/bakehouse/images/{family}/history"
# Workload account: the AMI id app teams launch, written by the factory's distribution.
ENV_AMI_PARAMETER = "/bakehouse/{env}/ami/{family}"
# Workload account: the path under which ENV_AMI_PARAMETER's parameters live.
ENV_AMI_PATH = "/bakehouse/{env}/ami/"
# Workload account: where isolation lets forensic access in from (components/workload/incident_response.py).
FORENSIC_SOURCE_PARAMETER = "/bakehouse/incident-response/forensic-source"


def image_parameter(family: str) -> str:
    return IMAGE_PARAMETER.format(family=family)


def image_history_parameter(family: str) -> str:
    return IMAGE_HISTORY_PARAMETER.format(family=family)


def env_ami_parameter(env: str, family: str) -> str:
    return ENV_AMI_PARAMETER.format(env=env, family=family)


def env_ami_path(env: str) -> str:
    return ENV_AMI_PATH.format(env=env)


# --- Tag keys -----------------------------------------------------------------------------------
TAG_PREFIX = "bakehouse:"
# Provenance, written by the build (packer/, handlers/built_image.py) and copied with the image.
TAG_SOURCE_AMI = "bakehouse:source-ami"
TAG_COMMIT = "bakehouse:commit"
TAG_FAMILY = "bakehouse:family"
TAG_BUILD_EXECUTION = "bakehouse:build-execution"
TAG_BUILD_DATE = "bakehouse:build-date"
TAG_VALIDATION_EXECUTION = "bakehouse:validation-execution"
# Scanning and its verdicts (handlers/inspector_summary.py, handlers/rescan*.py).
TAG_SCAN_DATE = "bakehouse:scan-date"
TAG_VERDICT = "bakehouse:inspector-verdict"
TAG_CVES = "bakehouse:cves-{}"  # e.g. bakehouse:cves-critical
TAG_VULNERABLE = "bakehouse:vulnerable"
TAG_RESCAN_EXECUTION = "bakehouse:rescan-execution"
TAG_SCAN_OF = "bakehouse:scan-of"
TAG_REBUILD_EXECUTION = "bakehouse:rebuild-execution"
# Approval and distribution (handlers/publish.py, handlers/distribute.py).
TAG_APPROVED = "bakehouse:approved"
TAG_APPROVED_BY = "bakehouse:approved-by"
# On each workload account's view of a withdrawn image; components/org/scps.py denies removing it.
TAG_QUARANTINED = "bakehouse:quarantined"
# Retention: images seen running in prod (handlers/rescan_feedback.py, handlers/lifecycle.py).
TAG_RAN_IN = "bakehouse:ran-in"
TAG_PROD_LAST_SEEN = "bakehouse:prod-last-seen"  # YYYY-MM-DD
# The dev canary (handlers/dev_canary.py).
TAG_CANARY_EXECUTION = "bakehouse:canary-execution"
TAG_CANARY_IMAGE = "bakehouse:canary-image"
TAG_DEV_CANARY = "bakehouse:dev-canary"
# Incident response evidence (handlers/isolate*.py).
TAG_FINDING = "bakehouse:finding-id"
TAG_INSTANCE = "bakehouse:instance-id"
TAG_COPY_OF = "bakehouse:copy-of"
# What a resource is for, and which network tier a subnet is.
TAG_PURPOSE = "bakehouse:purpose"
TAG_TIER = "bakehouse:tier"
# Workload accounts: the tag (key, value) distribution puts on a golden AMI shared into the account
# (tags on a shared AMI are per account); the org-wide Config rule approved-amis-by-tag checks it.
APPROVED_IMAGE_TAG = ("bakehouse-approved", "true")

# --- Shapes of ids and names --------------------------------------------------------------------
AMI_ID = re.compile(r"ami-[0-9a-f]{8,17}")
INSTANCE_ID = re.compile(r"i-[0-9a-f]{8,17}")
ACCOUNT_ID = re.compile(r"\d{12}")
REGION = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d")
# IAM names are ASCII (a str pattern's \w also matches non-ASCII letters, hence re.ASCII): letters, digits
# and +=,.@_-; roles (like users) up to 64 characters (IAM user guide, "IAM and AWS STS quotas": IAM name
# requirements and character limits).
ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", re.ASCII)
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# A workload env's name, as config declares it and every handler accepts it in an event: it becomes a
# Pulumi stack name, part of SSM paths (/bakehouse/<env>/...), account e-mail tags and TagOption values.
ENV_NAME = re.compile(r"[a-z][a-z0-9]{1,15}")
# An image family, as the factory's config declares it, workload stacks read it and handlers accept it:
# 2-31 lower-case letters, digits and dashes, starting with a letter (it names SSM parameters
# /bakehouse/images/<family>/..., AMIs bakehouse-<family>-<date> and the pipeline bakehouse-packer-<family>).
FAMILY = re.compile(r"[a-z][a-z0-9-]{1,30}")
# A Step Functions / Automation execution reference, as a tag value.
EXECUTION_REF = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
