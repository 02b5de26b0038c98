"""Dev canary (issue 17.3): while a candidate image is validated, one instance of it runs in the canary
env (the settings' canaryEnv, default dev) from that env's app launch template, and its health joins the
approval request. The canary decides nothing: prod still waits for its approvers.

Three actions, each an aws:executeScript step of Bakehouse-Pipeline and Bakehouse-ReleaseImage:
- Start: share the candidate with the canary account, write /bakehouse/<env>/ami-candidate/<family>
  there, launch one canary from bakehouse-<env>-app, tagged at launch (client token: the execution).
- Check: the canary's EC2 status checks and its SSM agent's ping; the image is tagged
  bakehouse:dev-canary=<result> and the health message goes to the approval request.
- Terminate: every canary of the execution terminated, the candidate parameter deleted if it still
  names this image, the share withdrawn. Runs on every path, so nothing launched outlives the run.

The canary account is reached through its BakehouseImagePublisher role (components/workload/factory_access.py).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .common import (
    ACCOUNT_ID,
    AMI_ID,
    FACTORY_SETTINGS_PARAMETER,
    REGION,
    BakehouseError,
    EventReader,
    SettingsUnusable,
    assumed_session,
    client,
    dict_to_tags,
    factory_settings,
)
from .contract import ENV_NAME as ENV
from .contract import FACTORY_TARGETS_PATH as TARGETS_PATH
from .contract import FAMILY, TAG_FAMILY, TAG_TIER
from .contract import IMAGE_PUBLISHER_ROLE as PUBLISHER_ROLE
from .contract import TAG_CANARY_EXECUTION as TAG_EXECUTION
from .contract import TAG_CANARY_IMAGE as TAG_IMAGE
from .contract import TAG_DEV_CANARY as TAG_RESULT
from .contract import TAG_PURPOSE as PURPOSE_TAG

SETTINGS_PARAMETER = FACTORY_SETTINGS_PARAMETER
DEFAULT_CANARY_ENV = "dev"  # components/build/factory_config.py DEFAULT_CANARY_ENV
PURPOSE = "dev-canary"  # components/workload/factory_access.py: the publisher role terminates only these
ACTIONS = ("Start", "Check", "Terminate")
EXECUTION = re.compile(r"[A-Za-z0-9-]{1,60}")  # an Automation execution id (a UUID) fits the client token
LIVE_STATES = ("pending", "running", "stopping", "stopped")
MAX_MESSAGE = 900  # automation/approve_image.yaml CanaryHealth allowedPattern


class CanaryLaunchFailed(BakehouseError):
    """The canary could not be launched; the message names the account and image."""


class CanaryNotTerminated(BakehouseError):
    """Something the canary left behind could not be removed; the message names it."""


@dataclass(frozen=True)
class CanaryRequest:
    action: str
    image_id: str
    family: str
    execution_id: str
    region: str | None = None
    publisher_role: str = PUBLISHER_ROLE
    wait_seconds: int = 300

    @classmethod
    def parse(cls, event: Any) -> CanaryRequest:
        read = EventReader("dev_canary", event)
        action = read.string("Action")
        if action and action not in ACTIONS:
            read.problems.append(f"Action is {action!r}, expected one of {', '.join(ACTIONS)}")
        region = read.event.get("Region")
        if region is not None and not (isinstance(region, str) and REGION.fullmatch(region)):
            read.problems.append(f"Region is {region!r}, expected a region name")
        request = cls(
            action=action,
            image_id=read.string("ImageId", AMI_ID),
            family=read.string("Family", FAMILY),
            execution_id=read.string("ExecutionId", EXECUTION),
            region=region,
            wait_seconds=read.integer("WaitSeconds", 0, 900, 300),
        )
        read.done()
        return request


@dataclass(frozen=True)
class CanaryTarget:
    env: str
    account_id: str | None  # None: the settings name no account for the canary env, nothing runs

    @property
    def candidate_parameter_suffix(self) -> str:
        return f"/bakehouse/{self.env}/ami-candidate/"

    @property
    def launch_template_name(self) -> str:
        return f"bakehouse-{self.env}-app"  # components/workload/app_access.py names the env's template so


def canary_target(settings: Mapping[str, Any], targets: Mapping[str, str]) -> CanaryTarget:
    """Where the canary runs: the settings' canaryEnv (components/build/factory_config.py) and that env's
    account among the factory's targets (env -> account id)."""
    env = settings.get("canaryEnv", DEFAULT_CANARY_ENV)
    if not isinstance(env, str) or not ENV.fullmatch(env):
        raise SettingsUnusable(f"{SETTINGS_PARAMETER}: canaryEnv is {env!r}, expected an env name")
    account = targets.get(env)
    if account is not None and not ACCOUNT_ID.fullmatch(account):
        raise SettingsUnusable(f"{TARGETS_PATH}/{env} is {account!r}, expected a 12-digit account id")
    return CanaryTarget(env, account)


def candidate_parameter(target: CanaryTarget, family: str) -> str:
    return f"{target.candidate_parameter_suffix}{family}"


# --- plans: pure ------------------------------------------------------------------------------------


def launch_request(request: CanaryRequest, target: CanaryTarget, subnet_ids: Sequence[str]) -> dict[str, Any]:
    """RunInstances for the one canary: the env's app template with the candidate image, tags at launch,
    the execution as client token. IMDSv2 is stated at the call itself (start)."""
    if not subnet_ids:
        raise CanaryLaunchFailed(
            f"account {target.account_id} ({target.env}) has no subnet tagged "
            f"bakehouse:tier=private to launch the canary of {request.image_id} into"
        )
    tags = dict_to_tags(
        {
            PURPOSE_TAG: PURPOSE,
            TAG_EXECUTION: request.execution_id,
            TAG_IMAGE: request.image_id,
            TAG_FAMILY: request.family,
            "Name": f"bakehouse-canary-{request.family}",
        }
    )
    return {
        "LaunchTemplate": {"LaunchTemplateName": target.launch_template_name, "Version": "$Default"},
        "ImageId": request.image_id,
        "SubnetId": sorted(subnet_ids)[0],
        "MinCount": 1,
        "MaxCount": 1,
        "ClientToken": f"canary-{request.execution_id}",
        "TagSpecifications": [{"ResourceType": kind, "Tags": tags} for kind in ("instance", "volume")],
    }


@dataclass(frozen=True)
class Health:
    result: str  # healthy | unhealthy | not-launched | not-run
    detail: str

    @property
    def message(self) -> str:
        """What the approval request says: no braces (Automation would read them as a variable) and
        within Bakehouse-ApproveImage's CanaryHealth pattern."""
        text = f"{self.result}: {self.detail}".replace("{", "(").replace("}", ")")
        return text[:MAX_MESSAGE]


def judge(instance_id: str, status: Mapping[str, Any] | None, ping: str | None) -> Health:
    """Healthy only when the instance runs, both EC2 status checks pass and its SSM agent is Online."""
    state = (status or {}).get("InstanceState", {}).get("Name", "unknown")
    system = (status or {}).get("SystemStatus", {}).get("Status", "unknown")
    instance = (status or {}).get("InstanceStatus", {}).get("Status", "unknown")
    detail = f"{instance_id} {state}, system status {system}, instance status {instance}, SSM agent {ping or 'absent'}"
    healthy = state == "running" and system == "ok" and instance == "ok" and ping == "Online"
    return Health("healthy" if healthy else "unhealthy", detail)


def settled(status: Mapping[str, Any] | None, ping: str | None) -> bool:
    """Still worth waiting for: a pending instance, initializing checks, an agent not yet registered."""
    if status is None or status.get("InstanceState", {}).get("Name") == "pending":
        return False
    checks = (status.get("SystemStatus", {}).get("Status"), status.get("InstanceStatus", {}).get("Status"))
    if status.get("InstanceState", {}).get("Name") != "running":
        return True
    return "initializing" not in checks and ping is not None


# --- AWS ---------------------------------------------------------------------------------------------


class AwsClients:
    """Build-account clients, and clients in the canary account through its publisher role."""

    def __init__(self, region: str | None, role: str):
        self.region, self._role = region, role
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def home(self, service: str) -> Any:
        return client(service, self.region)

    def canary(self, account_id: str, service: str) -> Any:
        with self._lock:
            if account_id not in self._sessions:
                self._sessions[account_id] = assumed_session(
                    self.home("sts"),
                    f"arn:aws:iam::{account_id}:role/{self._role}",
                    f"bakehouse-dev-canary-{account_id}",
                    self.region,
                )
        return client(service, self.region, self._sessions[account_id])


read_settings = factory_settings  # the canary env and the targets' path come from the factory settings


def read_targets(ssm: Any) -> dict[str, str]:
    """env -> account id under /bakehouse/factory/targets (components/build/factory_targets.py writes one
    parameter per env; the automation role may read the path by GetParametersByPath, not GetParameter)."""
    found = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=TARGETS_PATH, Recursive=False):
        found.update({p["Name"].removeprefix(f"{TARGETS_PATH}/"): p.get("Value", "") for p in page["Parameters"]})
    return found


def canaries(ec2: Any, execution_id: str, states: Sequence[str] = LIVE_STATES) -> list[dict[str, Any]]:
    found = []
    for page in ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": f"tag:{TAG_EXECUTION}", "Values": [execution_id]},
            {"Name": f"tag:{PURPOSE_TAG}", "Values": [PURPOSE]},
            {"Name": "instance-state-name", "Values": list(states)},
        ]
    ):
        found += [i for r in page["Reservations"] for i in r["Instances"]]
    return sorted(found, key=lambda i: i["InstanceId"])


def start(request: CanaryRequest, target: CanaryTarget, clients: AwsClients) -> dict[str, Any]:
    if target.account_id is None:
        return {"Status": "NotRun", "InstanceId": "", "Account": ""}
    account = target.account_id
    # Launch permission first: the candidate parameter's aws:ec2:image check and the launch need it.
    clients.home("ec2").modify_image_attribute(ImageId=request.image_id, LaunchPermission={"Add": [{"UserId": account}]})
    ssm = clients.canary(account, "ssm")
    ssm.put_parameter(
        Name=candidate_parameter(target, request.family),
        Value=request.image_id,
        Type="String",
        DataType="aws:ec2:image",
        Overwrite=True,
        Description=f"Candidate under validation, execution {request.execution_id}; not approved",
    )
    ec2 = clients.canary(account, "ec2")
    running = canaries(ec2, request.execution_id)
    if running:  # a rerun of the step: the canary of this execution already exists
        return {"Status": "Running", "InstanceId": running[0]["InstanceId"], "Account": account}
    subnets = [
        s["SubnetId"]
        for page in ec2.get_paginator("describe_subnets").paginate(Filters=[{"Name": f"tag:{TAG_TIER}", "Values": ["private"]}])
        for s in page["Subnets"]
    ]
    try:
        # IMDSv2 in the request itself, literally: the root SCP denies a launch whose request does not say
        # ec2:MetadataHttpTokens=required, whatever the template holds (tests/iam/scp_fit.py reads it here).
        launched = ec2.run_instances(
            MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"}, **launch_request(request, target, subnets)
        )["Instances"][0]["InstanceId"]
    except (ClientError, BotoCoreError) as err:
        raise CanaryLaunchFailed(f"canary of {request.image_id} in {account} ({target.env}): {err}") from err
    return {"Status": "Launched", "InstanceId": launched, "Account": account}


def _ping(ssm: Any, instance_id: str) -> str | None:
    info = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])["InstanceInformationList"]
    return info[0].get("PingStatus") if info else None


def check(
    request: CanaryRequest,
    target: CanaryTarget,
    clients: AwsClients,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    if target.account_id is None:
        health = Health("not-run", f"no {target.env} account under {TARGETS_PATH}")
    else:
        health = _observe(request, target, clients, sleep, clock)
    clients.home("ec2").create_tags(Resources=[request.image_id], Tags=[{"Key": TAG_RESULT, "Value": health.result}])
    return {"Result": health.result, "Health": health.message}


def _observe(
    request: CanaryRequest, target: CanaryTarget, clients: AwsClients, sleep: Callable[[float], None], clock: Callable[[], float]
) -> Health:
    account = target.account_id
    assert account is not None
    try:
        ec2, ssm = clients.canary(account, "ec2"), clients.canary(account, "ssm")
        found = canaries(ec2, request.execution_id)
        if not found:
            return Health("not-launched", f"no canary of {request.image_id} in {account} ({target.env})")
        instance_id = found[0]["InstanceId"]
        deadline = clock() + request.wait_seconds
        while True:
            statuses = ec2.describe_instance_status(InstanceIds=[instance_id], IncludeAllInstances=True)
            status = next(iter(statuses["InstanceStatuses"]), None)
            ping = _ping(ssm, instance_id)
            if settled(status, ping) or clock() >= deadline:
                return judge(instance_id, status, ping)
            sleep(min(15.0, max(deadline - clock(), 0.0)))
    except (ClientError, BotoCoreError) as err:
        # The canary informs the approvers; an unreadable dev account is reported, not fatal.
        return Health("unhealthy", f"canary in {account} ({target.env}) could not be read: {err}")


def terminate(request: CanaryRequest, target: CanaryTarget, clients: AwsClients) -> dict[str, Any]:
    """Every part is attempted; whatever could not be removed fails the step by name."""
    if target.account_id is None:
        return {"Terminated": [], "ParameterDeleted": False}
    account, failures = target.account_id, []
    terminated: list[str] = []
    parameter_deleted = False
    try:
        ec2 = clients.canary(account, "ec2")
        terminated = [i["InstanceId"] for i in canaries(ec2, request.execution_id)]
        if terminated:
            ec2.terminate_instances(InstanceIds=terminated)
    except (ClientError, BotoCoreError) as err:
        failures.append(f"canary instances {terminated or '(not listed)'} in {account}: {err}")
    try:
        parameter_deleted = _delete_candidate_parameter(clients.canary(account, "ssm"), request, target)
    except (ClientError, BotoCoreError) as err:
        failures.append(f"{candidate_parameter(target, request.family)} in {account}: {err}")
    try:
        clients.home("ec2").modify_image_attribute(ImageId=request.image_id, LaunchPermission={"Remove": [{"UserId": account}]})
    except (ClientError, BotoCoreError) as err:
        failures.append(f"launch permission of {request.image_id} for {account}: {err}")
    if failures:
        raise CanaryNotTerminated("dev canary cleanup incomplete: " + "; ".join(failures))
    return {"Terminated": terminated, "ParameterDeleted": parameter_deleted}


def _delete_candidate_parameter(ssm: Any, request: CanaryRequest, target: CanaryTarget) -> bool:
    """Only while it still names this image: a later execution's candidate is not ours to remove."""
    name = candidate_parameter(target, request.family)
    try:
        value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return False
    if value != request.image_id:
        return False
    ssm.delete_parameter(Name=name)
    return True


def handler(events: dict[str, Any], context: Any) -> dict[str, Any]:
    """SSM aws:executeScript entry point.

    Event: Action (Start | Check | Terminate), ImageId, Family, ExecutionId, optional Region and
    WaitSeconds (Check: how long to wait for initializing status checks, default 300).
    Output: Start {Status, InstanceId, Account}; Check {Result, Health}; Terminate {Terminated, ParameterDeleted}.
    """
    request = CanaryRequest.parse(events)
    clients = AwsClients(request.region, request.publisher_role)
    ssm = clients.home("ssm")
    target = canary_target(read_settings(ssm), read_targets(ssm))
    if request.action == "Start":
        return start(request, target, clients)
    if request.action == "Check":
        return check(request, target, clients)
    return terminate(request, target, clients)


__all__ = [
    "CanaryRequest",
    "CanaryTarget",
    "Health",
    "canary_target",
    "launch_request",
    "judge",
    "start",
    "check",
    "terminate",
    "handler",
]
