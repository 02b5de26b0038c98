"""One ComponentResource per capability. Pure Pulumi: nothing here imports boto3."""
