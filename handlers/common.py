"""What every handler shares: errors, retrying clients, cross-account sessions, tags.

Handlers run as Lambda functions and as SSM `aws:executeScript` steps, whose runtime offers the
standard library and boto3 only: nothing here (or in any handler) imports anything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# The shared names, re-exported: handlers written before handlers/contract.py import them from here.
from handlers.contract import ACCOUNT_ID as ACCOUNT_ID
from handlers.contract import AMI_ID as AMI_ID
from handlers.contract import FACTORY_SETTINGS_PARAMETER as FACTORY_SETTINGS_PARAMETER
from handlers.contract import INSTANCE_ID as INSTANCE_ID
from handlers.contract import REGION as REGION
from handlers.contract import TAG_BUILD_DATE as TAG_BUILD_DATE
from handlers.contract import TAG_BUILD_EXECUTION as TAG_BUILD_EXECUTION
from handlers.contract import TAG_COMMIT as TAG_COMMIT
from handlers.contract import TAG_FAMILY as TAG_FAMILY
from handlers.contract import TAG_PREFIX as TAG_PREFIX
from handlers.contract import TAG_RAN_IN as TAG_RAN_IN
from handlers.contract import TAG_SCAN_DATE as TAG_SCAN_DATE
from handlers.contract import TAG_SOURCE_AMI as TAG_SOURCE_AMI

# Adaptive mode backs off on throttling, which distribution and rescans hit when fanned out.
RETRY_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": 10})

# A boto3 client. boto3 ships no type information (and the Lambda runtime has no stubs), so a client and
# the responses it returns are Any: handlers check the fields they read instead of trusting a type.
AwsClient: TypeAlias = Any

T = TypeVar("T")


class BakehouseError(Exception):
    """Base of every handler failure; the message names the resource concerned."""


class MalformedEvent(BakehouseError):
    """The event does not have the shape the handler needs; raised before any AWS call."""

    def __init__(self, handler: str, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__(f"{handler}: malformed event: " + "; ".join(self.problems))


class EventReader:
    """Collects every problem of an event while reading typed fields, then raises them together."""

    def __init__(self, handler: str, event: Any):
        self.handler = handler
        self.problems: list[str] = []
        if not isinstance(event, Mapping):
            self.problems.append(f"event is {type(event).__name__}, expected an object")
            event = {}
        self.event = event

    def string(self, key: str, pattern: re.Pattern[str] | None = None, default: str | None = None) -> str:
        value = self.event.get(key, default)
        if not isinstance(value, str) or not value:
            self.problems.append(f"{key} is {value!r}, expected a non-empty string")
            return ""
        if pattern is not None and not pattern.fullmatch(value):
            self.problems.append(f"{key} is {value!r}, expected to match {pattern.pattern}")
        return value

    def strings(self, key: str, pattern: re.Pattern[str] | None = None, allow_empty: bool = False) -> tuple[str, ...]:
        value = self.event.get(key)
        if not isinstance(value, list | tuple) or (not value and not allow_empty):
            self.problems.append(f"{key} is {value!r}, expected a {'' if allow_empty else 'non-empty '}list of strings")
            return ()
        for item in value:
            if not isinstance(item, str) or (pattern is not None and not pattern.fullmatch(item)):
                self.problems.append(f"{key} has {item!r}" + (f", expected to match {pattern.pattern}" if pattern else ""))
        return tuple(value)

    def integer(self, key: str, minimum: int, maximum: int, default: int | None = None) -> int:
        value = self.event.get(key, default)
        if isinstance(value, str) and value.isdigit():
            value = int(value)  # SSM passes Integer parameters through as text in some paths
        if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
            self.problems.append(f"{key} is {value!r}, expected an integer from {minimum} to {maximum}")
            return minimum
        return value

    def boolean(self, key: str, default: bool | None = None) -> bool:
        value = self.event.get(key, default)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            self.problems.append(f"{key} is {value!r}, expected true or false")
            return False
        return value

    def done(self) -> None:
        if self.problems:
            raise MalformedEvent(self.handler, self.problems)


def client(service: str, region: str | None = None, session: boto3.Session | None = None) -> AwsClient:
    return (session or boto3.Session()).client(service, region_name=region, config=RETRY_CONFIG)


def assumed_session(sts: AwsClient, role_arn: str, session_name: str, region: str | None = None) -> boto3.Session:
    """A session in another account through the role given; sts is the caller's STS client."""
    creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64])["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )


def env_and_account(text: str) -> tuple[str, str]:
    """`dev=111122223333` as (env, account id); the caller has checked the shape."""
    env, _, account = text.partition("=")
    return env, account


def tags_to_dict(tags: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or ()}


def dict_to_tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


class PollTimeout(BakehouseError):
    """A resource did not reach the awaited state in time; the message names it."""


def poll(
    check: Callable[[], T | None],
    what: str,
    first_delay: float = 2.0,
    max_delay: float = 30.0,
    timeout: float = 900.0,
    sleep: Callable[[float], object] | None = None,
    clock: Callable[[], float] | None = None,
) -> T:
    """Call `check()` until it returns something other than None, backing off exponentially.

    AWS work such as AMI copies and Inspector scans finishes at unpredictable times: polling with a
    growing delay is cheaper on API quota than a fixed interval, and never waits a fixed worst case.
    """
    import time

    sleep = sleep or time.sleep
    clock = clock or time.monotonic
    start, waited = clock(), 0.0
    delay = first_delay
    while True:
        result = check()
        if result is not None:
            return result
        # Whichever is larger: wall time, or time asked of `sleep` (an injected sleep may not block).
        if max(clock() - start, waited) + delay > timeout:
            raise PollTimeout(f"{what}: not done after {timeout:g}s")
        sleep(delay)
        waited += delay
        # Never a hot loop, even when asked to start at 0 s (as tests against moto do).
        delay = min(max(delay * 2, 1.0), max(max_delay, 1.0))


# --- Parameter Store ---------------------------------------------------------------------------


class SettingsUnusable(BakehouseError):
    """The factory settings parameter is missing or malformed: nothing that depends on it may run."""


def parameter_value(ssm: AwsClient, name: str) -> str | None:
    """The parameter's value, or None when it does not exist (any other error is raised)."""
    try:
        value: str = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        return value
    except ClientError as err:
        if err.response["Error"]["Code"] == "ParameterNotFound":
            return None
        raise


def factory_settings(ssm: AwsClient) -> Mapping[str, Any]:
    """The factory settings as a JSON object; SettingsUnusable, naming the parameter, otherwise."""
    text = parameter_value(ssm, FACTORY_SETTINGS_PARAMETER)
    if text is None:
        raise SettingsUnusable(f"{FACTORY_SETTINGS_PARAMETER} does not exist")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise SettingsUnusable(f"{FACTORY_SETTINGS_PARAMETER} is not JSON: {err}") from err
    if not isinstance(raw, Mapping):
        raise SettingsUnusable(f"{FACTORY_SETTINGS_PARAMETER} is not a JSON object")
    return raw
