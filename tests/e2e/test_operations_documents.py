"""The operations documents pass the same static checks as the factory's (yamllint, the 0.3 schema,
step targets, references, script delegation), and their failure paths lead where they must."""

from __future__ import annotations

import pytest

from tests.documents import checks
from tests.documents.test_automation_documents import lint

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


def test_every_rescan_step_fails_into_the_scan_instance_cleanup():
    targets = _failure_targets(DOCS["rescan_images"])
    cleanup = targets.pop("TerminateScanInstances")
    assert cleanup == "Abort"
    assert set(targets.values()) == {"step:TerminateScanInstances"}
    last = DOCS["rescan_images"]["mainSteps"][-1]
    assert last["name"] == "TerminateScanInstances" and last["isEnd"] is True


def test_isolation_pages_responders_on_any_failure_but_a_missing_instance_or_a_failed_capture():
    targets = _failure_targets(DOCS["isolate_instance"])
    assert targets.pop("RecordInstanceState") == "Abort"  # nothing changed yet: nothing to report
    assert targets.pop("CaptureMemory") == "Continue"  # containment goes on without the memory image
    assert targets.pop("NotifyPlaybookFailed") == "Abort"
    assert set(targets.values()) == {"step:NotifyPlaybookFailed"}
    capture = next(s for s in DOCS["isolate_instance"]["mainSteps"] if s["name"] == "CaptureMemory")
    assert capture["isCritical"] is False


def test_isolation_steps_run_the_handler_steps_in_the_handler_s_order():
    from handlers.isolate import STEPS

    payload_steps = [s["inputs"]["InputPayload"]["Step"] for s in DOCS["isolate_instance"]["mainSteps"]
                     if s["action"] == "aws:executeScript"]
    # stop-instance is the document's own aws:changeInstanceState step.
    assert payload_steps == [s for s in STEPS if s != "stop-instance"]


def test_moto_still_cannot_produce_guardduty_findings():
    """Why tests/fakes/guardduty.py builds finding events itself: when this fails, moto can make
    findings and the tests should use it instead."""
    import boto3
    from botocore.exceptions import ClientError
    from moto import mock_aws

    with mock_aws():
        guardduty = boto3.client("guardduty", region_name="eu-west-1")
        detector = guardduty.create_detector(Enable=True)["DetectorId"]
        for call in (lambda: guardduty.create_sample_findings(DetectorId=detector),
                     lambda: guardduty.list_findings(DetectorId=detector)):
            with pytest.raises(ClientError, match="Not yet implemented"):
                call()


def test_moto_still_lacks_start_automation_execution():
    """Why the rescan's rebuild goes through FakeAutomation (tests/handlers/_operations_fakes.py)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        ssm = boto3.client("ssm", region_name="eu-west-1")
        with pytest.raises(NotImplementedError):
            ssm.start_automation_execution(DocumentName="Bakehouse-Pipeline")
