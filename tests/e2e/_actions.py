"""The `aws:*` actions of SSM Automation, mapped to boto3 calls against the moto server.

Each action is `fn(ctx, inputs) -> outputs` where inputs are already resolved and outputs are the
action's predefined outputs (the names AWS documents for it). A failure raises StepFailed.
The runner copies `ACTIONS` per instance, so tests add or replace actions without editing this file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from botocore import xform_name
from botocore.exceptions import ClientError

from ._refs import select

if TYPE_CHECKING:
    from .runner import StepContext


class StepFailed(Exception):
    """A step's action failed; the runner follows the step's onFailure."""


# --- pluggable collaborators for what moto cannot do -------------------------------------------
@dataclass(frozen=True)
class CommandRequest:
    document_name: str
    instance_ids: tuple[str, ...]
    parameters: Mapping[str, Any]
    step: str


@dataclass(frozen=True)
class CommandResult:
    status: str  # Success | Failed | TimedOut | Cancelled
    output: str = ""
    response_code: int = 0


class CommandExecutor(Protocol):
    """Stands in for the SSM agent: moto records SendCommand but runs nothing on instances."""

    def __call__(self, request: CommandRequest, ctx: StepContext) -> CommandResult: ...


@dataclass(frozen=True)
class ApprovalRequest:
    notification_arn: str
    message: str
    approvers: tuple[str, ...]
    min_required: int
    step: str


@dataclass(frozen=True)
class ApprovalDecision:
    approved: bool
    approver: str = "tester"
    comment: str = ""


class Approver(Protocol):
    def __call__(self, request: ApprovalRequest) -> ApprovalDecision: ...


@dataclass
class ApiCall:
    service: str
    api: str
    params: dict[str, Any]
    faked: bool = False


@dataclass
class ApiLog:
    calls: list[ApiCall] = field(default_factory=list)

    def count(self, service: str, api: str) -> int:
        return sum(1 for c in self.calls if c.service == service and c.api == api)


def call_api(ctx: StepContext, service: str, api: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """One AWS API call by its documented name (`ec2`, `DescribeImages`); fakes serve moto's gaps."""
    service = service.lower()
    fake = ctx.runner.api_fakes.get((service, api))
    ctx.runner.api_log.calls.append(ApiCall(service, api, dict(params), faked=fake is not None))
    if fake is not None:
        return fake(dict(params))
    client = ctx.client(service)
    shape = client.meta.service_model.operation_model(api).input_shape
    try:
        response = getattr(client, xform_name(api))(**_fit(dict(params), shape))
    except ClientError as err:
        raise StepFailed(f"{service}:{api} failed: {err}") from err
    response.pop("ResponseMetadata", None)
    return response


def _fit(value: Any, shape: Any) -> Any:
    """Automation converts step inputs to the API's types (an Integer parameter into a string field,
    a one-item StringList into a string); botocore would reject them as given."""
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        return {k: _fit(v, shape.members.get(k)) for k, v in value.items()}
    if kind == "list":
        items = value if isinstance(value, list) else [value]
        return [_fit(v, shape.member) for v in items]
    if kind == "map" and isinstance(value, Mapping):
        return {k: _fit(v, shape.value) for k, v in value.items()}
    if kind == "string":
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float):
            return str(value)
    if kind in ("integer", "long") and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    if kind == "boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _split_api_inputs(inputs: Mapping[str, Any], *own: str) -> tuple[str, str, dict[str, Any]]:
    params = {k: v for k, v in inputs.items() if k not in ("Service", "Api", *own)}
    return inputs["Service"], inputs["Api"], params


def execute_aws_api(ctx: StepContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    service, api, params = _split_api_inputs(inputs)
    return call_api(ctx, service, api, params)


def _property_values(ctx: StepContext, inputs: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    service, api, params = _split_api_inputs(inputs, "PropertySelector", "DesiredValues")
    response = call_api(ctx, service, api, params)
    try:
        found = select(response, inputs["PropertySelector"])
    except LookupError:
        found = []
    values = [str(v) for v in (found if isinstance(found, list) else [found])]
    return values, [str(v) for v in inputs["DesiredValues"]]


def wait_for_property(ctx: StepContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Polls until every selected value is desired (AWS semantics), or the step times out."""
    deadline = time.monotonic() + ctx.timeout
    while True:
        values, desired = _property_values(ctx, inputs)
        if values and all(v in desired for v in values):
            return {}
        if time.monotonic() >= deadline:
            raise StepFailed(f"{inputs['Api']} {inputs['PropertySelector']} is {values}, waited for {desired}")
        time.sleep(ctx.runner.poll_interval)


def assert_property(ctx: StepContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    values, desired = _property_values(ctx, inputs)
    if not values or not all(v in desired for v in values):
        raise StepFailed(f"{inputs['Api']} {inputs['PropertySelector']} is {values}, expected one of {desired}")
    return {}


def _wait_instances(ctx: StepContext, ids: list[str], state: str) -> list[str]:
    deadline = time.monotonic() + ctx.timeout
    while True:
        reservations = call_api(ctx, "ec2", "DescribeInstances", {"InstanceIds": ids})["Reservations"]
        states = [i["State"]["Name"] for r in reservations for i in r["Instances"]]
        if states and all(s == state for s in states):
            return states
        if time.monotonic() >= deadline:
            raise StepFailed(f"instances {ids} are {states}, waited for {state}")
        time.sleep(ctx.runner.poll_interval)


_RUN_INSTANCES_KEYS = {
    "ImageId",
    "InstanceType",
    "SubnetId",
    "SecurityGroupIds",
    "KeyName",
    "UserData",
    "MetadataOptions",
    "BlockDeviceMappings",
    "TagSpecifications",
    "Monitoring",
    "PrivateIpAddress",
}


def run_instances(ctx: StepContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    params = {k: v for k, v in inputs.items() if k in _RUN_INSTANCES_KEYS}
    params["MinCount"] = int(inputs.get("MinInstanceCount", 1))
    params["MaxCount"] = int(inputs.get("MaxInstanceCount", 1))
    if "IamInstanceProfileName" in inputs:
        params["IamInstanceProfile"] = {"Name": inputs["IamInstanceProfileName"]}
    elif "IamInstanceProfileArn" in inputs:
        params["IamInstanceProfile"] = {"Arn": inputs["IamInstanceProfileArn"]}
    unknown = (
        set(inputs)
        - _RUN_INSTANCES_KEYS
        - {"MinInstanceCount", "MaxInstanceCount", "IamInstanceProfileName", "IamInstanceProfileArn"}
    )
    if unknown:
        raise StepFailed(f"aws:runInstances has no inputs {sorted(unknown)}")
    instances = call_api(ctx, "ec2", "RunInstances", params)["Instances"]
    ids = [i["InstanceId"] for i in instances]
    # aws:runInstances returns once the instances run; moto's are running as soon as described.
    states = _wait_instances(ctx, ids, "running")
    return {"InstanceIds": ids, "InstanceStates": states}


def change_instance_state(ctx: StepContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    ids, desired = list(inputs["InstanceIds"]), inputs["DesiredState"]
    if not str(inputs.get("CheckStateOnly", "false")).lower() == "true":
        api = {"running": "StartInstances", "stopped": "StopInstances", "terminated": "TerminateInstances"}[desired]
        params: dict[str, Any] = {"InstanceIds": ids}
        if desired == "stopped" and str(inputs.get("Force", "false")).lower() == "true":
            params["Force"] = True
        call_api(ctx, "ec2", api, params)
    return {"InstanceStates": _wait_instances(ctx, ids, desired)}


def create_image(ctx: StepContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    instance = inputs["InstanceId"]
    # Documents pass a runInstances step's InstanceIds (a one-item list) here; SSM accepts it.
    if isinstance(instance, list) and len(instance) == 1:
        instance = instance[0]
    params = {"InstanceId": instance, "Name": inputs["ImageName"]}
    if "ImageDescription" in inputs:
        params["Description"] = inputs["ImageDescription"]
    if "NoReboot" in inputs:
        params["NoReboot"] = str(inputs["NoReboot"]).lower() == "true"
    if "BlockDeviceMappings" in inputs:
        params["BlockDeviceMappings"] = inputs["BlockDeviceMappings"]
    image_id = call_api(ctx, "ec2", "CreateImage", params)["ImageId"]
    deadline = time.monotonic() + ctx.timeout
    while True:
        state = call_api(ctx, "ec2", "DescribeImages", {"ImageIds": [image_id]})["Images"][0]["State"]
        if state == "available":
            return {"ImageId": image_id, "ImageState": state}
        if state == "failed" or time.monotonic() >= deadline:
            raise StepFailed(f"image {image_id} is {state}")
        time.sleep(ctx.runner.poll_interval)


def create_tags(ctx: StepContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    kind = inputs.get("ResourceType", "EC2")
    if kind != "EC2":
        raise StepFailed(f"aws:createTags ResourceType {kind} is not mapped by this runner")
    call_api(ctx, "ec2", "CreateTags", {"Resources": list(inputs["ResourceIds"]), "Tags": list(inputs["Tags"])})
    return {}


def run_command(ctx: StepContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    executor = ctx.runner.command_executor
    if executor is None:
        raise StepFailed("aws:runCommand needs a CommandExecutor; this runner has none")
    ids = tuple(inputs.get("InstanceIds") or ())
    # Recorded in moto too, so a test sees the command the way SSM would have it.
    sent = call_api(
        ctx,
        "ssm",
        "SendCommand",
        {
            "DocumentName": inputs["DocumentName"],
            "InstanceIds": list(ids),
            "Parameters": {k: v if isinstance(v, list) else [str(v)] for k, v in (inputs.get("Parameters") or {}).items()},
        },
    )
    result = executor(CommandRequest(inputs["DocumentName"], ids, inputs.get("Parameters") or {}, ctx.step), ctx)
    outputs = {
        "CommandId": sent["Command"]["CommandId"],
        "Status": result.status,
        "ResponseCode": result.response_code,
        "Output": result.output,
    }
    if result.status != "Success":
        raise StepFailed(f"command {outputs['CommandId']} on {list(ids)}: {result.status}: {result.output}")
    return outputs


def approve(ctx: StepContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    approver = ctx.runner.approver
    if approver is None:
        raise StepFailed("aws:approve needs an Approver; this runner has none")
    request = ApprovalRequest(
        notification_arn=inputs["NotificationArn"],
        message=inputs.get("Message", ""),
        approvers=tuple(inputs["Approvers"]),
        min_required=int(inputs.get("MinRequiredApprovals", 1)),
        step=ctx.step,
    )
    # Automation notifies the approvers through the topic; publishing proves the topic is real.
    call_api(ctx, "sns", "Publish", {"TopicArn": request.notification_arn, "Message": request.message or ctx.step})
    decision = approver(request)
    outputs = {
        "ApprovalStatus": "Approved" if decision.approved else "Rejected",
        "ApproverDecisions": [
            {"Approver": decision.approver, "Decision": "Approve" if decision.approved else "Reject", "Comment": decision.comment}
        ],
    }
    if not decision.approved:
        raise StepFailed(f"approval rejected by {decision.approver}: {decision.comment}")
    return outputs


def execute_automation(ctx: StepContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    child = ctx.runner.run(inputs["DocumentName"], dict(inputs.get("RuntimeParameters") or {}), parent=ctx.execution)
    outputs = {
        "ExecutionId": child.execution_id,
        "Status": child.status,
        "Output": [v for vals in child.outputs.values() for v in (vals if isinstance(vals, list) else [vals])],
    }
    if child.status != "Success":
        raise StepFailed(f"{inputs['DocumentName']} execution {child.execution_id} {child.status}: {child.failure}")
    return outputs


def execute_script(ctx: StepContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {"Payload": ctx.runner.script_host(ctx, inputs)}


def branch(ctx: StepContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    for choice in inputs.get("Choices", []):
        if _choice_holds(choice):
            return {"NextStep": choice["NextStep"]}
    if "Default" in inputs:
        return {"NextStep": inputs["Default"]}
    raise StepFailed("no aws:branch choice holds and there is no Default")


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "StringEquals": lambda a, b: str(a) == str(b),
    "EqualsIgnoreCase": lambda a, b: str(a).lower() == str(b).lower(),
    "StartsWith": lambda a, b: str(a).startswith(str(b)),
    "EndsWith": lambda a, b: str(a).endswith(str(b)),
    "Contains": lambda a, b: str(b) in (a if isinstance(a, list) else str(a)),
    "BooleanEquals": lambda a, b: str(a).lower() == str(b).lower(),
    "NumericEquals": lambda a, b: float(a) == float(b),
    "NumericGreater": lambda a, b: float(a) > float(b),
    "NumericLesser": lambda a, b: float(a) < float(b),
    "NumericGreaterOrEquals": lambda a, b: float(a) >= float(b),
    "NumericLesserOrEquals": lambda a, b: float(a) <= float(b),
}


def _choice_holds(choice: Mapping[str, Any]) -> bool:
    if "And" in choice:
        return all(_choice_holds(c) for c in choice["And"])
    if "Or" in choice:
        return any(_choice_holds(c) for c in choice["Or"])
    if "Not" in choice:
        return not _choice_holds(choice["Not"])
    ops = [k for k in choice if k in _OPERATORS]
    if len(ops) != 1 or "Variable" not in choice:
        raise StepFailed(f"aws:branch choice {dict(choice)} needs Variable and one operator")
    return _OPERATORS[ops[0]](choice["Variable"], choice[ops[0]])


def sleep(ctx: StepContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {}  # documents poll instead; the runner never sleeps for real


ACTIONS: dict[str, Callable[[StepContext, Mapping[str, Any]], dict[str, Any]]] = {
    "aws:executeAwsApi": execute_aws_api,
    "aws:waitForAwsResourceProperty": wait_for_property,
    "aws:assertAwsResourceProperty": assert_property,
    "aws:runInstances": run_instances,
    "aws:changeInstanceState": change_instance_state,
    "aws:createImage": create_image,
    "aws:createTags": create_tags,
    "aws:runCommand": run_command,
    "aws:approve": approve,
    "aws:executeAutomation": execute_automation,
    "aws:executeScript": execute_script,
    "aws:branch": branch,
    "aws:sleep": sleep,
}
