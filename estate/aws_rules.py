"""What AWS accepts, as config checks it: private ranges, schedule expressions, Availability Zones.

Pure standard library: the pydantic models (estate/models.py), the stack checks (estate/config.py)
and the role sections all ask here, so each rule has one definition.
"""

from __future__ import annotations

import ipaddress
import re

# The retention periods CloudWatch Logs accepts (CloudWatch Logs API reference, PutRetentionPolicy
# "retentionInDays"); none means never expire.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)

# RFC 1918 only. `ipaddress.is_private` also admits 100.64.0.0/10 (shared address space, RFC 6598),
# 192.0.0.0/24, 198.18.0.0/15, the documentation ranges and others: none of them is a VPC's to take.
RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def rfc1918_network(value: object) -> ipaddress.IPv4Network | None:
    """The network `value` names (host bits zero) if it lies inside an RFC 1918 block, else None."""
    if not isinstance(value, str):
        return None
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return None
    if not isinstance(net, ipaddress.IPv4Network):
        return None
    return net if any(net.subnet_of(block) for block in RFC1918) else None


# EventBridge Scheduler expressions (EventBridge Scheduler user guide, "Schedule types in EventBridge
# Scheduler"; CreateSchedule ScheduleExpression): rate(value unit) with a positive integer and
# minute(s)|hour(s)|day(s); cron(minutes hours day-of-month month day-of-week year), six fields, one of
# day-of-month and day-of-week being `?`; at(yyyy-mm-ddThh:mm:ss) for a one-time schedule.
RATE = re.compile(r"rate\(([1-9]\d*) (minute|minutes|hour|hours|day|days)\)")
CRON = re.compile(r"cron\(([^()\s]+(?: [^()\s]+){5})\)")
AT = re.compile(r"at\(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\)")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*?,/#-]+")
RECURRING_SCHEDULE = (
    "rate(N minutes|hours|days) or cron(minutes hours day-of-month month day-of-week year), with ? in exactly one "
    "of the two day fields"
)


def is_recurring_schedule(value: object) -> bool:
    """A rate() or a six-field cron() AWS accepts: what a factory or report clock must be."""
    if not isinstance(value, str):
        return False
    rate = RATE.fullmatch(value)
    if rate:
        # rate(1 day) but rate(2 days): AWS refuses the other pairings.
        return (rate.group(1) == "1") == (not rate.group(2).endswith("s"))
    cron = CRON.fullmatch(value)
    if not cron:
        return False
    fields = cron.group(1).split(" ")
    day_of_month, day_of_week = fields[2], fields[4]
    return all(_CRON_FIELD.fullmatch(f) for f in fields) and (day_of_month == "?") != (day_of_week == "?")


def is_schedule(value: object) -> bool:
    """Any EventBridge Scheduler expression, the one-time at() included."""
    return is_recurring_schedule(value) or (isinstance(value, str) and AT.fullmatch(value) is not None)


# Availability Zone letters by region (AWS general reference / EC2 user guide, "Regions and Availability
# Zones"; the letters are the zone names' suffixes, e.g. eu-west-1a). A region missing here is reported
# as missing from this table rather than guessed: add it from that page.
AZ_LETTERS: dict[str, str] = {
    "us-east-1": "abcdef",
    "us-east-2": "abc",
    "us-west-1": "ac",
    "us-west-2": "abcd",
    "ca-central-1": "abd",
    "eu-west-1": "abc",
    "eu-west-2": "abc",
    "eu-west-3": "abc",
    "eu-central-1": "abc",
    "eu-central-2": "abc",
    "eu-north-1": "abc",
    "eu-south-1": "abc",
    "ap-southeast-1": "abc",
    "ap-southeast-2": "abc",
    "ap-northeast-1": "acd",
    "ap-south-1": "abc",
}


def az_letters(region: str) -> str | None:
    return AZ_LETTERS.get(region)
