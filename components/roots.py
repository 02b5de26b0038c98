"""Which root component a stack's role builds."""

from __future__ import annotations

import pulumi

from estate.config import StackConfig

from .build_stack import BuildStack
from .org_stack import OrgStack
from .security_stack import SecurityStack
from .workload_stack import WorkloadStack

ROOTS = {"org": OrgStack, "security": SecurityStack, "build": BuildStack, "workload": WorkloadStack}


def build_root(cfg: StackConfig, opts: pulumi.ResourceOptions):
    return ROOTS[cfg.role](cfg.stack, cfg, opts)
