"""Entry point the Pulumi CLI runs for `pulumi preview --policy-pack policy`."""

import sys
from pathlib import Path

from pulumi_policy import EnforcementLevel, PolicyPack

# The CLI runs this file from inside policy/; the modules import each other as the package `policy`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policy.policies import POLICIES  # noqa: E402

PolicyPack(
    "bakehouse",
    policies=POLICIES,
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Bakehouse guardrails: encryption, no public exposure, least privilege, approved AMIs, tags.",
)
