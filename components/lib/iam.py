"""IAM policy documents built as data, so preview, mocks and the policy pack all see them.

`aws.iam.get_policy_document_output` is an invoke: under a plain mock runtime it returns nothing,
and in a real preview it stays unknown whenever a statement names a resource not yet created, so
CrossGuard could not judge it. A document built with `Output.json_dumps` is known as soon as its
inputs are, which keeps the least-privilege checks honest offline and in PR previews.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi

VERSION = "2012-10-17"


def statement(
    sid: str,
    actions: Sequence[str] = (),
    resources: Sequence[pulumi.Input[str]] = (),
    *,
    effect: str = "Allow",
    principals: Mapping[str, Any] | str | None = None,
    conditions: Mapping[str, Mapping[str, Any]] | None = None,
    not_actions: Sequence[str] = (),
    not_resources: Sequence[pulumi.Input[str]] = (),
) -> dict[str, Any]:
    if effect not in ("Allow", "Deny"):
        raise ValueError(f"statement {sid}: effect is {effect!r}; allowed: Allow, Deny")
    if bool(actions) == bool(not_actions):
        raise ValueError(f"statement {sid}: give exactly one of actions or not_actions")
    stmt: dict[str, Any] = {"Sid": sid, "Effect": effect}
    if principals is not None:
        stmt["Principal"] = principals
    if actions:
        stmt["Action"] = list(actions)
    if not_actions:
        stmt["NotAction"] = list(not_actions)
    if resources:
        stmt["Resource"] = list(resources)
    if not_resources:
        stmt["NotResource"] = list(not_resources)
    if conditions:
        stmt["Condition"] = {op: dict(kv) for op, kv in conditions.items()}
    return stmt


def document(*statements: Mapping[str, Any]) -> pulumi.Output[str]:
    sids = [s["Sid"] for s in statements]
    dupes = sorted({s for s in sids if sids.count(s) > 1})
    if dupes:
        raise ValueError(f"policy document repeats statement ids: {', '.join(dupes)}")
    return pulumi.Output.json_dumps({"Version": VERSION, "Statement": list(statements)})


def assume_role_document(*statements: Mapping[str, Any]) -> pulumi.Output[str]:
    return document(*statements)


def service_trust(service: str, source_account: str) -> dict[str, Any]:
    """Trust a service principal, guarded against the confused deputy by the source account."""
    return statement(
        "TrustService",
        ["sts:AssumeRole"],
        principals={"Service": service},
        conditions={"StringEquals": {"aws:SourceAccount": source_account}},
    )
