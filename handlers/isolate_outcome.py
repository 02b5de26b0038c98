"""How an isolation run ends: the security topic hears of every failed step, by name.

The document's last step reads its own execution (ssm:GetAutomationExecution) for the steps that
failed; a full run in one call passes them directly. A run without failures says nothing here: the
manifest it published is the announcement.
"""

from __future__ import annotations

import json
from typing import Any

from handlers.common import AwsClient
from handlers.isolate_evidence import Step

FAILED_STATES = ("Failed", "TimedOut", "Cancelled")
# The report's own step: still running while it reads the execution, never one of the failures it names.
_REPORTED = "ReportOutcome"


def failed_steps_of_execution(ssm: AwsClient, execution_id: str | None) -> dict[str, str]:
    if not execution_id:
        raise ValueError("report-outcome needs the automation execution id (ExecutionId)")
    execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)["AutomationExecution"]
    return {
        s["StepName"]: (s.get("FailureMessage") or s["StepStatus"])[:500]
        for s in execution.get("StepExecutions", [])
        if s.get("StepStatus") in FAILED_STATES and s["StepName"] != _REPORTED
    }


def announce_failures(sns: AwsClient, request: Any, failed: dict[str, str]) -> Step:
    if not failed:
        return Step("report-outcome", False, {"failed": []})
    try:
        where = f"s3://{request.evidence_bucket}/{request.prefix}"
    except Exception:  # noqa: BLE001 - the location may be the thing that could not be read
        where = f"s3://{request.evidence_bucket}/incidents/{request.finding_id}/"
    message = {
        "instance_id": request.instance_id,
        "finding_id": request.finding_id,
        "failed_steps": failed,
        "evidence": where,
        "next": "responders take over by hand from the failed steps; containment ran whatever failed before it",
    }
    sns.publish(
        TopicArn=request.topic_arn,
        Subject=f"Bakehouse isolation of {request.instance_id} failed: {', '.join(failed)}"[:100],
        Message=json.dumps(message, sort_keys=True, indent=2),
    )
    return Step("report-outcome", True, {"failed": sorted(failed)})
