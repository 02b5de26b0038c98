"""Root of a workload stack (dev, uat, prod: same code, different Pulumi.<stack>.yaml)."""

from __future__ import annotations

import pulumi

from estate.config import StackConfig

from .account_storage import account_storage


class WorkloadStack(pulumi.ComponentResource):
    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions):
        super().__init__("bakehouse:stack:Workload", name, None, opts)
        storage = account_storage(name, cfg, self)
        self.exports = {
            "kmsKeyArn": storage.key.arn,
        }
        self.register_outputs(self.exports)
