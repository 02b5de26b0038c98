"""Test-side stand-ins for the operations handlers: SSM Automation's StartAutomationExecution (moto
5.2.5 lacks it), an Inspector that scans whatever scan instances run (built on the factory's
recording fake), and an EC2 wrapper that watches how many scan instances are alive at once."""

from __future__ import annotations

import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from botocore.exceptions import ClientError

from estate.naming import FACTORY_SETTINGS_PARAMETER, automation_document_name
from tests.fakes import FakeInspector2, RecordingFake
from tests.fakes._base import faked

AUTOMATION_DIR = Path(__file__).resolve().parents[2] / "automation"


@cache
def document_parameters(name: str) -> dict[str, Any] | None:
    """The declared parameters of the deployed document called `name`, read from automation/."""
    for path in AUTOMATION_DIR.glob("*.yaml"):
        if automation_document_name(path.stem) == name:
            return yaml.safe_load(path.read_text()).get("parameters") or {}
    return None


@cache
def deployed_pipeline_parameters() -> dict[str, Any]:
    """The Pipeline's standing parameters exactly as the build stack deploys them in its settings."""
    from tools.mockrun import cached_run

    [settings] = [
        p for p in cached_run("build").of_type("aws:ssm/parameter:Parameter") if p.inputs["name"] == FACTORY_SETTINGS_PARAMETER
    ]
    value = settings.inputs["value"]
    # Parameter values are secret-wrapped on the wire ({sig, value}); the settings hold no secret.
    return json.loads(value["value"] if isinstance(value, dict) else value)


def seed_factory_settings(ssm: Any, s3: Any, scripts_bucket: str, commit: str = "0123abc") -> str:
    """Put the deployed settings (pointed at this test's scripts bucket) and a versioned scripts
    bundle where the rebuild reads them; returns the bundle's version id."""
    settings = deployed_pipeline_parameters()
    settings = {**settings, "pipelineParameters": {**settings["pipelineParameters"], "ScriptsBucket": scripts_bucket}}
    ssm.put_parameter(Name=FACTORY_SETTINGS_PARAMETER, Type="String", Value=json.dumps(settings), Overwrite=True)
    s3.put_bucket_versioning(Bucket=scripts_bucket, VersioningConfiguration={"Status": "Enabled"})
    return s3.put_object(Bucket=scripts_bucket, Key="provisioning/bundle.tar.gz", Body=b"bundle", Metadata={"commit": commit})[
        "VersionId"
    ]


class FakeAutomation(RecordingFake):
    """SSM with start_automation_execution, which moto 5.2.5 lacks; executions are only recorded."""

    SERVICE = "ssm"
    FAKED = frozenset({"start_automation_execution"})

    def __init__(self, inner: Any, known_documents: set[str]):
        super().__init__(inner)
        self.known_documents = known_documents
        self._by_token: dict[str, tuple[dict[str, Any], str]] = {}  # client token -> (request, execution id)

    @faked
    def _start_automation_execution(
        self, DocumentName: str, Parameters: dict[str, list[str]] | None = None, **params: Any
    ) -> dict:
        # ClientToken: "must be unique, is case insensitive, enforces the UUID format, and can't be reused"
        # (SSM API reference, StartAutomationExecution); a retry of the same request gets the same execution,
        # a different request under a used token IdempotentParameterMismatch.
        token = params.get("ClientToken")
        request = {"DocumentName": DocumentName, "Parameters": Parameters or {}, **params}
        if token is not None:
            try:
                token = str(uuid.UUID(token)).lower()
            except ValueError:
                raise self._error(
                    "start_automation_execution", "ValidationException", f"ClientToken {token} is not a UUID"
                ) from None
            request["ClientToken"] = token
            if token in self._by_token:
                first, execution_id = self._by_token[token]
                if first != request:
                    raise self._error(
                        "start_automation_execution",
                        "IdempotentParameterMismatch",
                        f"ClientToken {token} was used for another request",
                    )
                return {"AutomationExecutionId": execution_id}
        declared = document_parameters(DocumentName)
        if DocumentName not in self.known_documents or declared is None:
            raise self._error(
                "start_automation_execution", "AutomationDefinitionNotFoundException", f"document {DocumentName} does not exist"
            )
        given = Parameters or {}
        # As the service does: every parameter must be declared, every one without a default given.
        unknown = sorted(set(given) - set(declared))
        missing = sorted(n for n, spec in declared.items() if "default" not in (spec or {}) and n not in given)
        if unknown or missing:
            raise self._error(
                "start_automation_execution",
                "InvalidAutomationExecutionParametersException",
                f"{DocumentName}: unknown parameters {unknown}, missing required {missing}",
            )
        execution_id = str(uuid.uuid4())
        if token is not None:
            self._by_token[token] = (request, execution_id)
        return {"AutomationExecutionId": execution_id}


class InspectorThatScans(FakeInspector2):
    """Inspector covers each scan instance it finds running (as its SSM-based scanning does a few
    polls after launch) and reports the findings seeded per AMI."""

    def __init__(self, inner, ec2, findings_by_ami: dict[str, list[tuple[str, str]]], after_polls: int = 1, **kw):
        super().__init__(inner, **kw)
        self.ec2, self.findings_by_ami, self.after_polls = ec2, findings_by_ami, after_polls
        self.seen: set[str] = set()
        self.scanning = True

    def list_coverage(self, **params):
        if self.scanning:
            running = self.ec2.describe_instances(
                Filters=[
                    {"Name": "tag:bakehouse:purpose", "Values": ["rescan"]},
                    {"Name": "instance-state-name", "Values": ["running"]},
                ]
            )["Reservations"]
            for instance in [i for r in running for i in r["Instances"]]:
                if instance["InstanceId"] not in self.seen:
                    self.seen.add(instance["InstanceId"])
                    self.add_coverage(instance["InstanceId"], ami_id=instance["ImageId"], after_polls=self.after_polls)
                    for severity, cve in self.findings_by_ami.get(instance["ImageId"], []):
                        self.add_finding(instance["InstanceId"], severity, ami_id=instance["ImageId"], vulnerability_id=cve)
        return super().list_coverage(**params)


class LaunchLog:
    """Wraps the build EC2 client to see how many scan instances are alive at each launch."""

    def __init__(self, inner, fail_on_launch: int | None = None):
        self._inner, self.alive, self.peak, self.launches = inner, set(), 0, 0
        self.fail_on_launch = fail_on_launch

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def run_instances(self, **params):
        self.launches += 1
        if self.launches == self.fail_on_launch:
            raise ClientError(
                {"Error": {"Code": "InsufficientInstanceCapacity", "Message": "We currently do not have sufficient capacity"}},
                "RunInstances",
            )
        response = self._inner.run_instances(**params)
        self.alive.update(i["InstanceId"] for i in response["Instances"])
        self.peak = max(self.peak, len(self.alive))
        return response

    def terminate_instances(self, **params):
        self.alive.difference_update(params["InstanceIds"])
        return self._inner.terminate_instances(**params)
