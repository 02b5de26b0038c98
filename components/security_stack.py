"""Root of the `security` stack (security / log-archive account)."""

from __future__ import annotations

import pulumi

from estate.config import StackConfig
from estate.naming import LOG_BUCKET_KINDS, central_bucket

from .account_storage import account_storage
from .secure_bucket import SecureBucket, SecureBucketArgs


class SecurityStack(pulumi.ComponentResource):
    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions):
        super().__init__("bakehouse:stack:Security", name, None, opts)
        storage = account_storage(name, cfg, self)
        child = pulumi.ResourceOptions(parent=self)
        self.log_buckets = {
            kind: SecureBucket(
                f"{name}-{kind}",
                SecureBucketArgs(purpose=f"log-archive-{kind}", kms_key_arn=storage.key.arn,
                                 access_log_bucket=storage.access_logs.name,
                                 bucket_name=central_bucket(cfg.estate, kind)),
                opts=child,
            )
            for kind in LOG_BUCKET_KINDS
        }
        self.exports = {
            "accountId": cfg.account_id,
            "kmsKeyArn": storage.key.arn,
            "accessLogBucket": storage.access_logs.name,
            "logBuckets": {kind: bucket.name for kind, bucket in self.log_buckets.items()},
        }
        self.register_outputs(self.exports)
