"""AMI lifecycle: the pure plan table-driven (incl. prod retention and every boundary), then the
executor against moto (+ the deprecation fake) in the home region and a copy region."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from handlers.common import MalformedEvent
from handlers.lifecycle import (
    Action,
    ImageFacts,
    LifecycleIncomplete,
    LifecycleRequest,
    RetentionPolicy,
    handler,
    plan,
    run,
)
from tests.fakes import ImageDeprecationEc2
from tests.fakes.seed import FAST_EC2_ENV, golden_ami
from tests.handlers._sessions import fast_default_session

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = RetentionPolicy(keep_newest=2, keep_days=30, grace_days=14, prod_retention_years=2)
K, D, W, R = Action.KEEP, Action.DEPRECATE, Action.WAIT, Action.DEREGISTER


def img(image_id: str, days_old: float, family: str = "al2023", **kw) -> ImageFacts:
    return ImageFacts(image_id=image_id, family=family, created=NOW - timedelta(days=days_old), **kw)


def deprecated(days_ago: float) -> datetime:
    return NOW - timedelta(days=days_ago)


CASES = [
    ("newest_n_approved_are_kept_the_rest_deprecated", [img("a", 100), img("b", 200), img("c", 300)], {"a": K, "b": K, "c": D}),
    (
        "unapproved_images_hold_no_newest_place",
        [img("a", 100, approved=False), img("b", 200), img("c", 300), img("d", 400)],
        {"a": D, "b": K, "c": K, "d": D},
    ),
    (
        "vulnerable_images_hold_no_newest_place",
        [img("a", 50, vulnerable=True), img("b", 100), img("c", 200)],
        {"a": D, "b": K, "c": K},
    ),
    ("younger_than_keep_days_is_kept_even_beyond_n", [img("a", 1), img("b", 2), img("c", 29.99)], {"a": K, "b": K, "c": K}),
    ("exactly_keep_days_old_is_no_longer_young", [img("a", 1), img("b", 2), img("c", 30)], {"a": K, "b": K, "c": D}),
    (
        "the_published_latest_is_kept_whatever_its_age",
        [img("a", 10), img("b", 20), img("old", 900, current=True, deprecation_time=deprecated(800))],
        {"a": K, "b": K, "old": K},
    ),
    (
        "deprecated_within_grace_waits",
        [img("a", 1), img("b", 2), img("c", 100, deprecation_time=deprecated(13.99))],
        {"a": K, "b": K, "c": W},
    ),
    (
        "deprecated_exactly_grace_days_ago_is_deregistered",
        [img("a", 1), img("b", 2), img("c", 100, deprecation_time=deprecated(14))],
        {"a": K, "b": K, "c": R},
    ),
    (
        "ran_in_prod_is_kept_within_retention_even_if_deprecated_long_ago",
        [img("a", 1), img("b", 2), img("p", 700, ran_in_prod=True, deprecation_time=deprecated(600))],
        {"a": K, "b": K, "p": K},
    ),
    (
        "ran_in_prod_is_released_once_retention_has_passed",
        [img("a", 1), img("b", 2), img("p", 731, ran_in_prod=True)],
        {"a": K, "b": K, "p": D},
    ),
    (
        "ran_in_prod_retention_counts_from_the_last_prod_sighting",
        [img("a", 1), img("b", 2), img("p", 1500, ran_in_prod=True, prod_last_seen=NOW - timedelta(days=400))],
        {"a": K, "b": K, "p": K},
    ),
    (
        "ran_in_prod_after_retention_with_old_deprecation_is_deregistered",
        [img("a", 1), img("b", 2), img("p", 1000, ran_in_prod=True, deprecation_time=deprecated(30))],
        {"a": K, "b": K, "p": R},
    ),
    (
        "a_prod_mark_is_ignored_for_images_that_are_not_the_issue",
        [img("p", 1000, ran_in_prod=True), img("q", 1001, ran_in_prod=True), img("r", 1002)],
        {"p": K, "q": K, "r": D},
    ),
    (
        "families_are_counted_separately",
        [img("a1", 100), img("a2", 200), img("a3", 300), img("u1", 100, family="ubuntu"), img("u2", 400, family="ubuntu")],
        {"a1": K, "a2": K, "a3": D, "u1": K, "u2": K},
    ),
]


@pytest.mark.parametrize("images,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan_decides_each_image(images, expected):
    got = {d.image_id: d.action for d in plan(images, POLICY, NOW)}
    assert got == expected


def test_plan_prod_retention_exactly_at_the_anniversary_releases_the_image():
    created = datetime(2024, 11, 23, 12, 0, tzinfo=UTC)  # exactly two years before NOW
    image = ImageFacts("p", "al2023", created, ran_in_prod=True)
    assert plan([image], RetentionPolicy(1, 0, 0, 2), NOW)[0].action is K  # still the newest
    older = [ImageFacts("n1", "al2023", NOW), image]
    assert {d.image_id: d.action for d in plan(older, RetentionPolicy(1, 0, 0, 2), NOW)}["p"] is D
    one_minute_before = NOW - timedelta(minutes=1)
    assert {d.image_id: d.action for d in plan(older, RetentionPolicy(1, 0, 0, 2), one_minute_before)}["p"] is K


def test_plan_prod_retention_from_a_leap_day_ends_on_28_february():
    image = ImageFacts("p", "al2023", datetime(2024, 2, 29, tzinfo=UTC), ran_in_prod=True)
    newer = ImageFacts("n", "al2023", datetime(2026, 1, 1, tzinfo=UTC))
    policy = RetentionPolicy(1, 0, 0, 2)
    [decision] = [d for d in plan([newer, image], policy, datetime(2026, 2, 27, tzinfo=UTC)) if d.image_id == "p"]
    assert decision.action is K and "2026-02-28" in decision.reason
    [decision] = [d for d in plan([newer, image], policy, datetime(2026, 2, 28, tzinfo=UTC)) if d.image_id == "p"]
    assert decision.action is D


def test_plan_zero_retention_years_gives_prod_images_no_protection():
    images = [img("a", 1), img("p", 100, ran_in_prod=True)]
    got = {d.image_id: d.action for d in plan(images, RetentionPolicy(1, 0, 14, 0), NOW)}
    assert got == {"a": K, "p": D}


# --- executor against moto ---------------------------------------------------------------------
HOME, COPY = "eu-west-1", "eu-central-1"


def _backdate(region: str, image_id: str, days: int) -> None:
    """Seed an image's age: the API cannot create an image in the past, so set it in moto's store."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ec2.models import ec2_backends

    image = ec2_backends[DEFAULT_ACCOUNT_ID][region].amis[image_id]
    image.creation_date = image.creation_date - timedelta(days=days)


@pytest.fixture
def world(monkeypatch):
    for k, v in FAST_EC2_ENV.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        fast_default_session(HOME)
        deprecations: dict = {}
        ec2 = {r: ImageDeprecationEc2(boto3.client("ec2", region_name=r), deprecations) for r in (HOME, COPY)}
        ssm = boto3.client("ssm", region_name=HOME)
        images = {}
        for n in (1, 2, 3):
            source = golden_ami(ec2[HOME], f"bakehouse-al2023-{n}", {"bakehouse:family": "al2023", "bakehouse:approved": "true"})
            copy = ec2[COPY].copy_image(SourceImageId=source, SourceRegion=HOME, Name=f"bakehouse-al2023-{n}", Encrypted=True)[
                "ImageId"
            ]
            ec2[COPY].create_tags(Resources=[copy], Tags=[{"Key": "bakehouse:source-ami", "Value": source}])
            images[n] = (source, copy)
            _backdate(HOME, source, 10 * (3 - n))  # 1 is the oldest, 3 the newest
            _backdate(COPY, copy, 10 * (3 - n))
        ssm.put_parameter(Name="/bakehouse/images/al2023/latest", Value=images[3][0], Type="String")
        yield {"ec2": ec2, "ssm": ssm, "images": images, "deprecations": deprecations}


def _request(dry_run: bool, **policy) -> LifecycleRequest:
    values = {"keep_newest": 1, "keep_days": 30, "grace_days": 14, "prod_retention_years": 2, **policy}
    return LifecycleRequest(copy_regions=(HOME, COPY), policy=RetentionPolicy(**values), dry_run=dry_run)


def _later(days: int) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)


def _state(world):
    return {
        r: (
            sorted(i["ImageId"] for i in c.describe_images(Owners=["self"])["Images"]),
            sorted(s["SnapshotId"] for s in c.describe_snapshots(OwnerIds=["self"])["Snapshots"]),
        )
        for r, c in world["ec2"].items()
    }, dict(world["deprecations"])


def test_dry_run_reports_the_plan_and_changes_nothing(world):
    before = _state(world)
    result = run(_request(dry_run=True), world["ec2"].__getitem__, world["ssm"], HOME, now=_later(400))
    assert _state(world) == before
    assert all(not c.calls_to("enable_image_deprecation") for c in world["ec2"].values())
    plan_ = {i["ImageId"]: i for i in result["Images"]}
    old, old_copy = world["images"][1]
    assert plan_[old]["Action"] == "deprecate"
    assert plan_[old]["Changes"] == [f"deprecate {old_copy} in {COPY}", f"deprecate {old} in {HOME}"]


def test_old_images_are_deprecated_in_every_region_they_were_copied_to(world):
    now = _later(400)
    result = run(_request(dry_run=False), world["ec2"].__getitem__, world["ssm"], HOME, now=now)
    (s1, c1), (s2, c2), (s3, c3) = (world["images"][n] for n in (1, 2, 3))
    assert set(world["deprecations"]) == {s1, c1, s2, c2}  # 3 is latest (and the newest)
    assert result["Counts"]["deprecate"] == 2 and result["Counts"]["keep"] == 1
    call = world["ec2"][COPY].calls_to("enable_image_deprecation")[0]
    assert now < call["DeprecateAt"] <= now + timedelta(minutes=1)


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_second_run_deprecates_nothing_again(world):
    now = _later(400)
    run(_request(dry_run=False), world["ec2"].__getitem__, world["ssm"], HOME, now=now)
    calls = sum(len(c.calls_to("enable_image_deprecation")) for c in world["ec2"].values())
    second = run(_request(dry_run=False), world["ec2"].__getitem__, world["ssm"], HOME, now=now + timedelta(hours=1))
    assert sum(len(c.calls_to("enable_image_deprecation")) for c in world["ec2"].values()) == calls
    assert {i["Action"] for i in second["Images"]} == {"keep", "wait"}


def test_after_the_grace_period_images_and_snapshots_are_removed_in_every_region(world):
    (s1, c1), (s2, c2), (s3, c3) = (world["images"][n] for n in (1, 2, 3))
    snaps = {
        r: {i["ImageId"]: i["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] for i in c.describe_images(Owners=["self"])["Images"]}
        for r, c in world["ec2"].items()
    }
    run(_request(dry_run=False), world["ec2"].__getitem__, world["ssm"], HOME, now=_later(400))
    run(_request(dry_run=False), world["ec2"].__getitem__, world["ssm"], HOME, now=_later(415))
    remaining = {r: {i["ImageId"] for i in c.describe_images(Owners=["self"])["Images"]} for r, c in world["ec2"].items()}
    assert remaining == {HOME: {s3}, COPY: {c3}}
    left = {r: {s["SnapshotId"] for s in c.describe_snapshots(OwnerIds=["self"])["Snapshots"]} for r, c in world["ec2"].items()}
    assert left[HOME] >= {snaps[HOME][s3]} and not left[HOME] & {snaps[HOME][s1], snaps[HOME][s2]}
    assert left[COPY] >= {snaps[COPY][c3]} and not left[COPY] & {snaps[COPY][c1], snaps[COPY][c2]}


def test_an_image_that_ran_in_prod_is_untouched_until_its_retention_passes(world):
    s1, c1 = world["images"][1]
    # The in-use scan saw the eu-central-1 copy running in prod.
    world["ec2"][COPY].create_tags(Resources=[c1], Tags=[{"Key": "bakehouse:ran-in", "Value": "prod"}])
    run(_request(dry_run=False), world["ec2"].__getitem__, world["ssm"], HOME, now=_later(400))
    assert s1 not in world["deprecations"] and c1 not in world["deprecations"]
    run(_request(dry_run=False), world["ec2"].__getitem__, world["ssm"], HOME, now=_later(800))
    assert s1 in world["deprecations"] and c1 in world["deprecations"]


def test_the_published_latest_is_never_retired_even_when_older(world):
    s1, _ = world["images"][1]
    world["ssm"].put_parameter(Name="/bakehouse/images/al2023/latest", Value=s1, Type="String", Overwrite=True)
    result = run(_request(dry_run=False), world["ec2"].__getitem__, world["ssm"], HOME, now=_later(400))
    assert {i["ImageId"]: i["Action"] for i in result["Images"]}[s1] == "keep"
    assert s1 not in world["deprecations"]


def test_the_handler_defaults_to_dry_run_and_rejects_malformed_events_listing_every_problem():
    request = LifecycleRequest.parse(
        {"CopyRegions": ["eu-west-1"], "KeepNewest": 3, "KeepDays": 30, "GraceDays": 14, "ProdRetentionYears": 2}
    )
    assert request.dry_run is True
    with pytest.raises(MalformedEvent) as err:
        handler(
            {
                "CopyRegions": ["mars-1"],
                "KeepNewest": 0,
                "KeepDays": -1,
                "GraceDays": "soon",
                "ProdRetentionYears": 2,
                "DryRun": "maybe",
            },
            None,
        )
    for key in ("CopyRegions", "KeepNewest", "KeepDays", "GraceDays", "DryRun"):
        assert key in str(err.value)


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_the_handler_prints_the_dry_run_plan_and_changes_nothing(world, capsys):
    before = _state(world)
    result = handler(
        {"CopyRegions": [HOME, COPY], "KeepNewest": 1, "KeepDays": 0, "GraceDays": 14, "ProdRetentionYears": 2}, None
    )
    out = capsys.readouterr().out
    s1, c1 = world["images"][1]
    assert result["DryRun"] is True and result["Counts"]["deprecate"] == 2
    assert f"deprecate {s1} (al2023)" in out and f"would deprecate {c1} in {COPY}" in out
    assert _state(world) == before


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_a_run_queued_on_the_lifecycle_fifo_queue_is_parsed_from_its_record_body(world, capsys):
    # The schedule sends to the FIFO queue; the event source mapping delivers one record a batch.
    import json as _json

    body = {"CopyRegions": [HOME, COPY], "KeepNewest": 1, "KeepDays": 0, "GraceDays": 14, "ProdRetentionYears": 2}
    event = {
        "Records": [
            {
                "messageId": "m-1",
                "eventSource": "aws:sqs",
                "body": _json.dumps(body),
                "attributes": {"MessageGroupId": "image-lifecycle"},
            }
        ]
    }
    assert LifecycleRequest.from_event(event) == LifecycleRequest.parse(body)
    before = _state(world)
    assert handler(event, None)["Counts"]["deprecate"] == 2
    assert _state(world) == before  # still a dry run unless the body says otherwise


def test_a_queued_batch_of_more_than_one_run_is_refused():
    record = {"eventSource": "aws:sqs", "body": "{}"}
    with pytest.raises(MalformedEvent, match="one run"):
        LifecycleRequest.from_event({"Records": [record, record]})
    with pytest.raises(MalformedEvent, match="JSON"):
        LifecycleRequest.from_event({"Records": [{"eventSource": "aws:sqs", "body": "not json"}]})


# --- issue 15.6: every env's parameter keeps its image; one failure does not stop the run -----------
DEV = "222222222222"


def _scanner(account: str, region: str):
    """The workload account's BakehouseImageScanner session (moto keys state by the role's account)."""
    from tests.handlers._sessions import session

    creds = boto3.client("sts", region_name=HOME).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/BakehouseImageScanner", RoleSessionName="lifecycle"
    )["Credentials"]
    s = session(
        region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    return s.client("ec2"), s.client("ssm")


def _with_accounts(request: LifecycleRequest) -> LifecycleRequest:
    from dataclasses import replace

    return replace(request, accounts=(("dev", DEV),))


def test_an_image_an_envs_parameter_still_names_is_kept_however_old(world):
    (s1, c1), (s2, _) = world["images"][1], world["images"][2]
    _scanner(DEV, COPY)[1].put_parameter(Name="/bakehouse/dev/ami/al2023", Value=c1, Type="String")
    result = run(
        _with_accounts(_request(dry_run=False)), world["ec2"].__getitem__, world["ssm"], HOME, now=_later(400), workload=_scanner
    )
    decisions = {i["ImageId"]: i for i in result["Images"]}
    assert decisions[s1]["Action"] == "keep" and "/bakehouse/dev/ami/al2023" in decisions[s1]["Reason"]
    assert s1 not in world["deprecations"] and c1 not in world["deprecations"]
    assert decisions[s2]["Action"] == "deprecate"


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_an_envs_own_copy_named_by_its_parameter_keeps_the_source(world):
    s1, _ = world["images"][1]
    dev_ec2, dev_ssm = _scanner(DEV, HOME)
    own = golden_ami(dev_ec2, "bakehouse-al2023-1", {"bakehouse:source-ami": s1})  # copy-mode distribution
    dev_ssm.put_parameter(Name="/bakehouse/dev/ami/al2023", Value=own, Type="String")
    result = run(
        _with_accounts(_request(dry_run=False)), world["ec2"].__getitem__, world["ssm"], HOME, now=_later(400), workload=_scanner
    )
    assert {i["ImageId"]: i["Action"] for i in result["Images"]}[s1] == "keep"


def test_an_env_whose_parameters_cannot_be_read_blocks_retirement_and_is_reported(world):
    (s1, _), (s2, _) = world["images"][1], world["images"][2]
    run(_request(dry_run=False), world["ec2"].__getitem__, world["ssm"], HOME, now=_later(400))  # deprecated

    def unreadable(account, region):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole")

    with pytest.raises(LifecycleIncomplete) as raised:
        run(
            _with_accounts(_request(dry_run=False)),
            world["ec2"].__getitem__,
            world["ssm"],
            HOME,
            now=_later(415),
            workload=unreadable,
        )
    remaining = {i["ImageId"] for i in world["ec2"][HOME].describe_images(Owners=["self"])["Images"]}
    assert {s1, s2} <= remaining  # nothing deregistered while an env's pins are unknown
    assert DEV in str(raised.value) and raised.value.result["Counts"]["deregister"] == 0


class _FailingDeregister:
    def __init__(self, inner, image_id):
        self._inner, self.image_id = inner, image_id

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def deregister_image(self, **params):
        if params["ImageId"] == self.image_id:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "try again"}}, "DeregisterImage")
        return self._inner.deregister_image(**params)


@pytest.mark.slow  # a moto scenario of a quarter second or more: make test-slow and CI
def test_one_images_failure_is_reported_and_the_others_still_retire(world):
    (s1, _c1), (s2, c2) = world["images"][1], world["images"][2]
    run(_request(dry_run=False), world["ec2"].__getitem__, world["ssm"], HOME, now=_later(400))
    ec2 = {**world["ec2"], HOME: _FailingDeregister(world["ec2"][HOME], s1)}
    with pytest.raises(LifecycleIncomplete) as raised:
        run(_request(dry_run=False), ec2.__getitem__, world["ssm"], HOME, now=_later(415))
    remaining = {r: {i["ImageId"] for i in c.describe_images(Owners=["self"])["Images"]} for r, c in world["ec2"].items()}
    assert s2 not in remaining[HOME] and c2 not in remaining[COPY]  # the run went on past s1
    assert s1 in remaining[HOME] and s1 in str(raised.value)
    [failed] = [i for i in raised.value.result["Images"] if i["ImageId"] == s1]
    assert "InternalError" in failed["Error"]


def test_without_workload_accounts_the_pins_of_every_env_under_the_target_path_are_read(world):
    (s1, c1), (s2, _) = world["images"][1], world["images"][2]
    world["ssm"].put_parameter(Name="/bakehouse/factory/targets/dev", Value=DEV, Type="String")
    _scanner(DEV, COPY)[1].put_parameter(Name="/bakehouse/dev/ami/al2023", Value=c1, Type="String")
    request = LifecycleRequest.parse(
        {"CopyRegions": [HOME, COPY], "KeepNewest": 1, "KeepDays": 30, "GraceDays": 14, "ProdRetentionYears": 2, "DryRun": False}
    )
    assert request.accounts is None
    result = run(request, world["ec2"].__getitem__, world["ssm"], HOME, now=_later(400), workload=_scanner)
    decisions = {i["ImageId"]: i["Action"] for i in result["Images"]}
    assert decisions[s1] == "keep" and decisions[s2] == "deprecate"


def test_a_malformed_target_parameter_retires_nothing(world):
    from handlers.targets import MalformedTarget

    world["ssm"].put_parameter(Name="/bakehouse/factory/targets/dev", Value="22222222222", Type="String")
    with pytest.raises(MalformedTarget, match="/bakehouse/factory/targets/dev is '22222222222'"):
        run(_request(dry_run=False), world["ec2"].__getitem__, world["ssm"], HOME, now=_later(400), workload=_scanner)
    assert not world["deprecations"]
