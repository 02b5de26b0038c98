"""The prod workload stack's incident-response accounts and how its roles' inline policies are read from a run."""

from __future__ import annotations

from tools.mockrun import StackRun

ACCOUNT, REGION, SECURITY = "666666666666", "eu-west-1", "222222222222"


def role_policy(run: StackRun, role_resource_name: str) -> str:
    role = run.named(role_resource_name)
    [policy] = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.inputs["role"] == f"{role.name}-id"]
    return policy.inputs["policy"]
