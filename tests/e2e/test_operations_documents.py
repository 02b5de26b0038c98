"""The operations documents pass the same static checks as the factory's (yamllint, the 0.3 schema,
step targets, references, script delegation), and their failure paths lead where they must."""

from __future__ import annotations

import pytest

from tests.documents import checks
from tests.documents.checks import lint

OPERATIONS = ("rescan_images", "isolate_instance")
DOCS = {stem: checks.load(checks.AUTOMATION / f"{stem}.yaml") for stem in OPERATIONS}


@pytest.mark.parametrize("stem", OPERATIONS)
def test_operations_document_passes_yamllint_and_every_static_check(stem):
    assert lint((checks.AUTOMATION / f"{stem}.yaml").read_text()) == []
    doc = DOCS[stem]
    for check in (checks.schema_problems, checks.target_problems, checks.reference_problems, checks.script_problems):
        assert check(stem, doc) == [], check.__name__


def _failure_targets(doc: dict) -> dict[str, str]:
    return {s["name"]: s.get("onFailure", "Abort") for s in doc["mainSteps"]}


def test_every_rescan_step_fails_into_a_cleanup_that_then_fails_the_run():
    targets = _failure_targets(DOCS["rescan_images"])
    assert targets.pop("TerminateScanInstances") == "Abort" and targets.pop("TerminateAfterFailure") == "Abort"
    assert set(targets.values()) == {"step:TerminateAfterFailure"}
    steps = {s["name"]: s for s in DOCS["rescan_images"]["mainSteps"]}
    assert steps["TerminateAfterFailure"]["inputs"]["InputPayload"]["Failed"] is True
    assert steps["TerminateAfterFailure"]["isEnd"] is True and steps["TerminateScanInstances"]["isEnd"] is True


def test_isolation_runs_containment_whatever_fails_and_ends_in_the_report():
    steps = DOCS["isolate_instance"]["mainSteps"]
    names = [s["name"] for s in steps]
    targets = _failure_targets(DOCS["isolate_instance"])
    # Only an unreadable instance skips ahead, straight to the report that pages responders.
    assert names[0] == "ReadInstance" and targets.pop("ReadInstance") == "step:ReportOutcome"
    assert targets.pop("ReportOutcome") == "step:NotifyPlaybookFailed"
    assert targets.pop("NotifyPlaybookFailed") == "Abort"
    # Every other step goes on to the next one, so the swap and the stop always run.
    assert set(targets.values()) == {"Continue"} and not any("nextStep" in s for s in steps)
    swap, stop = names.index("SwapSecurityGroups"), names.index("StopInstance")
    before = [s for s in steps[1:stop] if s["name"] != "SwapSecurityGroups"]
    assert before and all(s.get("isCritical") is False for s in before), "steps before containment are not critical"
    assert all(s.get("isCritical", True) is not False for s in (steps[swap], steps[stop]))
    report = steps[names.index("ReportOutcome")]
    assert names[-2:] == ["ReportOutcome", "NotifyPlaybookFailed"] and report["isEnd"] is True
    assert report["inputs"]["InputPayload"]["ExecutionId"] == "{{ automation:EXECUTION_ID }}"


def test_isolation_steps_run_the_handler_steps_in_the_handler_s_order():
    from handlers.isolate import DOCUMENT_STEPS

    payload_steps = [
        s["inputs"]["InputPayload"]["Step"] for s in DOCS["isolate_instance"]["mainSteps"] if s["action"] == "aws:executeScript"
    ]
    # stop-instance is the document's own aws:changeInstanceState step.
    assert payload_steps == [s for s in DOCUMENT_STEPS if s != "stop-instance"]


def test_isolation_ticket_links_the_evidence_and_deduplicates_replays():
    [ticket] = [s for s in DOCS["isolate_instance"]["mainSteps"] if s["name"] == "OpenTicket"]
    data = ticket["inputs"]["OperationalData"]
    assert ticket["inputs"]["Api"] == "CreateOpsItem"
    assert "{{ FindingId }}" in data["/aws/dedup"]["Value"] and "{{ InstanceId }}" in data["/aws/dedup"]["Value"]
    assert data["bakehouse:evidence"]["Value"].endswith("/manifest.json")


def test_moto_still_cannot_produce_guardduty_findings():
    """Why tests/fakes/guardduty.py builds finding events itself: when this fails, moto can make
    findings and the tests should use it instead."""
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws

    with mock_aws():
        guardduty = boto3.client("guardduty", region_name="eu-west-1")
        detector = guardduty.create_detector(Enable=True)["DetectorId"]
        for call in (
            lambda: guardduty.create_sample_findings(DetectorId=detector),
            lambda: guardduty.list_findings(DetectorId=detector),
        ):
            with pytest.raises(ClientError, match="Not yet implemented"):
                call()


def test_moto_still_lacks_start_automation_execution():
    """Why the rescan's rebuild goes through FakeAutomation (tests/fakes/operations.py)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        ssm = boto3.client("ssm", region_name="eu-west-1")
        with pytest.raises(NotImplementedError):
            ssm.start_automation_execution(DocumentName="Bakehouse-Pipeline")
