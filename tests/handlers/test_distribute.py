"""handlers.distribute against moto: regional copies, sharing, account parameters, resume, bounds."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from estate import naming
from handlers import distribute as dist
from handlers import publish as pub
from handlers.common import MalformedEvent, PollTimeout, poll
from handlers.targets import MalformedTarget
from tests.fakes import SharedImageTagsEc2
from tests.fakes.seed import FAST_EC2_ENV, NoAwsCalls, golden_ami

HOME = "eu-west-1"
REGIONS = (HOME, "us-east-1", "eu-central-1")
ACCOUNTS = ("111111111111", "222222222222", "333333333333")
ENVS = ("dev", "uat", "prod")
WRITES = {"CopyImage", "CreateTags", "ModifyImageAttribute", "ModifySnapshotAttribute", "PutParameter"}
MANAGEMENT, ORG = "999999999999", "o-abcdefghij"
ORG_ARN = f"arn:aws:organizations::{MANAGEMENT}:organization/{ORG}"
WORKLOAD_OU = f"arn:aws:organizations::{MANAGEMENT}:ou/{ORG}/ou-ab12-wkld0001"
# Where each account sits in the organization (moto resolves no membership; the fake is told).
MEMBER_OF = {a: (ORG_ARN, WORKLOAD_OU) for a in ACCOUNTS}


_SESSION: list[boto3.Session] = []


def _session() -> boto3.Session:
    """One session for the module: loading the EC2 model costs ~1 s per new session."""
    if not _SESSION:
        _SESSION.append(boto3.Session())
    return _SESSION[0]


# What each workload account wrote on the images shared with it (moto cannot hold it; see the fake).
SHARED_TAGS: dict = {}


class RecordingClients(dist.AwsClients):
    """The handler's own client factory over moto, with every API call logged (and optionally slowed).

    Workload-account EC2 goes through SharedImageTagsEc2, so an account can tag its view of an image
    shared with it, as on AWS."""

    def __init__(self, delay: float = 0.0, fail_account: str | None = None, member_of: dict | None = None):
        super().__init__(naming.IMAGE_PUBLISHER_ROLE, HOME, session=_session())
        self.member_of = MEMBER_OF if member_of is None else member_of
        self.tag_fakes: dict[tuple[str, str], SharedImageTagsEc2] = {}
        self.calls: list[tuple[str, str, str]] = []  # (account or "build", region, operation)
        self.delay, self.fail_account = delay, fail_account
        self.in_flight: set[int] = set()  # threads inside an API call right now
        self.peak = 0
        self._count = threading.Lock()

    def _hook(self, c, who: str, region: str):
        def before(model, **_):
            with self._count:
                self.calls.append((who, region, model.name))
                self.in_flight.add(threading.get_ident())
                self.peak = max(self.peak, len(self.in_flight))
            if self.delay:
                time.sleep(self.delay)

        def after(**_):
            with self._count:
                self.in_flight.discard(threading.get_ident())

        c.meta.events.register("before-call.*.*", before)
        c.meta.events.register("after-call.*.*", after)
        return c

    def build(self, service, region):
        with self._count:
            known = ("", service, region) in self._clients
        c = super().build(service, region)
        return c if known else self._hook(c, "build", region)

    def target(self, account_id, service, region):
        if account_id == self.fail_account:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "role not yet deployed"}}, "AssumeRole")
        with self._count:
            known = (account_id, service, region) in self._clients
        c = super().target(account_id, service, region)
        c = c if known else self._hook(c, account_id, region)
        if service != "ec2":
            return c
        with self._count:
            if (account_id, region) not in self.tag_fakes:
                self.tag_fakes[(account_id, region)] = SharedImageTagsEc2(
                    c, account_id, lambda r: self.build("ec2", r), SHARED_TAGS, self.member_of.get(account_id, ())
                )
            return self.tag_fakes[(account_id, region)]

    def writes(self, who: str | None = None) -> list[tuple[str, str, str]]:
        # Tags on a shared image never reach moto: the fakes' own log holds them.
        shared = [(a, r, "CreateTags") for (a, r), fake in sorted(self.tag_fakes.items()) for _ in fake.calls_to("create_tags")]
        return [c for c in [*self.calls, *shared] if c[2] in WRITES and who in (None, c[0])]


def seed_request() -> tuple[dist.DistributeRequest, dict[str, str]]:
    """Inside mock_aws: an approved golden AMI, a key per region, and the request to distribute it."""
    ec2 = boto3.client("ec2", region_name=HOME)
    image = golden_ami(ec2, tags={pub.TAG_APPROVED: "true", "bakehouse:commit": "abc123"})
    keys = {r: boto3.client("kms", region_name=r).create_key()["KeyMetadata"]["Arn"] for r in REGIONS}
    request = dist.DistributeRequest(
        image_id=image,
        source_region=HOME,
        family="al2023",
        region_keys=tuple(sorted(keys.items())),
        targets=tuple(dist.Target(a, e) for a, e in zip(ACCOUNTS, ENVS, strict=True)),
        share_with=(WORKLOAD_OU,),
        max_workers=4,
        poll_seconds=0,
    )
    return request, keys


@pytest.fixture
def estate(monkeypatch):
    for key, value in FAST_EC2_ENV.items():
        monkeypatch.setenv(key, value)
    SHARED_TAGS.clear()
    with mock_aws():
        yield seed_request()


def _account_ssm(account: str, region: str):
    sts = boto3.client("sts", region_name=HOME)
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/x", RoleSessionName="check")["Credentials"]
    return boto3.client(
        "ssm",
        region_name=region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def test_names_match_estate_naming_and_publish():
    assert dist.ENV_AMI_PARAMETER.format(env="dev", family="al2023") == naming.env_ami_parameter("dev", "al2023")
    assert dist.IMAGE_PUBLISHER_ROLE == naming.IMAGE_PUBLISHER_ROLE
    assert dist.TAG_APPROVED == pub.TAG_APPROVED
    assert dist.APPROVED_IMAGE_TAG == naming.APPROVED_IMAGE_TAG


class SpyClients(RecordingClients):
    """Also keeps the parameters of every CopyImage request, by region."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.copy_params: dict[str, dict] = {}

    def build(self, service, region):
        with self._count:
            known = ("", service, region) in self._clients
        c = super().build(service, region)
        if service == "ec2" and not known:
            c.meta.events.register(
                "provide-client-params.ec2.CopyImage", lambda params, **_: self.copy_params.__setitem__(region, dict(params))
            )
        return c


@pytest.fixture(scope="class")
def distributed():
    """One full distribution, inspected read-only by the tests of TestAFullDistribution."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in FAST_EC2_ENV.items():
            mp.setenv(key, value)
        SHARED_TAGS.clear()
        with mock_aws():
            request, keys = seed_request()
            clients = SpyClients()
            yield request, keys, dist.distribute(request, clients), clients


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
class TestAFullDistribution:
    def test_it_succeeds_everywhere(self, distributed):
        _, _, result, _ = distributed
        assert result.failures == []
        assert {o.action for o in result.accounts.values()} == {"shared"}

    def test_every_region_gets_one_copy_tagged_with_its_source_and_provenance(self, distributed):
        request, _, result, clients = distributed
        assert result.regions[HOME].image_id == request.image_id  # the source region serves the source itself
        for region in REGIONS[1:]:
            copies = boto3.client("ec2", region_name=region).describe_images(
                Owners=["self"], Filters=[{"Name": "tag:bakehouse:source-ami", "Values": [request.image_id]}]
            )["Images"]
            assert [c["ImageId"] for c in copies] == [result.regions[region].image_id]
            assert {t["Key"]: t["Value"] for t in copies[0]["Tags"]}["bakehouse:commit"] == "abc123"
        assert sorted(r for _, r, op in clients.calls if op == "CopyImage") == sorted(REGIONS[1:])

    def test_copies_are_encrypted_with_the_regions_key(self, distributed):
        request, keys, _, clients = distributed
        for region in REGIONS[1:]:
            params = clients.copy_params[region]
            assert params["Encrypted"] is True and params["KmsKeyId"] == keys[region]
            assert params["SourceImageId"] == request.image_id and params["SourceRegion"] == HOME

    def test_each_regions_image_is_shared_with_the_workload_ou_not_account_by_account(self, distributed):
        _, _, result, _ = distributed
        for region in REGIONS:
            ec2 = boto3.client("ec2", region_name=region)
            image_id = result.regions[region].image_id
            launch = ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")["LaunchPermissions"]
            assert launch == [{"OrganizationalUnitArn": WORKLOAD_OU}]

    def test_snapshots_are_not_shared_launching_needs_only_the_image_and_the_key(self, distributed):
        # EC2 user guide, "Share an AMI with organizations or OUs": the system gives the launch access
        # to the referenced snapshots; ModifySnapshotAttribute cannot name an OU anyway.
        _, _, result, clients = distributed
        assert [c for c in clients.calls if c[2] == "ModifySnapshotAttribute"] == []
        for region in REGIONS:
            ec2 = boto3.client("ec2", region_name=region)
            for mapping in ec2.describe_images(ImageIds=[result.regions[region].image_id])["Images"][0]["BlockDeviceMappings"]:
                assert (
                    ec2.describe_snapshot_attribute(SnapshotId=mapping["Ebs"]["SnapshotId"], Attribute="createVolumePermission")[
                        "CreateVolumePermissions"
                    ]
                    == []
                )

    def test_the_factory_makes_one_share_call_per_region_whatever_the_number_of_accounts(self, distributed):
        _, _, _, clients = distributed
        shares = sorted(r for who, r, op in clients.calls if op == "ModifyImageAttribute")
        assert shares == sorted(REGIONS) and len(ACCOUNTS) > 1

    def test_each_account_parameter_names_its_regions_image(self, distributed):
        _, _, result, _ = distributed
        for account, env in zip(ACCOUNTS, ENVS, strict=True):
            for region in REGIONS:
                parameter = _account_ssm(account, region).get_parameter(Name=f"/bakehouse/{env}/ami/al2023")["Parameter"]
                assert (parameter["Value"], parameter["DataType"]) == (result.regions[region].image_id, "aws:ec2:image")
        # nothing is written in the factory's own account
        assert boto3.client("ssm", region_name=HOME).describe_parameters()["Parameters"] == []

    def test_each_account_marks_its_view_of_the_image_approved_for_the_config_rule(self, distributed):
        # Tags on a shared AMI are per account: the workload account's approved-AMI rule reads its own.
        _, _, result, clients = distributed
        key, value = naming.APPROVED_IMAGE_TAG
        for account in ACCOUNTS:
            for region in REGIONS:
                image_id = result.regions[region].image_id
                ec2 = clients.tag_fakes[(account, region)]
                tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [image_id]}])["Tags"]
                assert {t["Key"]: t["Value"] for t in tags}.get(key) == value
                (call,) = ec2.calls_to("create_tags")
                assert call == {"Resources": [image_id], "Tags": [{"Key": key, "Value": value}]}
        owners = boto3.client("ec2", region_name=HOME).describe_tags(
            Filters=[{"Name": "resource-id", "Values": [result.regions[HOME].image_id]}]
        )["Tags"]
        assert key not in {t["Key"] for t in owners}  # written in the workload accounts, not the factory's

    def test_parameters_are_written_through_each_accounts_publisher_role(self, distributed):
        _, _, _, clients = distributed
        writers = {who for who, _, op in clients.calls if op == "PutParameter"}
        assert writers == set(ACCOUNTS)


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_replaying_a_distribution_writes_nothing(estate):
    request, _ = estate
    first = dist.distribute(request, RecordingClients())
    clients = RecordingClients()
    again = dist.distribute(request, clients)
    assert clients.writes() == []
    assert again.as_dict()["RegionImageIds"] == first.as_dict()["RegionImageIds"]
    assert {o.action for o in again.accounts.values()} == {"unchanged"}
    assert {again.regions[r].action for r in REGIONS[1:]} == {"existing"}


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_a_permission_already_granted_is_not_granted_again(estate):
    request, _ = estate
    boto3.client("ec2", region_name=HOME).modify_image_attribute(
        ImageId=request.image_id, LaunchPermission={"Add": [{"OrganizationalUnitArn": WORKLOAD_OU}]}
    )
    clients = RecordingClients()
    dist.distribute(request, clients)
    assert sorted(r for _, r, op in clients.calls if op == "ModifyImageAttribute") == sorted(REGIONS[1:])


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_sharing_with_the_whole_organization_admits_every_member_account(estate):
    request, _ = estate
    result = dist.distribute(
        replace(request, share_with=(ORG_ARN,)), RecordingClients(member_of={a: (ORG_ARN,) for a in ACCOUNTS})
    )
    assert result.failures == []
    launch = boto3.client("ec2", region_name=HOME).describe_image_attribute(
        ImageId=request.image_id, Attribute="launchPermission"
    )["LaunchPermissions"]
    assert launch == [{"OrganizationArn": ORG_ARN}]


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_an_account_outside_the_shared_ous_fails_naming_the_account_and_the_ous(estate):
    request, _ = estate
    elsewhere = {**MEMBER_OF, ACCOUNTS[2]: (ORG_ARN, WORKLOAD_OU.replace("wkld0001", "sbox0001"))}
    result = dist.distribute(request, RecordingClients(member_of=elsewhere))
    failed = {(a, r): o for (a, r), o in result.accounts.items() if o.action == "failed"}
    assert set(failed) == {(ACCOUNTS[2], r) for r in REGIONS}
    error = failed[(ACCOUNTS[2], HOME)].error
    assert error.startswith("NotSharedWithAccount") and ACCOUNTS[2] in error and WORKLOAD_OU in error
    assert {o.action for (a, _), o in result.accounts.items() if a != ACCOUNTS[2]} == {"shared"}


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_a_half_done_distribution_resumes_without_redoing_finished_work(estate):
    request, _ = estate
    broken = RecordingClients(fail_account=ACCOUNTS[1])
    first = dist.distribute(request, broken)
    assert {f.split(" in ")[0] for f in first.failures} == {f"account {ACCOUNTS[1]}"}
    assert "AccessDenied" in first.accounts[(ACCOUNTS[1], HOME)].error

    clients = RecordingClients()
    second = dist.distribute(request, clients)
    assert second.failures == []
    assert [c for c in clients.calls if c[2] == "CopyImage"] == []
    assert {who for who, _, op in clients.writes() if op == "PutParameter"} == {ACCOUNTS[1]}
    assert {a for (a, _), o in second.accounts.items() if o.action != "unchanged"} == {ACCOUNTS[1]}


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_an_untagged_copy_left_by_a_crash_is_adopted_not_duplicated(estate):
    request, keys = estate
    ec2 = boto3.client("ec2", region_name="us-east-1")
    name = boto3.client("ec2", region_name=HOME).describe_images(ImageIds=[request.image_id])["Images"][0]["Name"]
    orphan = ec2.copy_image(
        SourceImageId=request.image_id,
        SourceRegion=HOME,
        Name=name,
        Encrypted=True,
        KmsKeyId=keys["us-east-1"],
        Description=f"bakehouse al2023 copy of {request.image_id}",
    )["ImageId"]
    clients = RecordingClients()
    result = dist.distribute(request, clients)
    assert result.regions["us-east-1"].image_id == orphan
    assert not [c for c in clients.calls if c[1] == "us-east-1" and c[2] == "CopyImage"]
    tags = {t["Key"]: t["Value"] for t in ec2.describe_images(ImageIds=[orphan])["Images"][0]["Tags"]}
    assert tags["bakehouse:source-ami"] == request.image_id


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_an_unrelated_image_with_the_same_name_is_not_adopted(estate):
    request, keys = estate
    ec2 = boto3.client("ec2", region_name="us-east-1")
    name = boto3.client("ec2", region_name=HOME).describe_images(ImageIds=[request.image_id])["Images"][0]["Name"]
    stranger = ec2.copy_image(SourceImageId=request.image_id, SourceRegion=HOME, Name=name, Description="someone else's image")[
        "ImageId"
    ]
    result = dist.distribute(request, RecordingClients())
    assert result.regions["us-east-1"].image_id != stranger and result.regions["us-east-1"].action == "copied"


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_parallelism_is_bounded_by_max_workers(estate):
    request, _ = estate
    clients = RecordingClients(delay=0.02)
    dist.distribute(replace(request, max_workers=3), clients)
    assert 2 <= clients.peak <= 3


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_max_workers_one_runs_sequentially(estate):
    request, _ = estate
    clients = RecordingClients(delay=0.005)
    dist.distribute(replace(request, max_workers=1), clients)
    assert clients.peak == 1


def test_an_unapproved_image_is_refused_before_any_copy(estate):
    request, _ = estate
    ec2 = boto3.client("ec2", region_name=HOME)
    ec2.delete_tags(Resources=[request.image_id], Tags=[{"Key": pub.TAG_APPROVED}])
    clients = RecordingClients()
    with pytest.raises(dist.ImageNotDistributable, match=request.image_id):
        dist.distribute(request, clients)
    assert clients.writes() == []


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_a_failed_region_copy_skips_its_accounts_and_the_step_fails(estate, monkeypatch):
    request, _ = estate

    class BrokenCopy(RecordingClients):
        def build(self, service, region):
            c = super().build(service, region)
            if service == "ec2" and region == "eu-central-1":

                def refuse(**_):
                    raise ClientError({"Error": {"Code": "ResourceLimitExceeded", "Message": "too many copies"}}, "CopyImage")

                c.meta.events.register("before-call.ec2.CopyImage", refuse)
            return c

    result = dist.distribute(request, BrokenCopy())
    assert result.regions["eu-central-1"].action == "failed"
    assert "ResourceLimitExceeded" in result.regions["eu-central-1"].error
    assert {o.action for (a, r), o in result.accounts.items() if r == "eu-central-1"} == {"skipped"}
    assert {o.action for (a, r), o in result.accounts.items() if r != "eu-central-1"} == {"shared"}

    monkeypatch.setattr(dist, "AwsClients", lambda role, home: BrokenCopy())
    event = {
        "ImageId": request.image_id,
        "SourceRegion": HOME,
        "Family": "al2023",
        "PollSeconds": 0,
        "Regions": dict(request.region_keys),
        "ShareWith": [WORKLOAD_OU],
        "Accounts": [{"AccountId": a, "Env": e} for a, e in zip(ACCOUNTS, ENVS, strict=True)],
    }
    with pytest.raises(dist.DistributionIncomplete, match="eu-central-1"):
        dist.handler(event, None)


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_handler_output_carries_region_image_ids_and_account_outcomes(estate, monkeypatch):
    request, _ = estate
    # The handler's own clients, with workload EC2 able to tag shared images (see RecordingClients).
    monkeypatch.setattr(dist, "AwsClients", lambda role, home: RecordingClients())
    event = {
        "ImageId": request.image_id,
        "SourceRegion": HOME,
        "Family": "al2023",
        "PollSeconds": 0,
        "MaxWorkers": 4,
        "Regions": dict(request.region_keys),
        "ShareWith": [WORKLOAD_OU],
        "Accounts": [{"AccountId": a, "Env": e} for a, e in zip(ACCOUNTS, ENVS, strict=True)],
    }
    out = dist.handler(event, None)
    assert sorted(out["RegionImageIds"]) == sorted(REGIONS) and out["Failures"] == []
    assert {r: o["Action"] for r, o in out["Accounts"][ACCOUNTS[0]].items()} == {r: "shared" for r in REGIONS}


def test_waiting_for_a_copy_backs_off_until_it_is_available():
    states = iter(["pending", "pending", "pending", "available"])

    class SlowCopy:
        def describe_images(self, ImageIds):
            return {"Images": [{"ImageId": ImageIds[0], "State": next(states)}]}

    sleeps: list[float] = []
    request = dist.DistributeRequest("ami-0123456789abcdef0", HOME, "al2023", (), (), poll_seconds=2)
    image = dist._wait_available(SlowCopy(), "ami-0123456789abcdef0", request, sleeps.append)
    assert image["State"] == "available" and sleeps == [2, 4, 8]


def test_a_copy_that_fails_is_reported_not_awaited():
    class FailedCopy:
        def describe_images(self, ImageIds):
            return {"Images": [{"ImageId": ImageIds[0], "State": "failed", "StateReason": {"Message": "KMS denied"}}]}

    request = dist.DistributeRequest("ami-0123456789abcdef0", HOME, "al2023", (), (), poll_seconds=2)
    with pytest.raises(dist.CopyFailed, match="KMS denied"):
        dist._wait_available(FailedCopy(), "ami-0123456789abcdef0", request, lambda s: None)


def test_poll_never_spins_when_asked_to_start_at_zero():
    answers = iter([None, None, None, "done"])
    sleeps: list[float] = []
    assert poll(lambda: next(answers), "x", first_delay=0, max_delay=60, sleep=sleeps.append) == "done"
    assert sleeps == [0, 1, 2]


def test_poll_gives_up_after_its_timeout_naming_the_resource():
    clock = iter(range(0, 10_000, 10))
    with pytest.raises(PollTimeout, match="copy ami-1"):
        poll(lambda: None, "copy ami-1", first_delay=10, timeout=60, sleep=lambda s: None, clock=lambda: next(clock))


GOOD = {
    "ImageId": "ami-0123456789abcdef0",
    "SourceRegion": HOME,
    "Family": "al2023",
    "Regions": {"us-east-1": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
    "Accounts": [{"AccountId": "111111111111", "Env": "dev"}],
    "ShareWith": [WORKLOAD_OU],
}


def test_a_good_event_parses():
    request = dist.DistributeRequest.parse(GOOD)
    assert request.targets == (dist.Target("111111111111", "dev"),)
    assert request.share_with == (WORKLOAD_OU,)
    assert dist.DistributeRequest.parse({**GOOD, "ShareWith": [ORG_ARN]}).share_with == (ORG_ARN,)


@pytest.mark.parametrize(
    "change,problem",
    [
        ({"Regions": {"us-east-1": "arn:aws:kms:eu-west-1:123456789012:key/abc"}}, "need a key in us-east-1"),
        ({"Regions": {}}, "Regions"),
        ({"Accounts": [{"AccountId": "1111", "Env": "dev"}]}, "AccountId"),
        ({"Accounts": [{"AccountId": "111111111111", "Env": "dev"}] * 2}, "more than once"),
        ({"Mode": "copy"}, "copy distribution was removed"),
        ({"Mode": "share"}, "copy distribution was removed"),
        ({"AccountKmsKey": "alias/bakehouse-ami"}, "copy distribution was removed"),
        ({"MaxWorkers": 0}, "MaxWorkers"),
        ({"ImageId": "snap-1"}, "ImageId"),
        ({"ShareWith": None}, "ShareWith is None, expected a non-empty list of organization or OU ARNs"),
        ({"ShareWith": []}, "ShareWith is \\[\\], expected a non-empty list"),
        ({"ShareWith": ["ou-ab12-wkld0001"]}, "ShareWith\\[0\\] is 'ou-ab12-wkld0001', expected an organization or OU ARN"),
        (
            {"ShareWith": [WORKLOAD_OU, "arn:aws:organizations::999999999999:ou/o-zzzzzzzzzz/ou-ab12-wkld0002"]},
            "ShareWith names more than one organization",
        ),
        ({"ShareWith": [WORKLOAD_OU, WORKLOAD_OU]}, "ShareWith lists .* more than once"),
    ],
)
def test_a_malformed_event_is_rejected_before_any_aws_call(monkeypatch, change, problem):
    monkeypatch.setattr(dist, "AwsClients", NoAwsCalls("AwsClients"))
    monkeypatch.setattr(dist, "client", NoAwsCalls("client"))
    with pytest.raises(MalformedEvent, match=problem):
        dist.handler({**GOOD, **change}, None)


@pytest.mark.slow  # about a second of CPU; runs in make test-slow and CI
def test_without_accounts_the_handler_serves_every_env_under_the_target_path(estate, monkeypatch):
    request, _ = estate
    ssm = boto3.client("ssm", region_name=HOME)
    for account, env in zip(ACCOUNTS, ENVS, strict=True):
        ssm.put_parameter(Name=f"/bakehouse/factory/targets/{env}", Value=account, Type="String")
    monkeypatch.setattr(dist, "AwsClients", lambda role, home: RecordingClients())
    event = {
        "ImageId": request.image_id,
        "SourceRegion": HOME,
        "Family": "al2023",
        "PollSeconds": 0,
        "Regions": dict(request.region_keys),
        "ShareWith": [WORKLOAD_OU],
        "Accounts": [],
    }
    out = dist.handler(event, None)
    assert sorted(out["Accounts"]) == sorted(ACCOUNTS) and out["Failures"] == []


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_malformed_target_parameter_stops_distribution_before_any_copy(estate):
    request, _ = estate
    boto3.client("ssm", region_name=HOME).put_parameter(Name="/bakehouse/factory/targets/dev", Value="dev-account", Type="String")
    copies = RecordingClients()
    with pytest.raises(MalformedTarget, match="/bakehouse/factory/targets/dev is 'dev-account'"):
        dist.distribute(replace(request, targets=None), copies)
    assert not [
        i for r in REGIONS if r != HOME for i in boto3.client("ec2", region_name=r).describe_images(Owners=["self"])["Images"]
    ]
