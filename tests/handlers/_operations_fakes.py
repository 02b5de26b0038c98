"""Test-side stand-ins for the operations handlers: SSM Automation's StartAutomationExecution (moto
5.2.5 lacks it), an Inspector that scans whatever scan instances run (built on the factory's
recording fake), and an EC2 wrapper that watches how many scan instances are alive at once."""

from __future__ import annotations

import uuid
from typing import Any

from botocore.exceptions import ClientError

from tests.fakes import FakeInspector2, RecordingFake
from tests.fakes._base import faked


class FakeAutomation(RecordingFake):
    """SSM with start_automation_execution, which moto 5.2.5 lacks; executions are only recorded."""

    SERVICE = "ssm"
    FAKED = frozenset({"start_automation_execution"})

    def __init__(self, inner: Any, known_documents: set[str]):
        super().__init__(inner)
        self.known_documents = known_documents

    @faked
    def _start_automation_execution(self, DocumentName: str, **params: Any) -> dict:
        if DocumentName not in self.known_documents:
            raise self._error("start_automation_execution", "InvalidAutomationExecutionParametersException",
                              f"document {DocumentName} does not exist")
        return {"AutomationExecutionId": str(uuid.uuid4())}


class InspectorThatScans(FakeInspector2):
    """Inspector covers each scan instance it finds running (as its SSM-based scanning does a few
    polls after launch) and reports the findings seeded per AMI."""

    def __init__(self, inner, ec2, findings_by_ami: dict[str, list[tuple[str, str]]], after_polls: int = 1,
                 **kw):
        super().__init__(inner, **kw)
        self.ec2, self.findings_by_ami, self.after_polls = ec2, findings_by_ami, after_polls
        self.seen: set[str] = set()
        self.scanning = True

    def list_coverage(self, **params):
        if self.scanning:
            running = self.ec2.describe_instances(Filters=[
                {"Name": "tag:bakehouse:purpose", "Values": ["rescan"]},
                {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
            for instance in [i for r in running for i in r["Instances"]]:
                if instance["InstanceId"] not in self.seen:
                    self.seen.add(instance["InstanceId"])
                    self.add_coverage(instance["InstanceId"], ami_id=instance["ImageId"], after_polls=self.after_polls)
                    for severity, cve in self.findings_by_ami.get(instance["ImageId"], []):
                        self.add_finding(instance["InstanceId"], severity, ami_id=instance["ImageId"],
                                         vulnerability_id=cve)
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
            raise ClientError({"Error": {"Code": "InsufficientInstanceCapacity",
                                         "Message": "We currently do not have sufficient capacity"}}, "RunInstances")
        response = self._inner.run_instances(**params)
        self.alive.update(i["InstanceId"] for i in response["Instances"])
        self.peak = max(self.peak, len(self.alive))
        return response

    def terminate_instances(self, **params):
        self.alive.difference_update(params["InstanceIds"])
        return self._inner.terminate_instances(**params)
