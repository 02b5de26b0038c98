"""The image factory as declared: its documents, handler code, topics, pipeline notifications and image keys."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
import yaml

from components.build.image_factory import (
    AUTOMATION_DIR,
    WORKLOAD_DOCUMENTS,
    deployment_order,
    factory_documents,
)
from components.build.packer_pipeline import PACKER_PIPELINE_FAILED_RULE
from components.lib.automation_documents import HANDLERS_ATTACHMENT
from components.lib.automation_documents import deployed_content as document_content
from components.lib.handler_package import handler_sources, package
from estate.naming import automation_document_name
from tests.iam.evaluate import allowed
from tests.iam.event_patterns import event_matches
from tools.mockrun import PROJECT_DIR

BUILD, REGIONS = "333333333333", ("eu-central-1", "us-east-1")
WORKLOADS = ("444444444444", "555555555555", "666666666666")
FACTORY_KEY = f"arn:aws:kms:eu-west-1:{BUILD}:key/build-factory-key-key"


def factory_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(AUTOMATION_DIR.glob("*.yaml")) if p.stem not in WORKLOAD_DOCUMENTS}


def uses_attachment(path: Path) -> bool:
    doc = yaml.safe_load(path.read_text())
    return any((s.get("inputs") or {}).get("Attachment") == HANDLERS_ATTACHMENT for s in doc.get("mainSteps", []))


def handlers_object(run):
    (obj,) = [o for o in run.of_type("aws:s3/bucketObjectv2:BucketObjectv2") if o.name == "build-factory-handlers"]
    return obj


def for_principal(policy: str, principal: str) -> dict:
    """The statements of a resource policy that name the principal (the evaluator does not read Principal)."""
    doc = json.loads(policy)
    keep = [
        s
        for s in doc["Statement"]
        if principal in (lambda p: p if isinstance(p, list) else [p])((s.get("Principal") or {}).get("AWS", []))
    ]
    return {"Version": doc["Version"], "Statement": keep}


def test_every_factory_document_deploys_as_an_automation_yaml_document(stack_run):
    run = stack_run("build")
    files = factory_files()
    assert files, "no automation/*.yaml to deploy"
    docs = {d.inputs["name"]: d.inputs for d in run.of_type("aws:ssm/document:Document")}
    assert set(docs) == {automation_document_name(stem) for stem in files}
    for stem, path in files.items():
        doc = docs[automation_document_name(stem)]
        assert (doc["documentType"], doc["documentFormat"]) == ("Automation", "YAML")
        deployed = yaml.safe_load(doc["content"])
        deployed.pop("files", None)
        assert deployed == yaml.safe_load(path.read_text()), f"{stem} deployed differently from its file"


def test_workload_documents_are_not_deployed_in_the_build_account(tmp_path):
    for stem in ("build_image", "isolate_instance", "new_thing"):
        (tmp_path / f"{stem}.yaml").write_text("schemaVersion: '0.3'\nmainSteps: []\n")
    assert set(factory_documents(tmp_path)) == {"build_image", "new_thing"}


def test_documents_with_script_steps_carry_the_handlers_zip_and_its_checksum(stack_run):
    run = stack_run("build")
    obj = handlers_object(run)
    zip_path = Path(obj.inputs["source"].path)
    digest = hashlib.sha256(zip_path.read_bytes()).hexdigest()
    assert digest[:16] in obj.inputs["key"]
    assert obj.inputs["serverSideEncryption"] == "aws:kms"
    url = f"s3://{obj.inputs['bucket']}/{obj.inputs['key']}"
    attaching = [stem for stem, path in factory_files().items() if uses_attachment(path)]
    assert attaching, "no document uses the handlers attachment"
    for stem, path in factory_files().items():
        doc = run.named(f"build-factory-doc-{stem}").inputs
        if stem in attaching:
            assert yaml.safe_load(doc["content"])["files"] == {HANDLERS_ATTACHMENT: {"checksums": {"sha256": digest}}}
            assert doc["attachmentsSources"] == [{"key": "S3FileUrl", "values": [url], "name": HANDLERS_ATTACHMENT}]
        else:
            assert doc["content"] == path.read_text() and not doc.get("attachmentsSources")


def test_handlers_zip_is_byte_for_byte_reproducible_and_holds_the_whole_package(tmp_path):
    members = handler_sources(PROJECT_DIR)
    first = package(PROJECT_DIR, members, "handlers", tmp_path / "a")
    second = package(PROJECT_DIR, members, "handlers", tmp_path / "b")
    assert first.path.read_bytes() == second.path.read_bytes() and first.sha256 == second.sha256
    names = zipfile.ZipFile(first.path).namelist()
    assert {"handlers/__init__.py", "handlers/common.py"} <= set(names)
    assert set(names) == {str(p.relative_to(PROJECT_DIR)) for p in (PROJECT_DIR / "handlers").glob("*.py")}


def test_a_changed_handler_changes_the_checksum_the_documents_declare(tmp_path):
    (tmp_path / "handlers").mkdir()
    (tmp_path / "handlers" / "x.py").write_text("A = 1\n")
    before = package(tmp_path, ["handlers/x.py"], "h", tmp_path / "out")
    (tmp_path / "handlers" / "x.py").write_text("A = 2\n")
    after = package(tmp_path, ["handlers/x.py"], "h", tmp_path / "out")
    text = "schemaVersion: '0.3'\nmainSteps:\n- name: s\n  action: aws:executeScript\n  inputs: {Attachment: handlers.zip}\n"
    assert before.sha256 != after.sha256 and before.path != after.path
    assert yaml.safe_load(document_content(text, after))["files"][HANDLERS_ATTACHMENT]["checksums"]["sha256"] == after.sha256


def test_pipeline_deploys_after_every_document_it_calls():
    texts = {stem: path.read_text() for stem, path in factory_files().items()}
    order = deployment_order(texts)
    assert sorted(order) == sorted(texts)
    for stem, text in texts.items():
        for other in texts:
            if other != stem and automation_document_name(other) in text:
                assert order.index(other) < order.index(stem), f"{stem} calls {other}"
    if "pipeline" in texts:
        assert order.index("pipeline") > order.index("build_image")


def test_documents_calling_each_other_in_a_cycle_are_refused():
    with pytest.raises(ValueError, match="cycle: a_doc, b_doc"):
        deployment_order({"a_doc": "calls Bakehouse-BDoc", "b_doc": "calls Bakehouse-ADoc"})


def test_factory_topics_are_encrypted_with_the_factory_key(stack_run):
    topics = {t.inputs["name"]: t.inputs for t in stack_run("build").of_type("aws:sns/topic:Topic")}
    factory = {"bakehouse-image-approvers", "bakehouse-factory-notifications"}
    assert factory <= set(topics)
    assert all(topics[t]["kmsMasterKeyId"] == FACTORY_KEY for t in factory)
    # the Packer engine's twin-scan topic has the engine's own key (components/build/packer_pipeline.py)
    assert all(t.get("kmsMasterKeyId") for t in topics.values())


def test_every_bakehouse_automation_that_fails_notifies_the_topic_and_only_that_rule_may_publish(stack_run):
    run = stack_run("build")
    (rule,) = [r for r in run.of_type("aws:cloudwatch/eventRule:EventRule") if r.inputs["name"] == "bakehouse-automation-failed"]
    pattern = rule.inputs["eventPattern"]

    def event(definition, status):
        return {
            "source": "aws.ssm",
            "detail-type": "EC2 Automation Execution Status-change Notification",
            "detail": {"Definition": definition, "Status": status},
        }

    for definition in ("Bakehouse-Pipeline", "Bakehouse-BuildImage", "Bakehouse-RescanImages"):
        for status in ("Failed", "TimedOut", "Cancelled"):
            assert event_matches(pattern, event(definition, status)), (definition, status)
    # success is announced by the Pipeline itself (with the AMI id), not twice
    assert not event_matches(pattern, event("Bakehouse-Pipeline", "Success"))
    assert not event_matches(pattern, event("Bakehouse-Pipeline", "InProgress"))
    assert not event_matches(pattern, event("SomeoneElsesRunbook", "Failed"))

    (target,) = [t for t in run.of_type("aws:cloudwatch/eventTarget:EventTarget") if t.inputs["rule"] == rule.inputs["name"]]
    topic_arn = target.inputs["arn"]
    assert topic_arn.endswith("build-factory-notifications")
    (policy,) = [p for p in run.of_type("aws:sns/topicPolicy:TopicPolicy") if p.inputs["arn"] == topic_arn]
    doc = json.loads(policy.inputs["policy"])
    (events,) = [s for s in doc["Statement"] if s["Principal"] == {"Service": "events.amazonaws.com"}]
    (rule_arns,) = events["Condition"]["ArnEquals"].values()
    rule_arn, *packer_rules = rule_arns
    assert rule_arn.endswith(f"/{rule.name}")  # the rule's own ARN (as the mocks shape it)
    # and the Packer engine's failed runs (the shipped config builds one family with Packer)
    assert packer_rules == [f"arn:aws:events:eu-west-1:{BUILD}:rule/{PACKER_PIPELINE_FAILED_RULE}"]
    only_events = {"Version": doc["Version"], "Statement": [events]}
    assert allowed(only_events, "sns:Publish", topic_arn, {"aws:SourceArn": rule_arn})
    assert allowed(only_events, "sns:Publish", topic_arn, {"aws:SourceArn": packer_rules[0]})
    assert not allowed(only_events, "sns:Publish", topic_arn, {"aws:SourceArn": f"arn:aws:events:eu-west-1:{BUILD}:rule/other"})
    # the factory's alarms publish too, as CloudWatch, from this account's bakehouse-* alarms only
    (alarms,) = [s for s in doc["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    only_alarms = {"Version": doc["Version"], "Statement": [alarms]}
    alarm = f"arn:aws:cloudwatch:eu-west-1:{BUILD}:alarm:bakehouse-image-lifecycle-failed"
    assert allowed(only_alarms, "sns:Publish", topic_arn, {"aws:SourceArn": alarm, "aws:SourceAccount": BUILD})
    assert not allowed(
        only_alarms,
        "sns:Publish",
        topic_arn,
        {"aws:SourceArn": alarm.replace(BUILD, "999999999999"), "aws:SourceAccount": "999999999999"},
    )


def for_service(policy: str, service: str) -> dict:
    doc = json.loads(policy)
    return {
        "Version": doc["Version"],
        "Statement": [s for s in doc["Statement"] if (s.get("Principal") or {}).get("Service") == service],
    }


def test_cloudwatch_alarms_may_encrypt_to_the_factory_topics_only_for_this_account(stack_run):
    # An alarm action on a KMS-encrypted topic needs the key to admit cloudwatch.amazonaws.com
    # (Amazon SNS developer guide, "Enable compatibility between event sources from AWS services and
    # encrypted topics"); without it the dead-letter alarms deploy and deliver nothing.
    cloudwatch = for_service(stack_run("build").named("build-factory-key-key").inputs["policy"], "cloudwatch.amazonaws.com")
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert allowed(cloudwatch, action, "*", {"aws:SourceAccount": BUILD})
        assert not allowed(cloudwatch, action, "*", {"aws:SourceAccount": "999999999999"})
    assert not allowed(cloudwatch, "kms:Encrypt", "*", {"aws:SourceAccount": BUILD})
    assert not allowed(cloudwatch, "kms:CreateGrant", "*", {"aws:SourceAccount": BUILD})


def test_each_distribution_region_gets_its_own_image_key_through_a_provider_pinned_there(stack_run):
    run = stack_run("build")
    providers = {p.name: p.inputs for p in run.resources if p.is_provider}
    stack_tags = providers["build-account"]["defaultTags"]["tags"]
    for region in REGIONS:
        key = run.named(f"build-images-{region}-key")
        provider = providers[key.provider_name]
        assert provider["region"] == region
        assert provider["allowedAccountIds"] == [BUILD]
        assert provider["defaultTags"]["tags"] == stack_tags
        assert key.inputs["enableKeyRotation"] is True
        alias = run.named(f"build-images-{region}-alias")
        assert alias.provider_name == key.provider_name and alias.inputs["name"] == "alias/bakehouse-images"


@pytest.mark.parametrize(
    "key_name, region", [("build-factory-key-key", "eu-west-1"), *((f"build-images-{r}-key", r) for r in REGIONS)]
)
def test_workload_accounts_may_use_image_keys_only_through_ec2_in_that_region(stack_run, key_name, region):
    policy = stack_run("build").named(key_name).inputs["policy"]
    # named by OU (Pulumi.build.yaml's workloadOus), the one place AWS puts each account in the organization
    doc = json.loads(policy)
    theirs = {"Version": doc["Version"], "Statement": [s for s in doc["Statement"] if s.get("Principal") == {"AWS": "*"}]}
    for account in WORKLOADS:
        via_ec2 = {
            "kms:ViaService": f"ec2.{region}.amazonaws.com",
            "aws:PrincipalAccount": account,
            "aws:PrincipalOrgID": "o-exampleorg01",
            "aws:PrincipalOrgPaths": ["o-exampleorg01/r-exam/ou-ab12-wkld0001/"],
        }
        assert allowed(theirs, "kms:Decrypt", "*", via_ec2)
        assert allowed(theirs, "kms:CreateGrant", "*", via_ec2 | {"kms:GrantIsForAWSResource": "true"})
        assert not allowed(theirs, "kms:CreateGrant", "*", via_ec2 | {"kms:GrantIsForAWSResource": "false"})
        assert not allowed(theirs, "kms:Decrypt", "*", via_ec2 | {"kms:ViaService": f"s3.{region}.amazonaws.com"})
        assert not allowed(theirs, "kms:Decrypt", "*", via_ec2 | {"kms:ViaService": "ec2.ap-south-1.amazonaws.com"})
        assert not allowed(theirs, "kms:Encrypt", "*", via_ec2)
        assert not allowed(theirs, "kms:PutKeyPolicy", "*", via_ec2)
    assert for_principal(policy, "arn:aws:iam::999999999999:root")["Statement"] == []
    outside = {"kms:ViaService": f"ec2.{region}.amazonaws.com", "aws:PrincipalAccount": "999999999999"}
    assert not allowed(
        theirs,
        "kms:Decrypt",
        "*",
        outside | {"aws:PrincipalOrgID": "o-other0000001", "aws:PrincipalOrgPaths": ["o-other0000001/r-exam/ou-ab12-wkld0001/"]},
    )
    assert not allowed(
        theirs,
        "kms:Decrypt",
        "*",
        outside | {"aws:PrincipalOrgID": "o-exampleorg01", "aws:PrincipalOrgPaths": ["o-exampleorg01/r-exam/ou-ab12-core0001/"]},
    )


def test_settings_parameter_carries_the_validated_factory_config(stack_run):
    (param,) = [
        p for p in stack_run("build").of_type("aws:ssm/parameter:Parameter") if p.inputs["name"] == "/bakehouse/factory/settings"
    ]
    value = param.inputs["value"]
    if isinstance(value, dict):  # pulumi-aws marks a parameter's value secret; the engine wraps it
        value = value["value"]
    settings = json.loads(value)
    assert settings["families"] == {"al2023": "al2023", "ubuntu2404": "ubuntu2404"}
    assert settings["regions"] == list(REGIONS)
    assert settings["autoApproveEnvs"] == ["dev"] and settings["severityThreshold"] == "HIGH"
    assert "targetAccounts" not in settings  # one parameter per env under /bakehouse/factory/targets
    assert settings["pipelineParameters"]["InstanceProfileName"] == "BakehouseBuildInstance"
    # dev, uat and prod are targets: one image serves all, so prod's rule (a human) decides
    assert settings["approval"]["environment"] == "prod" and settings["approval"]["autoApprove"] is False
    assert settings["approval"]["approvers"] == [f"arn:aws:iam::{BUILD}:role/BakehouseImageApprover"]
    assert settings["approval"]["topicArn"].endswith("build-factory-approvers")


def test_image_registry_parameters_are_left_to_the_handlers(stack_run):
    names = [p.inputs["name"] for p in stack_run("build").of_type("aws:ssm/parameter:Parameter")]
    assert not [n for n in names if n.startswith("/bakehouse/images/")]


def test_build_instances_get_a_profile_with_ssm_core(stack_run):
    run = stack_run("build")
    (profile,) = run.of_type("aws:iam/instanceProfile:InstanceProfile")
    assert profile.inputs["role"] == "BakehouseBuildInstance"
    (attachment,) = [
        a
        for a in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == "BakehouseBuildInstance"
    ]
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"


def test_settings_hand_the_pipeline_only_parameters_it_declares(stack_run):
    (param,) = [
        p for p in stack_run("build").of_type("aws:ssm/parameter:Parameter") if p.inputs["name"] == "/bakehouse/factory/settings"
    ]
    params = json.loads(param.inputs["value"]["value"])["pipelineParameters"]
    declared = yaml.safe_load((AUTOMATION_DIR / "pipeline.yaml").read_text())["parameters"]
    assert set(params) <= set(declared), set(params) - set(declared)
    assert params["Regions"] == {
        "eu-west-1": f"arn:aws:kms:eu-west-1:{BUILD}:key/build-factory-key-key",
        **{r: f"arn:aws:kms:{r}:{BUILD}:key/build-images-{r}-key" for r in REGIONS},
    }
    # who approves and whether a human must come from the settings' approval object, never the caller
    assert not {"ApprovalEnvironment", "AutoApprove", "Approvers", "ApproversTopicArn"} & set(params)
    assert "Accounts" not in params, "the documents default to every env under /bakehouse/factory/targets"
    assert params["FindingsBucket"] == f"bakehouse-findings-{BUILD}-eu-west-1"
    assert params["AutomationAssumeRole"] == f"arn:aws:iam::{BUILD}:role/BakehouseFactoryAutomation"


def test_deployer_uses_the_factory_key_only_through_the_services_it_deploys(stack_run):
    policy = stack_run("build").named("build-factory-key-key").inputs["policy"]
    deployer = for_principal(policy, f"arn:aws:iam::{BUILD}:role/BakehouseDeploy")
    for service in ("network-firewall", "lambda", "scheduler"):
        assert allowed(deployer, "kms:CreateGrant", "*", {"kms:ViaService": f"{service}.eu-west-1.amazonaws.com"})
    assert not allowed(deployer, "kms:Decrypt", "*", {})
    assert not allowed(deployer, "kms:Decrypt", "*", {"kms:ViaService": "s3.eu-west-1.amazonaws.com"})
    assert allowed(deployer, "kms:ScheduleKeyDeletion", "*")  # administers, as every key's deployer does
