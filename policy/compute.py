"""Compute: instances and launch templates, user data and Lambda functions."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Iterator, Mapping

from .support import (
    ADVISORY,
    UNKNOWN,
    Config,
    Res,
    as_list,
    get,
    is_workload,
    resource_policy,
    truthy,
    workload_policy,
)

INSTANCE = "aws:ec2/instance:Instance"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
FUNCTION = "aws:lambda/function:Function"

# --- secrets in user data and environment variables -------------------------------------------
SECRET_WORD = re.compile(
    r"secret|passw(or)?d|passphrase|token|credential|private[-_]?key|api[-_]?key|access[-_]?key", re.IGNORECASE
)
# A variable that names where a secret lives (SECRET_ARN, DB_PASSWORD_PARAMETER) holds no secret.
REFERENCE_SUFFIX = re.compile(r"[-_](arn|name|parameter|param|path|id|secret_id|key_id)$", re.IGNORECASE)
REFERENCE_VALUE = re.compile(r"^(arn:aws[\w-]*:|/|resolve:|\{\{resolve:|\$)")
SECRET_SHAPES = {
    "an AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a private key": re.compile(r"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----"),
    "an AWS secret access key": re.compile(r"aws_secret_access_key\s*[=:]\s*\S", re.IGNORECASE),
}
# NAME=literal in a script; a value taken from $(...), ${...} or `...` is fetched at run time.
ASSIGNMENT = re.compile(r"""(?im)^\s*(?:export\s+)?([A-Za-z_][\w-]*)\s*[=:]\s*["']?([^\s"'$`]{4,})""")


def looks_like_secret_value(text: str) -> str | None:
    for label, pattern in SECRET_SHAPES.items():
        if pattern.search(text):
            return label
    return None


def secret_assignments(script: str) -> list[str]:
    found = []
    for name, value in ASSIGNMENT.findall(script):
        if SECRET_WORD.search(name) and not REFERENCE_SUFFIX.search(name) and not REFERENCE_VALUE.match(value):
            found.append(name)
    return found


def _decode_user_data(value: str) -> str:
    """Launch templates take user data base64-encoded; instances may take either form."""
    compact = value.strip()
    if re.fullmatch(r"[A-Za-z0-9+/=\s]+", compact) and len(compact) % 4 == 0:
        try:
            return base64.b64decode(compact, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return value
    return value


def check_user_data(res: Res, config: Config) -> Iterator[str]:
    for key in ("userData", "userDataBase64"):
        raw = res.get(key)
        if not isinstance(raw, str) or not raw:
            continue
        script = _decode_user_data(raw)
        shape = looks_like_secret_value(script)
        if shape:
            yield f"{res.name} has {shape} in its {key}"
        for name in secret_assignments(script):
            yield f"{res.name} sets {name} to a literal in its {key}; fetch it at boot from Secrets Manager or SecureString"


def check_lambda_environment(res: Res, config: Config) -> Iterator[str]:
    variables = res.get("environment", "variables")
    if not isinstance(variables, Mapping):
        return
    for name, value in sorted(variables.items()):
        if not isinstance(value, str):
            continue  # unknown (e.g. an ARN not yet created) or not text
        shape = looks_like_secret_value(value)
        if shape:
            yield f"function {res.name}: environment variable {name} holds {shape}"
        elif SECRET_WORD.search(name) and not REFERENCE_SUFFIX.search(name) and not REFERENCE_VALUE.match(value):
            yield (
                f"function {res.name}: environment variable {name} holds a literal secret; pass its "
                "Secrets Manager ARN or parameter name instead"
            )


# --- instances and launch templates ---------------------------------------------------------
def _uses_template(res: Res) -> bool:
    return res.type == INSTANCE and res.get("launchTemplate") is not None


def check_storage_encrypted(res: Res, config: Config) -> Iterator[str]:
    if res.type == INSTANCE:
        devices = as_list(res.get("ebsBlockDevices"))
        root = res.get("rootBlockDevice")
        if root is None and not _uses_template(res):
            yield f"instance {res.name} does not declare an encrypted root volume (rootBlockDevice.encrypted)"
        elif root is not None and root is not UNKNOWN:
            devices = [root, *devices]
        for device in devices:
            if get(device, "encrypted") is not UNKNOWN and truthy(get(device, "encrypted")) is not True:
                yield f"instance {res.name}: volume {get(device, 'deviceName', default='root')} is not encrypted"
    else:
        mappings = [m for m in as_list(res.get("blockDeviceMappings")) if get(m, "ebs") is not None]
        if not mappings and res.get("blockDeviceMappings") is not UNKNOWN:
            yield f"launch template {res.name} declares no encrypted EBS mapping for its root volume"
        for mapping in mappings:
            encrypted = get(mapping, "ebs", "encrypted")
            if encrypted is not UNKNOWN and truthy(encrypted) is not True:
                yield f"launch template {res.name}: volume {get(mapping, 'deviceName')} is not encrypted"


def check_imdsv2(res: Res, config: Config) -> Iterator[str]:
    options = res.get("metadataOptions")
    if options is UNKNOWN or (options is None and _uses_template(res)):
        return
    endpoint, tokens = get(options, "httpEndpoint"), get(options, "httpTokens")
    if endpoint == "disabled" or tokens is UNKNOWN:
        return
    if tokens != "required":
        yield f"{res.name} does not require IMDSv2 (metadataOptions.httpTokens is {tokens or 'unset'}, not required)"


def check_no_public_ip(res: Res, config: Config) -> Iterator[str]:
    if res.type == INSTANCE:
        if truthy(res.get("associatePublicIpAddress")):
            yield f"instance {res.name} asks for a public IP (associatePublicIpAddress)"
        return
    for interface in as_list(res.get("networkInterfaces")):
        if truthy(get(interface, "associatePublicIpAddress")):
            yield f"launch template {res.name} gives its network interface a public IP"


def approved_image(value: str, env: str, build_account: str | None) -> bool:
    family = r"[A-Za-z0-9_.-]+"
    version = r"(:[A-Za-z0-9_.-]+)?"
    if re.fullmatch(rf"resolve:ssm:/bakehouse/{re.escape(env)}/ami/{family}{version}", value):
        return True
    if build_account:
        arn = (
            rf"resolve:ssm:arn:aws:ssm:[a-z0-9-]+:{re.escape(build_account)}:"
            rf"parameter/bakehouse/images/{family}/latest{version}"
        )
        return re.fullmatch(arn, value) is not None
    return False


def check_approved_ami(res: Res, config: Config) -> Iterator[str]:
    if not is_workload(res, config):
        return
    image = res.get("ami" if res.type == INSTANCE else "imageId")
    if image is None or image is UNKNOWN:
        return
    if not isinstance(image, str) or not approved_image(image, res.stack, config.get("buildAccountId")):
        yield (
            f"{res.name} launches image {image!r}; workloads take resolve:ssm:/bakehouse/{res.stack}/ami/<family> "
            "(or the build account's published parameter), never a literal AMI id"
        )


# --- Lambda runtimes ----------------------------------------------------------------------------
# Deprecation dates from the AWS Lambda runtimes page (deprecated and planned tables). A runtime
# absent here is current; a newer one gets added when AWS announces its date.
RUNTIME_DEPRECATION = {
    "python2.7": "2021-07-15",
    "python3.6": "2022-07-18",
    "python3.7": "2023-12-04",
    "python3.8": "2024-10-14",
    "python3.9": "2025-12-15",
    "python3.10": "2026-10-31",
    "nodejs": "2016-10-31",
    "nodejs4.3": "2020-03-05",
    "nodejs6.10": "2019-08-12",
    "nodejs8.10": "2020-03-06",
    "nodejs10.x": "2021-07-30",
    "nodejs12.x": "2023-03-31",
    "nodejs14.x": "2023-12-04",
    "nodejs16.x": "2024-06-12",
    "nodejs18.x": "2025-09-01",
    "nodejs20.x": "2026-04-30",
    "java8": "2024-01-08",
    "go1.x": "2024-01-08",
    "provided": "2024-01-08",
    "ruby2.5": "2021-07-30",
    "ruby2.7": "2023-12-07",
    "ruby3.2": "2026-03-31",
    "dotnetcore1.0": "2019-07-30",
    "dotnetcore2.0": "2019-05-30",
    "dotnetcore2.1": "2022-01-05",
    "dotnetcore3.1": "2023-04-03",
    "dotnet5.0": "2022-05-10",
    "dotnet6": "2024-12-20",
    "dotnet7": "2024-05-14",
}
RUNTIME_CONFIG = {
    "asOf": {"type": "string", "description": "judge deprecation as of this ISO date (default: today, UTC)"},
    "warnDays": {"type": "integer", "default": 180},
}


def _as_of(config: Config) -> dt.date:
    given = config.get("asOf")
    return dt.date.fromisoformat(given) if given else dt.datetime.now(dt.UTC).date()


def check_runtime_deprecated(res: Res, config: Config) -> Iterator[str]:
    runtime = res.get("runtime")
    date = RUNTIME_DEPRECATION.get(runtime) if isinstance(runtime, str) else None
    if date and dt.date.fromisoformat(date) <= _as_of(config):
        yield f"function {res.name} uses {runtime}, deprecated by AWS Lambda since {date}"


def check_runtime_deprecating(res: Res, config: Config) -> Iterator[str]:
    runtime = res.get("runtime")
    date = RUNTIME_DEPRECATION.get(runtime) if isinstance(runtime, str) else None
    if not date:
        return
    today, deadline = _as_of(config), dt.date.fromisoformat(date)
    if today < deadline <= today + dt.timedelta(days=int(config.get("warnDays", 180))):
        yield f"function {res.name} uses {runtime}, which AWS Lambda deprecates on {date}"


POLICIES = [
    resource_policy(
        "ec2-storage-encrypted",
        "Instances and launch templates encrypt every EBS volume, root included, explicitly.",
        "Declare the root volume (root_block_device / block_device_mappings) with encrypted=True and the account key.",
        (INSTANCE, LAUNCH_TEMPLATE),
        check_storage_encrypted,
    ),
    resource_policy(
        "ec2-imdsv2-required",
        "Instances and launch templates require IMDSv2 (session tokens) for instance metadata.",
        "Set metadata_options.http_tokens='required' (and a hop limit of 1 unless containers need 2).",
        (INSTANCE, LAUNCH_TEMPLATE),
        check_imdsv2,
    ),
    resource_policy(
        "ec2-no-public-ip",
        "Instances and launch templates never ask for a public IP address.",
        "Drop associate_public_ip_address; reach instances through SSM Session Manager.",
        (INSTANCE, LAUNCH_TEMPLATE),
        check_no_public_ip,
    ),
    workload_policy(
        "workload-approved-ami",
        "Workload instances and launch templates take their image from the approved AMI parameter.",
        "Use ami='resolve:ssm:/bakehouse/<env>/ami/<family>' (published by the image factory).",
        (INSTANCE, LAUNCH_TEMPLATE),
        check_approved_ami,
        config={
            "buildAccountId": {
                "type": "string",
                "description": "the build account, whose published image parameters are approved",
            }
        },
    ),
    resource_policy(
        "no-secrets-in-user-data",
        "User data holds no secrets (keys, passwords, tokens); instances fetch them at boot.",
        "Read the secret at boot from Secrets Manager or a SecureString parameter with the instance role.",
        (INSTANCE, LAUNCH_TEMPLATE, "aws:ec2/launchConfiguration:LaunchConfiguration"),
        check_user_data,
    ),
    resource_policy(
        "no-secrets-in-lambda-environment",
        "Lambda environment variables hold no secrets, only where to find them.",
        "Pass the secret's ARN or parameter name and read it at run time (cache it in the execution environment).",
        (FUNCTION,),
        check_lambda_environment,
    ),
    resource_policy(
        "lambda-runtime-supported",
        "Lambda functions use a runtime AWS has not deprecated.",
        "Move the function to a runtime with no deprecation date yet (see the AWS Lambda runtimes page).",
        (FUNCTION,),
        check_runtime_deprecated,
        config=RUNTIME_CONFIG,
    ),
    resource_policy(
        "lambda-runtime-deprecating-soon",
        "Advisory: the function's runtime is deprecated within warnDays. Not mandatory because it still "
        "works and patches until that date; the upgrade is planned work, not a blocker.",
        "Schedule the runtime upgrade before the deprecation date.",
        (FUNCTION,),
        check_runtime_deprecating,
        level=ADVISORY,
        config=RUNTIME_CONFIG,
    ),
]
