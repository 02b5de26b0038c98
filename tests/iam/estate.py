"""The six stacks' real programs under the mock harness (tools/mockrun.py), with ARNs shaped as AWS
shapes them, and every policy document the estate declares, wherever it sits in a resource's inputs."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import pulumi

from tools.mockrun import EchoMocks, StackRun

# type token -> ARN as AWS writes it (the harness's generic "<kind>/<name>" is wrong for these).
ARN_SHAPES = {
    "aws:iam/role:Role": "arn:aws:iam::{account}:role{path}{name}",
    "aws:iam/policy:Policy": "arn:aws:iam::{account}:policy{path}{name}",
    "aws:iam/user:User": "arn:aws:iam::{account}:user{path}{name}",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "arn:aws:iam::{account}:oidc-provider/{url}",
    "aws:s3/bucket:Bucket": "arn:aws:s3:::{bucket}",
    "aws:s3/bucketV2:BucketV2": "arn:aws:s3:::{bucket}",
    "aws:sns/topic:Topic": "arn:aws:sns:{region}:{account}:{name}",
    "aws:sqs/queue:Queue": "arn:aws:sqs:{region}:{account}:{name}",
    "aws:lambda/function:Function": "arn:aws:lambda:{region}:{account}:function:{name}",
    "aws:cloudwatch/logGroup:LogGroup": "arn:aws:logs:{region}:{account}:log-group:{name}",
    "aws:cloudwatch/eventRule:EventRule": "arn:aws:events:{region}:{account}:rule/{name}",
    "aws:cloudwatch/eventBus:EventBus": "arn:aws:events:{region}:{account}:event-bus/{name}",
    "aws:ssm/document:Document": "arn:aws:ssm:{region}:{account}:document/{name}",
    "aws:ssm/parameter:Parameter": "arn:aws:ssm:{region}:{account}:parameter/{param}",
    "aws:kms/alias:Alias": "arn:aws:kms:{region}:{account}:{name}",
    "aws:sfn/stateMachine:StateMachine": "arn:aws:states:{region}:{account}:stateMachine:{name}",
    "aws:cloudtrail/trail:Trail": "arn:aws:cloudtrail:{region}:{account}:trail/{name}",
    "aws:athena/workgroup:Workgroup": "arn:aws:athena:{region}:{account}:workgroup/{name}",
    "aws:scheduler/schedule:Schedule": "arn:aws:scheduler:{region}:{account}:schedule/default/{name}",
    "aws:ec2/securityGroup:SecurityGroup": "arn:aws:ec2:{region}:{account}:security-group/{id}",
    "aws:ec2/launchTemplate:LaunchTemplate": "arn:aws:ec2:{region}:{account}:launch-template/{id}",
    "aws:ec2/vpc:Vpc": "arn:aws:ec2:{region}:{account}:vpc/{id}",
    "aws:ec2/subnet:Subnet": "arn:aws:ec2:{region}:{account}:subnet/{id}",
    "aws:servicecatalog/portfolio:Portfolio": "arn:aws:catalog:{region}:{account}:portfolio/{id}",
    "aws:servicecatalog/product:Product": "arn:aws:catalog:{region}:{account}:product/{id}",
    "aws:guardduty/detector:Detector": "arn:aws:guardduty:{region}:{account}:detector/{id}",
}


class AwsShapedMocks(EchoMocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        resource_id, outputs = super().new_resource(args)
        shape = ARN_SHAPES.get(args.typ)
        if shape and "arn" not in args.inputs:
            provider_name = args.provider.split("::")[-2] if args.provider else ""
            region, account = self._provider_scope.get(provider_name, ("mock-region", "000000000000"))
            name = str(args.inputs.get("name") or args.name)
            outputs["arn"] = shape.format(
                account=account,
                region=region,
                name=name,
                id=resource_id,
                path=args.inputs.get("path") or "/",
                bucket=args.inputs.get("bucket") or args.name,
                url=str(args.inputs.get("url", "")).removeprefix("https://"),
                param=name.lstrip("/"),
            )
        return [resource_id, outputs]


@cache
def shaped_run(stack: str) -> StackRun:
    # The rehearsal is the same AWS-shaped run (its monitor only also keeps dependencies): one run serves both.
    from tests.iam.first_deployment import rehearsed

    return rehearsed(stack).run


@dataclass(frozen=True)
class Declared:
    stack: str
    type: str
    resource: str
    where: str  # the input holding it, e.g. "policy", "inlinePolicies[0].policy"
    document: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return kind_of(self.type, self.where)


def kind_of(type_token: str, where: str) -> str:
    short = type_token.split(":")[1]
    return f"{short}.{where.split('[')[0].split('.')[0]}"


def _documents(value: Any, where: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(value, str) and value.lstrip()[:1] == "{":
        try:
            value = json.loads(value)
        except ValueError:
            return
    if isinstance(value, Mapping):
        if "Statement" in value:
            yield where, value
            return
        for key, item in value.items():
            yield from _documents(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _documents(item, f"{where}[{i}]")


def documents(run: StackRun) -> list[Declared]:
    found = []
    for resource in run.resources:
        if resource.type == "aws:organizations/policy:Policy" and resource.inputs.get("type") != "SERVICE_CONTROL_POLICY":
            continue
        for where, doc in _documents(dict(resource.inputs), ""):
            found.append(Declared(run.stack, resource.type, resource.name, where, doc))
    return found
