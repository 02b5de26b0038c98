"""Every factory automation document passes yamllint, the 0.3 schema and the cross-reference checks,
and each check is shown to catch a deliberately broken copy."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tests.documents import checks
from tests.documents.checks import lint

DOCS = checks.documents()
FACTORY = ("build_image", "validate_image", "approve_image", "distribute_image", "pipeline", "check_base_images")


def broken(stem: str) -> dict:
    return copy.deepcopy(DOCS[stem])


def step(doc: dict, name: str) -> dict:
    return next(s for s in doc["mainSteps"] if s["name"] == name)


def test_factory_documents_are_all_present():
    assert set(FACTORY) <= set(DOCS)


@pytest.mark.parametrize("stem", FACTORY)
def test_document_passes_yamllint(stem):
    assert lint((checks.AUTOMATION / f"{stem}.yaml").read_text()) == []


def test_yamllint_catches_duplicate_keys_and_trailing_spaces():
    text = (checks.AUTOMATION / "build_image.yaml").read_text()
    bad = text.replace("schemaVersion: '0.3'\n", "schemaVersion: '0.3'\nschemaVersion: '0.3'  \n", 1)
    rules = {problem.split()[1] for problem in lint(bad)}
    assert {"key-duplicates:", "trailing-spaces:"} <= rules


@pytest.mark.parametrize("stem", FACTORY)
def test_document_matches_the_automation_schema(stem):
    assert checks.schema_problems(stem, DOCS[stem]) == []


def _drop_schema_version(d):
    d.pop("schemaVersion")


def _old_schema(d):
    d["schemaVersion"] = "0.2"


def _no_assume_role(d):
    d["parameters"].pop("AutomationAssumeRole")


def _unknown_action(d):
    step(d, "StopBuildInstance")["action"] = "aws:doMagic"


def _bad_on_failure(d):
    step(d, "CreateImage")["onFailure"] = "Retry"


def _sleeps(d):
    d["mainSteps"].insert(3, {"name": "WaitABit", "action": "aws:sleep", "inputs": {"Duration": "PT5M"}})


def _imds_v1(d):
    step(d, "LaunchBuildInstance")["inputs"]["MetadataOptions"]["HttpTokens"] = "optional"


def _plain_volume(d):
    step(d, "LaunchBuildInstance")["inputs"]["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] = False


def _stray_field(d):
    step(d, "CreateImage")["retries"] = 3


def _wait_without_selector(d):
    step(d, "WaitForSsmAgentOnline")["inputs"].pop("PropertySelector")


def _bad_output_type(d):
    step(d, "ResolveBaseImage")["outputs"][0]["Type"] = "Text"


def _plugin_launch(d):
    step(d, "LaunchBuildInstance")["action"] = "aws:runInstances"


def _no_client_token(d):
    step(d, "LaunchBuildInstance")["inputs"].pop("ClientToken")


def _image_tagged_later(d):
    step(d, "CreateImage")["inputs"].pop("TagSpecifications")


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (_drop_schema_version, "'schemaVersion' is a required property"),
        (_old_schema, "'0.3' was expected"),
        (_no_assume_role, "'AutomationAssumeRole' is a required property"),
        (_unknown_action, "'aws:doMagic' is not one of"),
        (_bad_on_failure, "'Retry' does not match"),
        (_sleeps, "should not be valid"),
        (_imds_v1, "'required' was expected"),
        (_plain_volume, "True was expected"),
        (_stray_field, "Additional properties are not allowed ('retries'"),
        (_wait_without_selector, "'PropertySelector' is a required property"),
        (_bad_output_type, "'Text' is not one of"),
        (_plugin_launch, "should not be valid under {'const': 'aws:runInstances'}"),
        (_no_client_token, "'ClientToken' is a required property"),
        (_image_tagged_later, "'TagSpecifications' is a required property"),
    ],
)
def test_schema_catches_a_broken_copy(breakage, expected):
    doc = broken("build_image")
    breakage(doc)
    problems = checks.schema_problems("build_image", doc)
    assert any(expected in p for p in problems), problems


def test_schema_requires_executescript_steps_to_use_the_handlers_attachment():
    doc = broken("approve_image")
    step(doc, "PublishImage")["inputs"]["Attachment"] = "other.zip"
    step(doc, "PublishImage")["inputs"]["Runtime"] = "python3.6"
    problems = checks.schema_problems("approve_image", doc)
    assert any("'handlers.zip' was expected" in p for p in problems)
    assert any("'python3.6' is not one of" in p for p in problems)


@pytest.mark.parametrize("stem", FACTORY)
def test_step_targets_exist(stem):
    assert checks.target_problems(stem, DOCS[stem]) == []


def test_target_check_catches_steps_that_go_nowhere():
    doc = broken("approve_image")
    step(doc, "RequestApproval")["nextStep"] = "Publish"
    step(doc, "RequestApproval")["onFailure"] = "step:Cleanup"
    step(doc, "ChooseApprovalPath")["inputs"]["Default"] = "AskHumans"
    problems = checks.target_problems("approve_image", doc)
    assert len(problems) == 3
    assert all(any(t in p for p in problems) for t in ("-> Publish", "-> Cleanup", "-> AskHumans"))


@pytest.mark.parametrize("stem", FACTORY)
def test_references_resolve_and_every_parameter_is_used(stem):
    assert checks.reference_problems(stem, DOCS[stem]) == []


def test_reference_check_catches_unknown_names_outputs_read_too_early_and_unused_parameters():
    doc = broken("build_image")
    step(doc, "CreateImage")["inputs"]["Name"] = "bakehouse-{{ Familly }}"
    step(doc, "WaitForImageAvailable")["inputs"]["ImageIds"] = ["{{ CreateImage.ImageIdentifier }}"]
    step(doc, "LaunchBuildInstance")["inputs"]["ImageId"] = "{{ DescribeBuiltImage.ImageId }}"
    doc["parameters"]["Unused"] = {"type": "String"}
    problems = checks.reference_problems("build_image", doc)
    assert any("{{ Familly }}" in p and "CreateImage" in p for p in problems)
    assert any("ImageIdentifier" in p for p in problems)
    assert any("read before step DescribeBuiltImage can have run" in p for p in problems)
    assert any("parameter Unused is declared but never used" in p for p in problems)


@pytest.mark.parametrize("stem", FACTORY)
def test_launched_instances_are_terminated_on_every_way_out(stem):
    assert checks.cleanup_problems(stem, DOCS[stem]) == []


def test_cleanup_check_catches_a_step_that_aborts_with_the_build_instance_running():
    doc = broken("build_image")
    step(doc, "RunProvisioningScripts")["onFailure"] = "Abort"
    problems = checks.cleanup_problems("build_image", doc)
    assert problems == [
        "build_image: step RunProvisioningScripts runs while LaunchBuildInstance's instances "
        "live, but its onFailure (Abort) does not terminate them"
    ]


def test_cleanup_check_catches_a_launch_that_aborts_after_creating_its_instance():
    doc = broken("build_image")
    step(doc, "LaunchBuildInstance")["onFailure"] = "Abort"
    assert checks.cleanup_problems("build_image", doc) == [
        "build_image: step LaunchBuildInstance can fail after creating its instances, but its onFailure (Abort) "
        "does not terminate them"
    ]


def test_cleanup_check_catches_a_success_path_that_skips_termination():
    doc = broken("build_image")
    step(doc, "WaitForImageAvailable")["nextStep"] = "DescribeBuiltImage"
    assert "build_image: instances of LaunchBuildInstance can end the run without a terminate step" in checks.cleanup_problems(
        "build_image", doc
    )


def test_cleanup_check_catches_a_failure_path_that_ends_before_terminating():
    doc = broken("validate_image")
    step(doc, "SummarizeInspectorFindings")["onFailure"] = "step:Report"
    doc["mainSteps"].append(
        {"name": "Report", "action": "aws:executeAwsApi", "isEnd": True, "inputs": {"Service": "ec2", "Api": "DescribeImages"}}
    )
    problems = checks.cleanup_problems("validate_image", doc)
    assert any("SummarizeInspectorFindings" in p for p in problems), problems


DEPLOYED = {checks.automation_document_name(s): d for s, d in DOCS.items()}


def test_pipeline_runs_deployed_documents_with_exactly_their_parameters():
    assert checks.child_document_problems("pipeline", DOCS["pipeline"], DEPLOYED) == []


def test_child_document_check_catches_unknown_documents_and_parameter_mismatches():
    doc = broken("pipeline")
    step(doc, "ValidateImage")["inputs"]["DocumentName"] = "Bakehouse-ValidateImages"
    step(doc, "ApproveImage")["inputs"]["RuntimeParameters"]["Approver"] = "{{ Approvers }}"
    del step(doc, "DistributeImage")["inputs"]["RuntimeParameters"]["Regions"]
    assert checks.child_document_problems("pipeline", doc, DEPLOYED) == [
        "pipeline: step ValidateImage runs Bakehouse-ValidateImages, which automation/ does not deploy",
        "pipeline: step ApproveImage passes Approver, which Bakehouse-ApproveImage does not declare",
        "pipeline: step DistributeImage does not pass Regions, which Bakehouse-DistributeImage requires",
    ]


@pytest.mark.parametrize("stem", FACTORY)
def test_script_payloads_carry_only_keys_their_handler_reads(stem):
    assert checks.payload_problems(stem, DOCS[stem]) == []


def test_payload_check_catches_a_misspelt_key():
    doc = broken("validate_image")
    payload = step(doc, "SummarizeInspectorFindings")["inputs"]["InputPayload"]
    payload["SeverityTreshold"] = payload.pop("SeverityThreshold")
    assert checks.payload_problems("validate_image", doc) == [
        "validate_image: step SummarizeInspectorFindings passes SeverityTreshold, which handlers/inspector_summary.py never reads"
    ]


@pytest.mark.parametrize("stem", FACTORY)
def test_script_steps_only_delegate_to_an_existing_handler(stem):
    assert checks.script_problems(stem, DOCS[stem]) == []


def test_script_check_catches_inline_logic_a_missing_module_and_an_undefined_handler():
    doc = broken("approve_image")
    inputs = step(doc, "PublishImage")["inputs"]
    inputs["Script"] = inputs["Script"].replace("handlers.publish", "handlers.publsh") + "\n    x = 1\n    y = 2\n"
    inputs["Handler"] = "main"
    problems = checks.script_problems("approve_image", doc)
    assert len(problems) == 3, problems


def test_repository_copies_carry_no_attachment_digest_but_the_schema_accepts_one():
    assert all("files" not in d for d in DOCS.values())
    doc = broken("approve_image")
    doc["files"] = {"handlers.zip": {"checksums": {"sha256": "0" * 64}}}
    assert checks.schema_problems("approve_image", doc) == []
    doc["files"]["handlers.zip"]["checksums"]["sha256"] = "not-a-digest"
    assert checks.schema_problems("approve_image", doc) != []


def test_readme_documents_the_attachment_decision():
    text = (Path(checks.AUTOMATION) / "README.md").read_text()
    assert "handlers.zip" in text and "files:" in text and "attachments_sources" in text


@pytest.mark.parametrize("stem", FACTORY)
def test_document_as_the_build_stack_deploys_it_still_matches_the_schema(stem):
    import yaml

    from components.lib.automation_documents import deployed_content as document_content
    from components.lib.handler_package import Package

    package = Package(Path("handlers.zip"), "ab" * 32, ())
    deployed = yaml.safe_load(document_content((checks.AUTOMATION / f"{stem}.yaml").read_text(), package))
    assert checks.schema_problems(stem, deployed) == []
    uses_scripts = any(s["action"] == "aws:executeScript" for s in deployed["mainSteps"])
    assert ("files" in deployed) == uses_scripts
    if uses_scripts:
        assert deployed["files"] == {"handlers.zip": {"checksums": {"sha256": "ab" * 32}}}


@pytest.mark.parametrize("stem", FACTORY)
def test_no_document_offers_the_removed_copy_distribution(stem):
    # Copy mode could not work (no key in the accounts, a publisher that may not copy, guardrails that
    # refuse images the build account does not own) and was removed; the handler refuses its inputs.
    text = (checks.AUTOMATION / f"{stem}.yaml").read_text()
    params = DOCS[stem].get("parameters", {})
    assert not {"Mode", "AccountKmsKey", "DistributionMode"} & set(params)
    assert "AccountKmsKey" not in text and "{{ Mode }}" not in text and "DistributionMode" not in text
