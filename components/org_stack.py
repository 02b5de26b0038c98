"""Root of the `org` stack (management account)."""

from __future__ import annotations

import pulumi

from estate.config import StackConfig

from .account_storage import account_storage


class OrgStack(pulumi.ComponentResource):
    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions):
        super().__init__("bakehouse:stack:Org", name, None, opts)
        storage = account_storage(name, cfg, self)
        self.exports = {
            "accountId": cfg.account_id,
            "kmsKeyArn": storage.key.arn,
            "accessLogBucket": storage.access_logs.name,
        }
        self.register_outputs(self.exports)
