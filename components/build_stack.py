"""Root of the `build` stack (the AMI factory's account)."""

from __future__ import annotations

import pulumi

from estate.config import StackConfig
from estate.naming import bucket_name

from .account_storage import account_storage
from .secure_bucket import SecureBucket, SecureBucketArgs


class BuildStack(pulumi.ComponentResource):
    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions):
        super().__init__("bakehouse:stack:Build", name, None, opts)
        storage = account_storage(name, cfg, self)
        child = pulumi.ResourceOptions(parent=self)
        self.scripts_bucket = SecureBucket(
            f"{name}-scripts",
            SecureBucketArgs(purpose="build-scripts", kms_key_arn=storage.key.arn,
                             access_log_bucket=storage.access_logs.name,
                             bucket_name=bucket_name("scripts", cfg.account_id, cfg.region)),
            opts=child,
        )
        self.exports = {
            "accountId": cfg.account_id,
            "kmsKeyArn": storage.key.arn,
            "accessLogBucket": storage.access_logs.name,
            "scriptsBucket": self.scripts_bucket.name,
        }
        self.register_outputs(self.exports)
