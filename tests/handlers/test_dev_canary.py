"""handlers.dev_canary against moto: the candidate launched once in dev from the app template, its health
judged and recorded on the image, and everything it launched removed on every path."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from handlers import dev_canary as canary
from handlers.common import MalformedEvent, tags_to_dict
from tests.fakes.seed import FAST_EC2_ENV, golden_ami
from tests.handlers._sessions import fast_default_session

HOME = "eu-west-1"
BUILD, DEV, PROD = "123456789012", "111111111111", "222222222222"
EXECUTION = "0a1b2c3d-1111-4222-8333-444455556666"


class PingingClients(canary.AwsClients):
    """The handler's own clients over moto; moto has no DescribeInstanceInformation, so the canary
    account's SSM client answers it with `ping` for every instance (None: the agent never registered)."""

    def __init__(self, ping: str | None = "Online"):
        super().__init__(HOME, canary.PUBLISHER_ROLE)
        self.ping = ping
        self.assumed: list[str] = []

    def canary(self, account_id: str, service: str) -> Any:
        self.assumed.append(account_id)
        inner = super().canary(account_id, service)
        if service != "ssm":
            return inner
        ping = self.ping

        class Ssm:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def describe_instance_information(self, Filters: list[dict]) -> dict:  # noqa: N803 - boto3's name
                ids = [v for f in Filters if f["Key"] == "InstanceIds" for v in f["Values"]]
                return {"InstanceInformationList": [{"InstanceId": i, "PingStatus": ping} for i in ids if ping]}

        return Ssm()


def in_account(account: str, service: str):
    creds = boto3.client("sts", region_name=HOME).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/Seed", RoleSessionName="seed"
    )["Credentials"]
    return boto3.client(
        service,
        region_name=HOME,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def seed_dev(account: str = DEV, env: str = "dev") -> dict[str, str]:
    """What the workload stack declares in dev: a private subnet and the app launch template (IMDSv2)."""
    ec2 = in_account(account, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.16.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(
        VpcId=vpc,
        CidrBlock="10.16.0.0/24",
        TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "bakehouse:tier", "Value": "private"}]}],
    )["Subnet"]["SubnetId"]
    ec2.create_subnet(VpcId=vpc, CidrBlock="10.16.1.0/24")  # untagged: never the canary's
    sg = ec2.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    template = ec2.create_launch_template(
        LaunchTemplateName=f"bakehouse-{env}-app",
        LaunchTemplateData={
            "ImageId": "resolve:ssm:/bakehouse/dev/ami/al2023",
            "InstanceType": "t3.micro",
            "SecurityGroupIds": [sg],
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
        },
    )
    return {"subnet": subnet, "template": template["LaunchTemplate"]["LaunchTemplateId"]}


def write_settings(targets: dict[str, str] | None = None, **settings: Any) -> None:
    """The settings parameter and the target parameters, as the build stack writes them."""
    ssm = boto3.client("ssm", region_name=HOME)
    ssm.put_parameter(Name=canary.SETTINGS_PARAMETER, Type="String", Overwrite=True, Value=json.dumps(settings))
    for old in ssm.get_parameters_by_path(Path=canary.TARGETS_PATH)["Parameters"]:
        ssm.delete_parameter(Name=old["Name"])
    for env, account in (targets or {"dev": DEV, "prod": PROD}).items():
        ssm.put_parameter(Name=f"{canary.TARGETS_PATH}/{env}", Type="String", Value=account)


@pytest.fixture
def aws(monkeypatch):
    for k, v in FAST_EC2_ENV.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        fast_default_session(HOME)
        image = golden_ami(boto3.client("ec2", region_name=HOME), tags={"bakehouse:family": "al2023"})
        write_settings()
        yield {"image": image, **seed_dev()}


def event(action: str, image: str, **more: Any) -> dict[str, Any]:
    return {
        "Action": action,
        "ImageId": image,
        "Family": "al2023",
        "ExecutionId": EXECUTION,
        "Region": HOME,
        "WaitSeconds": 0,
        **more,
    }


def run(action: str, image: str, clients: canary.AwsClients | None = None, **more: Any) -> dict[str, Any]:
    request = canary.CanaryRequest.parse(event(action, image, **more))
    clients = clients or PingingClients()
    ssm = clients.home("ssm")
    target = canary.canary_target(canary.read_settings(ssm), canary.read_targets(ssm))
    if action == "Start":
        return canary.start(request, target, clients)
    if action == "Check":
        return canary.check(request, target, clients, sleep=lambda s: None)
    return canary.terminate(request, target, clients)


def dev_instances(states=("pending", "running")) -> list[dict]:
    found = in_account(DEV, "ec2").describe_instances(Filters=[{"Name": "instance-state-name", "Values": list(states)}])[
        "Reservations"
    ]
    return [i for r in found for i in r["Instances"]]


# --- Start ---------------------------------------------------------------------------------------------


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_start_launches_one_canary_of_the_candidate_from_the_dev_app_template_tagged_at_launch(aws):
    out = run("Start", aws["image"])
    [instance] = dev_instances()
    assert out == {"Status": "Launched", "InstanceId": instance["InstanceId"], "Account": DEV}
    assert instance["ImageId"] == aws["image"] and instance["SubnetId"] == aws["subnet"]
    assert tags_to_dict(instance["Tags"])[canary.PURPOSE_TAG] == "dev-canary"
    assert tags_to_dict(instance["Tags"])[canary.TAG_EXECUTION] == EXECUTION
    assert tags_to_dict(instance["Tags"])["aws:ec2launchtemplate:id"] == aws["template"]
    assert instance["MetadataOptions"]["HttpTokens"] == "required"  # the root SCP reads it from the request


def test_the_launch_names_the_app_template_and_tags_instance_and_volume():
    request = canary.CanaryRequest.parse(event("Start", "ami-0123456789abcdef0"))
    launch = canary.launch_request(
        request, canary.CanaryTarget("dev", DEV), ["subnet-0bbbbbbbbbbbbbbbb", "subnet-0aaaaaaaaaaaaaaaa"]
    )
    assert launch["LaunchTemplate"] == {"LaunchTemplateName": "bakehouse-dev-app", "Version": "$Default"}
    assert launch["SubnetId"] == "subnet-0aaaaaaaaaaaaaaaa" and launch["ClientToken"] == f"canary-{EXECUTION}"
    assert {s["ResourceType"] for s in launch["TagSpecifications"]} == {"instance", "volume"}


def test_start_shares_the_candidate_with_dev_and_writes_the_dev_candidate_parameter(aws):
    run("Start", aws["image"])
    perms = boto3.client("ec2", region_name=HOME).describe_image_attribute(ImageId=aws["image"], Attribute="launchPermission")[
        "LaunchPermissions"
    ]
    assert {"UserId": DEV} in perms
    value = in_account(DEV, "ssm").get_parameter(Name="/bakehouse/dev/ami-candidate/al2023")["Parameter"]["Value"]
    assert value == aws["image"]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_start_run_twice_keeps_one_canary(aws):
    first = run("Start", aws["image"])
    second = run("Start", aws["image"])
    assert second["Status"] == "Running" and second["InstanceId"] == first["InstanceId"]
    assert len(dev_instances()) == 1


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_start_follows_the_configured_canary_env(aws):
    write_settings({"uat": PROD}, canaryEnv="uat")
    seed_dev(PROD, "uat")
    run("Start", aws["image"])
    assert not dev_instances()
    assert in_account(PROD, "ssm").get_parameter(Name="/bakehouse/uat/ami-candidate/al2023")["Parameter"]["Value"]


def test_start_without_a_canary_account_in_the_settings_launches_nothing(aws):
    write_settings({"prod": PROD})
    clients = PingingClients()
    assert run("Start", aws["image"], clients)["Status"] == "NotRun"
    assert clients.assumed == [] and not dev_instances()


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_start_without_a_private_subnet_fails_naming_the_account_and_launches_nothing(aws):
    ec2 = in_account(DEV, "ec2")
    ec2.delete_tags(Resources=[aws["subnet"]], Tags=[{"Key": "bakehouse:tier"}])
    with pytest.raises(canary.CanaryLaunchFailed, match=rf"{DEV} \(dev\) has no subnet"):
        run("Start", aws["image"])
    assert not dev_instances()


# --- Check ---------------------------------------------------------------------------------------------


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_check_reports_healthy_when_status_checks_pass_and_the_agent_is_online_and_tags_the_image(aws):
    run("Start", aws["image"])
    out = run("Check", aws["image"])
    assert out["Result"] == "healthy" and "SSM agent Online" in out["Health"]
    tags = tags_to_dict(boto3.client("ec2", region_name=HOME).describe_images(ImageIds=[aws["image"]])["Images"][0]["Tags"])
    assert tags[canary.TAG_RESULT] == "healthy"


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_check_reports_unhealthy_when_the_agent_never_comes_online(aws):
    run("Start", aws["image"])
    out = run("Check", aws["image"], PingingClients(ping=None))
    assert out["Result"] == "unhealthy" and "SSM agent absent" in out["Health"]


def test_check_reports_not_launched_when_no_canary_runs(aws):
    out = run("Check", aws["image"])
    assert out["Result"] == "not-launched" and DEV in out["Health"]


@pytest.mark.parametrize(
    ("status", "ping", "result"),
    [
        (
            {"InstanceState": {"Name": "running"}, "SystemStatus": {"Status": "ok"}, "InstanceStatus": {"Status": "ok"}},
            "Online",
            "healthy",
        ),
        (
            {"InstanceState": {"Name": "running"}, "SystemStatus": {"Status": "ok"}, "InstanceStatus": {"Status": "impaired"}},
            "Online",
            "unhealthy",
        ),
        (
            {"InstanceState": {"Name": "running"}, "SystemStatus": {"Status": "ok"}, "InstanceStatus": {"Status": "ok"}},
            "ConnectionLost",
            "unhealthy",
        ),
        ({"InstanceState": {"Name": "stopped"}}, None, "unhealthy"),
        (None, None, "unhealthy"),
    ],
)
def test_judge_calls_healthy_only_a_running_instance_with_both_checks_ok_and_its_agent_online(status, ping, result):
    assert canary.judge("i-0123456789abcdef0", status, ping).result == result


def test_check_waits_while_status_checks_initialize():
    initializing = {
        "InstanceState": {"Name": "running"},
        "SystemStatus": {"Status": "initializing"},
        "InstanceStatus": {"Status": "initializing"},
    }
    assert not canary.settled(initializing, "Online")
    assert not canary.settled({"InstanceState": {"Name": "pending"}}, None)
    assert canary.settled({**initializing, "SystemStatus": {"Status": "ok"}, "InstanceStatus": {"Status": "ok"}}, "Online")


# --- Terminate -----------------------------------------------------------------------------------------


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_terminate_removes_the_canary_its_parameter_and_the_share(aws):
    started = run("Start", aws["image"])
    out = run("Terminate", aws["image"])
    assert out == {"Terminated": [started["InstanceId"]], "ParameterDeleted": True}
    assert not dev_instances(("pending", "running", "stopping", "stopped"))
    with pytest.raises(in_account(DEV, "ssm").exceptions.ParameterNotFound):
        in_account(DEV, "ssm").get_parameter(Name="/bakehouse/dev/ami-candidate/al2023")
    perms = boto3.client("ec2", region_name=HOME).describe_image_attribute(ImageId=aws["image"], Attribute="launchPermission")[
        "LaunchPermissions"
    ]
    assert {"UserId": DEV} not in perms


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_terminate_leaves_a_later_candidate_parameter_alone(aws):
    run("Start", aws["image"])
    later = golden_ami(boto3.client("ec2", region_name=HOME), name="bakehouse-al2023-2")
    in_account(DEV, "ssm").put_parameter(Name="/bakehouse/dev/ami-candidate/al2023", Value=later, Type="String", Overwrite=True)
    assert run("Terminate", aws["image"])["ParameterDeleted"] is False
    assert in_account(DEV, "ssm").get_parameter(Name="/bakehouse/dev/ami-candidate/al2023")["Parameter"]["Value"] == later


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_terminate_leaves_instances_of_other_executions_running(aws):
    run("Start", aws["image"], ExecutionId="99999999-1111-4222-8333-444455556666")
    run("Terminate", aws["image"])
    assert len(dev_instances()) == 1


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_terminate_with_nothing_launched_succeeds(aws):
    assert run("Terminate", aws["image"]) == {"Terminated": [], "ParameterDeleted": False}


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_terminate_that_cannot_reach_dev_fails_naming_the_account(aws):
    run("Start", aws["image"])

    class Broken(PingingClients):
        def canary(self, account_id: str, service: str) -> Any:
            inner = super().canary(account_id, service)
            if service != "ec2":
                return inner

            class Ec2:
                def __getattr__(self, name: str) -> Any:
                    return getattr(inner, name)

                def terminate_instances(self, **params: Any) -> Any:
                    from botocore.exceptions import ClientError

                    raise ClientError({"Error": {"Code": "UnauthorizedOperation", "Message": "no"}}, "TerminateInstances")

            return Ec2()

    with pytest.raises(canary.CanaryNotTerminated, match=rf"canary instances \['i-[0-9a-f]+'\] in {DEV}"):
        run("Terminate", aws["image"], Broken())


# --- the event -----------------------------------------------------------------------------------------


def test_a_malformed_event_fails_listing_every_problem_before_any_aws_call(monkeypatch):
    def no_client(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an AWS client was made for a malformed event")

    monkeypatch.setattr(canary, "client", no_client)
    with pytest.raises(MalformedEvent) as err:
        canary.handler({"Action": "Launch", "ImageId": "ami-nope", "Family": "AL", "ExecutionId": ""}, None)
    assert len(err.value.problems) == 4


def test_a_malformed_canary_account_or_env_is_refused():
    with pytest.raises(canary.SettingsUnusable, match="targets/dev is '12'"):
        canary.canary_target({}, {"dev": "12"})
    with pytest.raises(canary.SettingsUnusable, match="canaryEnv"):
        canary.canary_target({"canaryEnv": "Dev!"}, {"dev": DEV})


def test_the_canary_env_defaults_to_dev():
    assert canary.canary_target({}, {"dev": DEV, "prod": PROD}) == canary.CanaryTarget("dev", DEV)


def test_the_health_message_fits_the_approval_parameter():
    message = canary.Health("unhealthy", "error {{ x }} " + "e" * 2000).message
    assert len(message) <= 900 and "{" not in message and "}" not in message
