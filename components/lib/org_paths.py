"""Naming accounts by where they sit in the organization, so a policy stays one size at any account count.

An organization entity path is `o-<org>/r-<root>/ou-<parent>/.../ou-<ou>/` (IAM User Guide, "AWS global
condition context keys": aws:PrincipalOrgPaths, aws:ResourceOrgPaths; "Understand the AWS Organizations
entity path"). OU ids are unique within the organization, so `o-<org>/*/ou-<ou>/*` names exactly the
accounts in that OU or any OU beneath it, whatever the root id and the OUs above it.
"""

from __future__ import annotations

from collections.abc import Sequence


def ou_path_patterns(organization_id: str, ou_ids: Sequence[str]) -> list[str]:
    """StringLike patterns for aws:PrincipalOrgPaths / aws:ResourceOrgPaths (multivalued: ForAnyValue)."""
    if not ou_ids:
        raise ValueError("at least one OU id is needed to name accounts by OU")
    return [f"{organization_id}/*/{ou}/*" for ou in ou_ids]
