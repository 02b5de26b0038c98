"""Incident response wiring in every workload stack: which events start the isolation playbook,
with what input, and what the playbook's role may do."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pulumi
import pytest
import yaml

from components.lib.automation_documents import HANDLERS_ATTACHMENT
from components.lib.providers import account_provider
from components.workload.incident_response import (
    AUTOMATION_ROLE,
    DOCUMENT_PATH,
    ISOLATE_DOCUMENT,
    IncidentResponse,
    IncidentResponseArgs,
)
from handlers.isolate import IsolateRequest
from tests.iam.evaluate import allowed
from tests.iam.event_patterns import event_matches
from tests.workload._incident_response_support import ACCOUNT, REGION, SECURITY, role_policy
from tools.mockrun import StackRun, run_program

EVIDENCE = f"bakehouse-evidence-{SECURITY}-{REGION}"
TOPIC = f"arn:aws:sns:{REGION}:{SECURITY}:bakehouse-security"
HANDLERS = Path(__file__).resolve().parents[2] / "handlers"
# boto3 client name -> IAM service prefix, and the odd calls whose action is not their PascalCase name
IAM_PREFIX = {"elbv2": "elasticloadbalancing"}
ACTION_OF = {
    "s3.head_object": "s3:GetObject",
    "s3.list_objects_v2": "s3:ListBucket",
    "elbv2.describe_target_groups": "elasticloadbalancing:DescribeTargetGroups",
}


def _finding(severity: float, resource_type: str = "Instance") -> dict:
    return {
        "source": "aws.guardduty",
        "detail-type": "GuardDuty Finding",
        "id": "evt-1",
        "detail": {
            "id": "f0c1a2b3",
            "severity": severity,
            "type": "Backdoor:EC2/C&CActivity.B",
            "resource": {"resourceType": resource_type, "instanceDetails": {"instanceId": "i-0123456789abcdef0"}},
        },
    }


def _rule(run: StackRun, suffix: str):
    [rule] = [r for r in run.of_type("aws:cloudwatch/eventRule:EventRule") if r.name.endswith(suffix)]
    [target] = [t for t in run.of_type("aws:cloudwatch/eventTarget:EventTarget") if t.inputs.get("rule") == rule.inputs["name"]]
    return rule, target


def _render(template: str, values: dict[str, str]) -> dict:
    """What EventBridge sends: each <placeholder> replaced by the value its input path selected."""
    return json.loads(re.sub(r"<(\w+)>", lambda m: values[m.group(1)], template))


def test_guardduty_ec2_findings_at_or_above_the_configured_severity_start_isolation(stack_run):
    prod_rule, _ = _rule(stack_run("prod"), "-guardduty-ec2")  # prod: minSeverity 7
    dev_rule, _ = _rule(stack_run("dev"), "-guardduty-ec2")  # dev: minSeverity 5
    assert event_matches(prod_rule.inputs["eventPattern"], _finding(8.0))
    assert event_matches(prod_rule.inputs["eventPattern"], _finding(7.0))
    assert not event_matches(prod_rule.inputs["eventPattern"], _finding(5.0))
    assert event_matches(dev_rule.inputs["eventPattern"], _finding(5.0))
    assert not event_matches(prod_rule.inputs["eventPattern"], _finding(8.0, resource_type="S3Bucket"))
    assert not event_matches(prod_rule.inputs["eventPattern"], {**_finding(8.0), "source": "bakehouse.fake"})


def test_manual_isolate_event_starts_isolation(stack_run):
    rule, _ = _rule(stack_run("uat"), "-manual-isolate")
    event = {
        "source": "bakehouse.incident",
        "detail-type": "Isolate instance",
        "id": "e-1",
        "detail": {"instanceId": "i-0123456789abcdef0"},
    }
    assert event_matches(rule.inputs["eventPattern"], event)
    assert not event_matches(rule.inputs["eventPattern"], {**event, "source": "aws.ec2"})


@pytest.mark.parametrize(
    "suffix, values",
    [
        ("-guardduty-ec2", {"instance": "i-0123456789abcdef0", "finding": "f0c1a2b3d4"}),
        ("-manual-isolate", {"instance": "i-0123456789abcdef0", "event": "6a7e8f2c-1d3b-4c5e-9f0a-123456789abc"}),
    ],
)
def test_isolation_target_hands_the_playbook_a_request_its_handler_accepts(suffix, values, stack_run):
    run = stack_run("prod")
    _, target = _rule(run, suffix)
    assert target.inputs["arn"] == f"arn:aws:ssm:{REGION}:{ACCOUNT}:automation-definition/{ISOLATE_DOCUMENT}:$DEFAULT"
    params = _render(target.inputs["inputTransformer"]["inputTemplate"], values)
    assert params["AutomationAssumeRole"] == [f"arn:aws:iam::{ACCOUNT}:role/{AUTOMATION_ROLE}"]
    request = IsolateRequest.parse({k: v[0] for k, v in params.items() if k != "AutomationAssumeRole"})
    assert request.instance_id == values["instance"]
    assert request.evidence_bucket == EVIDENCE and request.topic_arn == TOPIC


def test_isolation_target_names_only_parameters_the_document_declares(stack_run):
    if not DOCUMENT_PATH.is_file():
        pytest.skip(f"{DOCUMENT_PATH.name} not written yet (operations); the handler test above covers the shape")
    declared = yaml.safe_load(DOCUMENT_PATH.read_text())["parameters"]
    required = {k for k, v in declared.items() if "default" not in v}
    for suffix in ("-guardduty-ec2", "-manual-isolate"):
        _, target = _rule(stack_run("dev"), suffix)
        given = set(json.loads(re.sub(r"<\w+>", "x", target.inputs["inputTransformer"]["inputTemplate"])))
        assert given <= set(declared), given - set(declared)
        assert required <= given, required - given


def test_events_role_may_start_only_the_isolation_automation_and_pass_only_its_role(stack_run):
    run = stack_run("dev")
    policy = role_policy(run, "dev-incident-response-events-role")
    definition = f"arn:aws:ssm:{REGION}:444444444444:automation-definition"
    role = f"arn:aws:iam::444444444444:role/{AUTOMATION_ROLE}"
    assert allowed(policy, "ssm:StartAutomationExecution", f"{definition}/{ISOLATE_DOCUMENT}:$DEFAULT")
    assert not allowed(policy, "ssm:StartAutomationExecution", f"{definition}/AWS-RunShellScript:$DEFAULT")
    assert allowed(policy, "iam:PassRole", role, {"iam:PassedToService": "ssm.amazonaws.com"})
    assert not allowed(policy, "iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"})
    assert not allowed(
        policy, "iam:PassRole", "arn:aws:iam::444444444444:role/BakehouseBreakGlass", {"iam:PassedToService": "ssm.amazonaws.com"}
    )


def _playbook_actions() -> set[str]:
    """Every AWS call the playbook's handler modules (handlers/isolate*.py) make, as IAM actions."""
    source = "\n".join(p.read_text() for p in sorted(HANDLERS.glob("isolate*.py")))
    calls = set(re.findall(r"\b(ec2|autoscaling|elbv2|ssm|iam|s3|sns)\.(?!get_paginator)([a-z0-9_]+)\(", source))
    calls |= set(re.findall(r"\b(ec2|autoscaling|elbv2|ssm|iam|s3|sns)\.get_paginator\(\"([a-z0-9_]+)\"\)", source))
    actions = set()
    for client, method in calls:
        name = f"{client}.{method}"
        actions.add(
            ACTION_OF.get(name) or f"{IAM_PREFIX.get(client, client)}:{''.join(p.capitalize() for p in method.split('_'))}"
        )
    return actions


# What SSM calls as the automation role for the document's built-in actions.
BUILTIN_ACTION_CALLS = {"aws:changeInstanceState": {"ec2:StopInstances", "ec2:DescribeInstanceStatus"}}


def _document_actions() -> set[str]:
    """IAM actions of the document's steps that are not handler scripts (none while it is absent)."""
    if not DOCUMENT_PATH.is_file():
        return set()
    actions = set()
    for step in yaml.safe_load(DOCUMENT_PATH.read_text())["mainSteps"]:
        if step["action"] == "aws:executeAwsApi":
            actions.add(f"{step['inputs']['Service']}:{step['inputs']['Api']}")
        elif step["action"] != "aws:executeScript":
            assert step["action"] in BUILTIN_ACTION_CALLS, f"add the calls of {step['action']} to this test"
            actions |= BUILTIN_ACTION_CALLS[step["action"]]
    return actions


def test_automation_role_allows_every_call_the_playbook_makes(stack_run):
    doc = json.loads(role_policy(stack_run("prod"), "prod-incident-response-automation-role"))
    granted = {a for s in doc["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}
    actions = _playbook_actions() | _document_actions()
    assert len(actions) >= 20, actions  # the parse found the playbook's calls
    assert actions <= granted, f"the playbook calls what its role may not: {sorted(actions - granted)}"


def test_automation_role_is_scoped_to_app_roles_evidence_and_the_security_topic(stack_run):
    policy = role_policy(stack_run("prod"), "prod-incident-response-automation-role")
    iam = f"arn:aws:iam::{ACCOUNT}:role"
    assert allowed(policy, "iam:PutRolePolicy", f"{iam}/bakehouse/app/bakehouse-prod-app")
    for role in ("BakehouseBreakGlass", "BakehouseDeploy", AUTOMATION_ROLE):
        assert not allowed(policy, "iam:PutRolePolicy", f"{iam}/{role}"), role
    assert allowed(policy, "s3:PutObject", f"arn:aws:s3:::{EVIDENCE}/incidents/f1/i-0123456789abcdef0/state.json")
    assert not allowed(policy, "s3:PutObject", f"arn:aws:s3:::{EVIDENCE}/elsewhere/x")
    assert not allowed(policy, "s3:PutObject", "arn:aws:s3:::some-other-bucket/incidents/x")
    assert not allowed(policy, "s3:DeleteObject", f"arn:aws:s3:::{EVIDENCE}/incidents/x")
    assert allowed(policy, "sns:Publish", TOPIC)
    assert not allowed(policy, "sns:Publish", f"arn:aws:sns:{REGION}:{ACCOUNT}:anything")
    assert not allowed(policy, "ec2:TerminateInstances", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-1")
    assert not allowed(
        policy,
        "ec2:RevokeSecurityGroupIngress",
        f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-1",
        {"aws:ResourceTag/bakehouse:purpose": "app"},
    )
    assert allowed(
        policy, "ec2:CreateSnapshot", f"arn:aws:ec2:{REGION}::snapshot/*", {"aws:RequestTag/bakehouse:finding-id": "f1"}
    )
    assert not allowed(policy, "ec2:CreateSnapshot", f"arn:aws:ec2:{REGION}::snapshot/*")
    assert allowed(
        policy,
        "kms:GenerateDataKey",
        f"arn:aws:kms:{REGION}:{SECURITY}:key/k",
        {"kms:ResourceAliases": ["alias/bakehouse-evidence"]},
    )
    assert not allowed(
        policy,
        "kms:GenerateDataKey",
        f"arn:aws:kms:{REGION}:{SECURITY}:key/k",
        {"kms:ResourceAliases": ["alias/bakehouse-trail"]},
    )


# --- the component alone: how the document is deployed ---------------------------------------------
def _alone(document_path: Path) -> StackRun:
    def program():
        provider = account_provider(
            "unit-account",
            account_id=ACCOUNT,
            region=REGION,
            role_arn=f"arn:aws:iam::{ACCOUNT}:role/BakehouseDeploy",
            tags={},
            session_name="u",
        )
        IncidentResponse(
            "ir",
            IncidentResponseArgs(
                account_id=ACCOUNT,
                region=REGION,
                home_region=REGION,
                security_account_id=SECURITY,
                min_severity=7.0,
                evidence_bucket=EVIDENCE,
                security_topic_arn=TOPIC,
                kms_key_arn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k",
                access_log_bucket="access-logs",
                document_path=document_path,
            ),
            opts=pulumi.ResourceOptions(provider=provider),
        )

    return run_program(program)


def test_missing_document_is_reported_and_the_rules_still_wait_for_it(tmp_path):
    run = _alone(tmp_path / "isolate_instance.yaml")
    assert not run.of_type("aws:ssm/document:Document")
    assert any("isolate_instance.yaml not found" in line for line in run.logs)
    assert len(run.of_type("aws:cloudwatch/eventTarget:EventTarget")) == 2
    # The attachment is staged anyway, so the document's arrival changes no resource type (dev/uat/prod parity).
    assert len(run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")) == 1


def test_document_with_handler_steps_is_deployed_with_the_handlers_attachment(tmp_path):
    path = tmp_path / "isolate_instance.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "schemaVersion": "0.3",
                "assumeRole": "{{ AutomationAssumeRole }}",
                "parameters": {"AutomationAssumeRole": {"type": "String"}, "InstanceId": {"type": "String"}},
                "mainSteps": [
                    {
                        "name": "Isolate",
                        "action": "aws:executeScript",
                        "inputs": {
                            "Runtime": "python3.11",
                            "Handler": "run",
                            "Attachment": HANDLERS_ATTACHMENT,
                            "Script": "from handlers.isolate import handler\n\ndef run(e, c):\n    return handler(e, c)\n",
                        },
                    }
                ],
            }
        )
    )
    run = _alone(path)
    [doc] = run.of_type("aws:ssm/document:Document")
    assert doc.inputs["name"] == ISOLATE_DOCUMENT and doc.inputs["documentType"] == "Automation"
    content = yaml.safe_load(doc.inputs["content"])
    sha = content["files"][HANDLERS_ATTACHMENT]["checksums"]["sha256"]
    [upload] = run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    assert upload.inputs["sourceHash"] == sha and sha in upload.inputs["key"]
    [source] = doc.inputs["attachmentsSources"]
    assert source["name"] == HANDLERS_ATTACHMENT and source["values"][0].endswith(upload.inputs["key"])


def test_document_without_handler_steps_is_deployed_unchanged(tmp_path):
    path = tmp_path / "isolate_instance.yaml"
    text = "schemaVersion: '0.3'\nmainSteps:\n  - name: Wait\n    action: aws:sleep\n    inputs: {Duration: PT1S}\n"
    path.write_text(text)
    [doc] = _alone(path).of_type("aws:ssm/document:Document")
    assert doc.inputs["content"] == text and "attachmentsSources" not in doc.inputs
