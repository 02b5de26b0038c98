"""The runner's own semantics, on small documents, so a factory test failure points at a document."""

from __future__ import annotations

import pytest

from tests.e2e._actions import ApprovalDecision, CommandResult
from tests.e2e.runner import Runner, moto_server

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as url:
        yield url


def doc(*steps, parameters=None, outputs=None):
    return {"schemaVersion": "0.3", "parameters": parameters or {}, "outputs": outputs or [], "mainSteps": list(steps)}


def api(name, service, api_name, outputs=None, **extra):
    step = {"name": name, "action": "aws:executeAwsApi", "inputs": {"Service": service, "Api": api_name}}
    step["inputs"].update(extra.pop("inputs", {}))
    if outputs:
        step["outputs"] = outputs
    step.update(extra)
    return step


def test_references_resolve_parameters_outputs_and_variables_with_their_types(endpoint):
    document = doc(
        api(
            "MakeTopic",
            "sns",
            "CreateTopic",
            inputs={"Name": "t-{{ Suffix }}"},
            outputs=[{"Name": "Arn", "Selector": "$.TopicArn", "Type": "String"}],
        ),
        api(
            "Tag",
            "sns",
            "TagResource",
            inputs={
                "ResourceArn": "{{ MakeTopic.Arn }}",
                "Tags": [{"Key": "run", "Value": "{{ automation:EXECUTION_ID }}"}, {"Key": "count", "Value": "{{ Count }}"}],
            },
        ),
        parameters={"Suffix": {"type": "String"}, "Count": {"type": "Integer", "default": 3}},
        outputs=["MakeTopic.Arn"],
    )
    runner = Runner(endpoint, documents={"D": document})
    execution = runner.run("D", {"Suffix": "refs"})
    assert execution.status == "Success", execution.failure
    arn = execution.outputs["MakeTopic.Arn"]
    assert arn.endswith(":t-refs")
    tags = {t["Key"]: t["Value"] for t in runner.client("sns").list_tags_for_resource(ResourceArn=arn)["Tags"]}
    assert tags == {"run": execution.execution_id, "count": "3"}


def test_unknown_reference_fails_the_step_and_the_execution(endpoint):
    runner = Runner(endpoint, documents={"D": doc(api("A", "sns", "CreateTopic", inputs={"Name": "{{ Missing }}"}))})
    execution = runner.run("D", {})
    assert execution.status == "Failed"
    assert "Missing" in execution.step("A").error


def test_parameters_are_typed_checked_and_defaulted_before_any_step(endpoint):
    document = doc(
        api("A", "sns", "ListTopics"),
        parameters={"Env": {"type": "String", "allowedValues": ["dev", "prod"]}, "Flag": {"type": "Boolean", "default": False}},
    )
    runner = Runner(endpoint, documents={"D": document})
    bad = runner.run("D", {"Env": "qa", "Extra": "x"})
    assert bad.status == "Failed" and bad.steps == []
    assert "Env" in bad.failure and "Extra" in bad.failure
    good = runner.run("D", {"Env": "dev"})
    assert good.status == "Success" and good.parameters["Flag"] is False


def test_on_failure_step_runs_cleanup_and_the_execution_still_fails(endpoint):
    document = doc(
        api(
            "Break",
            "sns",
            "GetTopicAttributes",
            inputs={"TopicArn": "arn:aws:sns:eu-west-1:123456789012:none"},
            onFailure="step:Cleanup",
        ),
        api("Skipped", "sns", "ListTopics"),
        api("Cleanup", "sns", "ListTopics", isEnd=True),
    )
    execution = Runner(endpoint, documents={"D": document}).run("D", {})
    assert execution.step_names == ["Break", "Cleanup"]
    assert execution.status == "Failed" and "Break" in execution.failure


def test_non_critical_failure_follows_on_failure_without_failing_the_execution(endpoint):
    document = doc(
        {
            "name": "Check",
            "action": "aws:assertAwsResourceProperty",
            "isCritical": False,
            "onFailure": "step:Else",
            "nextStep": "Then",
            "inputs": {
                "Service": "sns",
                "Api": "ListTopics",
                "PropertySelector": "$.Topics[0].TopicArn",
                "DesiredValues": ["never"],
            },
        },
        api("Then", "sns", "ListTopics", isEnd=True),
        api("Else", "sns", "ListTopics", isEnd=True),
    )
    execution = Runner(endpoint, documents={"D": document}).run("D", {})
    assert execution.step_names == ["Check", "Else"]
    assert execution.status == "Success"


@pytest.mark.parametrize(
    ("flag", "env", "expected"),
    [
        (True, "dev", ["Choose", "Auto"]),
        (True, "prod", ["Choose", "Human"]),
        (False, "dev", ["Choose", "Human"]),
    ],
)
def test_branch_follows_the_first_choice_that_holds_else_default(endpoint, flag, env, expected):
    document = doc(
        {
            "name": "Choose",
            "action": "aws:branch",
            "inputs": {
                "Choices": [
                    {
                        "And": [
                            {"Variable": "{{ Flag }}", "BooleanEquals": True},
                            {"Variable": "{{ Env }}", "StringEquals": "dev"},
                        ],
                        "NextStep": "Auto",
                    }
                ],
                "Default": "Human",
            },
        },
        api("Human", "sns", "ListTopics", isEnd=True),
        api("Auto", "sns", "ListTopics", isEnd=True),
        parameters={"Flag": {"type": "Boolean"}, "Env": {"type": "String"}},
    )
    assert Runner(endpoint, documents={"D": document}).run("D", {"Flag": flag, "Env": env}).step_names == expected


def test_execute_automation_runs_the_child_and_passes_its_outputs(endpoint):
    child = doc(
        api(
            "Make",
            "sns",
            "CreateTopic",
            inputs={"Name": "{{ Name }}"},
            outputs=[{"Name": "Arn", "Selector": "$.TopicArn", "Type": "String"}],
        ),
        parameters={"Name": {"type": "String"}},
        outputs=["Make.Arn"],
    )
    parent = doc(
        {
            "name": "Child",
            "action": "aws:executeAutomation",
            "inputs": {"DocumentName": "Child", "RuntimeParameters": {"Name": "from-parent"}},
        },
        api("Read", "sns", "GetTopicAttributes", inputs={"TopicArn": "{{ Child.Output }}"}),
    )
    execution = Runner(endpoint, documents={"Child": child, "Parent": parent}).run("Parent", {})
    assert execution.status == "Success", execution.failure
    [kid] = execution.children
    assert kid.outputs["Make.Arn"].endswith(":from-parent")
    assert execution.step("Child").outputs["ExecutionId"] == kid.execution_id


def test_wait_polls_until_the_property_changes_and_fails_at_timeout(endpoint):
    runner = Runner(
        endpoint,
        documents={
            "D": doc(
                {
                    "name": "Wait",
                    "action": "aws:waitForAwsResourceProperty",
                    "timeoutSeconds": 5,
                    "inputs": {
                        "Service": "ssm",
                        "Api": "DescribeInstanceInformation",
                        "PropertySelector": "$.InstanceInformationList[0].PingStatus",
                        "DesiredValues": ["Online"],
                    },
                }
            )
        },
    )
    answers = iter([{"InstanceInformationList": []}] * 3 + [{"InstanceInformationList": [{"PingStatus": "Online"}]}])
    runner.api_fakes[("ssm", "DescribeInstanceInformation")] = lambda params: next(answers)
    assert runner.run("D", {}).status == "Success"
    assert runner.api_log.count("ssm", "DescribeInstanceInformation") == 4
    runner.max_wait = 0.1
    runner.api_fakes[("ssm", "DescribeInstanceInformation")] = lambda params: {"InstanceInformationList": []}
    assert runner.run("D", {}).status == "Failed"


def test_collaborators_and_extra_actions_plug_in_without_editing_the_runner(endpoint):
    topic = Runner(endpoint).client("sns").create_topic(Name="approvers")["TopicArn"]
    document = doc(
        {"name": "Ask", "action": "aws:approve", "inputs": {"NotificationArn": topic, "Approvers": ["me"]}},
        {
            "name": "Run",
            "action": "aws:runCommand",
            "inputs": {"DocumentName": "AWS-RunShellScript", "InstanceIds": [], "Parameters": {"commands": ["true"]}},
        },
        {"name": "Custom", "action": "test:echo", "inputs": {"Say": "{{ Run.Status }}"}},
    )
    seen = []
    runner = Runner(
        endpoint,
        documents={"D": document},
        approver=lambda request: seen.append(request) or ApprovalDecision(True),
        command_executor=lambda request, ctx: CommandResult("Success", "ok"),
    )
    runner.actions["test:echo"] = lambda ctx, inputs: {"Said": inputs["Say"]}
    execution = runner.run("D", {})
    assert execution.status == "Success", execution.failure
    assert seen[0].notification_arn == topic
    assert execution.step("Custom").outputs == {"Said": "Success"}
    rejecting = Runner(endpoint, documents={"D": document}, approver=lambda request: ApprovalDecision(False))
    assert rejecting.run("D", {}).step("Ask").status == "Failed"


def test_a_missing_target_or_a_loop_fails_the_execution_instead_of_hanging(endpoint):
    nowhere = doc(api("A", "sns", "ListTopics", nextStep="Gone"))
    loop = doc(api("A", "sns", "ListTopics", nextStep="B"), api("B", "sns", "ListTopics", nextStep="A"))
    runner = Runner(endpoint, documents={"Nowhere": nowhere, "Loop": loop})
    runner.max_steps = 20
    broken = runner.run("Nowhere", {})
    assert broken.status == "Failed" and "Gone" in broken.failure
    looping = runner.run("Loop", {})
    assert looping.status == "Failed" and "loops" in looping.failure
