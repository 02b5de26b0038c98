"""Data at rest: S3 buckets, EBS volumes, SNS topics and SQS queues.

A bucket's encryption, versioning, public access block and policy are separate resources in
pulumi-aws 7, so those rules are stack policies: each bucket is joined with the resources whose
`bucket` property depends on it (CrossGuard's property dependencies), or names it literally.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .support import (
    UNKNOWN,
    Config,
    Res,
    as_list,
    get,
    of_types,
    resource_policy,
    stack_policy,
    statements,
    str_list,
    truthy,
)

BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
ENCRYPTION_TYPES = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
VERSIONING_TYPES = ("aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2")
PUBLIC_ACCESS_TYPES = ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",)
POLICY_TYPES = ("aws:s3/bucketPolicy:BucketPolicy",)
ACL_TYPES = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
OBJECT_TYPES = ("aws:s3/bucketObject:BucketObject", "aws:s3/bucketObjectv2:BucketObjectv2", "aws:s3/BucketObject:BucketObject")
PUBLIC_ACLS = {"public-read", "public-read-write", "authenticated-read"}
PUBLIC_GRANTEES = ("http://acs.amazonaws.com/groups/global/AllUsers", "http://acs.amazonaws.com/groups/global/AuthenticatedUsers")
# S3 server access logging delivers only to SSE-S3 buckets; the one bucket of that purpose per
# account is the single admitted exception to "KMS everywhere".
ACCESS_LOG_PURPOSE = "access-logs"
AWS_MANAGED_KEY_ALIASES = {"alias/aws/s3", "alias/aws/sns", "alias/aws/sqs", "alias/aws/ebs"}


def companions(bucket: Res, resources: Iterable[Res], types: Iterable[str]) -> list[Res]:
    """Resources of `types` configuring `bucket`: by property dependency, else by literal name."""
    wanted = set(types)
    own_name = bucket.get("bucket")
    found = []
    for res in resources:
        if res.type not in wanted:
            continue
        if bucket.urn in res.property_dependencies.get("bucket", ()):
            found.append(res)
        elif isinstance(own_name, str) and res.get("bucket") == own_name:
            found.append(res)
    return found


def _buckets(resources: list[Res]) -> Iterator[Res]:
    return of_types(resources, *BUCKET_TYPES)


def _is_customer_key(key_id: object) -> bool | None:
    if key_id is UNKNOWN:
        return None
    return isinstance(key_id, str) and bool(key_id) and key_id not in AWS_MANAGED_KEY_ALIASES


def _encryption_rules(bucket: Res, resources: list[Res]) -> list:
    rules = []
    for config in companions(bucket, resources, ENCRYPTION_TYPES):
        rules += [get(rule, "applyServerSideEncryptionByDefault") for rule in as_list(config.get("rules"))]
    inline = bucket.get("serverSideEncryptionConfiguration", "rule", "applyServerSideEncryptionByDefault")
    if inline is not None:
        rules.append(inline)
    return rules


def check_bucket_kms(resources: list[Res], config: Config) -> Iterator[tuple[str, str]]:
    for bucket in _buckets(resources):
        rules = _encryption_rules(bucket, resources)
        if not rules:
            yield bucket.urn, f"bucket {bucket.name} has no default encryption configuration"
            continue
        purpose = bucket.get("tags", "bakehouse:purpose")
        for rule in rules:
            algorithm, key = get(rule, "sseAlgorithm"), get(rule, "kmsMasterKeyId")
            if algorithm is UNKNOWN or rule is UNKNOWN:
                continue
            if algorithm == "AES256" and purpose == ACCESS_LOG_PURPOSE:
                continue  # S3 log delivery cannot write to SSE-KMS buckets
            if algorithm not in ("aws:kms", "aws:kms:dsse"):
                yield (
                    bucket.urn,
                    (
                        f"bucket {bucket.name} is encrypted with {algorithm or 'nothing'}, not a "
                        "customer-managed KMS key (only the access-log bucket may use AES256)"
                    ),
                )
            elif _is_customer_key(key) is False:
                yield bucket.urn, f"bucket {bucket.name} uses {key or 'the AWS-managed key'}, not a customer-managed KMS key"


def check_bucket_versioning(resources: list[Res], config: Config) -> Iterator[tuple[str, str]]:
    for bucket in _buckets(resources):
        statuses = [c.get("versioningConfiguration", "status") for c in companions(bucket, resources, VERSIONING_TYPES)]
        if truthy(bucket.get("versioning", "enabled")):
            statuses.append("Enabled")
        if UNKNOWN in statuses or "Enabled" in statuses:
            continue
        shown = ", ".join(str(s) for s in statuses) or "no versioning configuration"
        yield bucket.urn, f"bucket {bucket.name} is not versioned ({shown})"


PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def check_bucket_public_access(resources: list[Res], config: Config) -> Iterator[tuple[str, str]]:
    for bucket in _buckets(resources):
        blocks = companions(bucket, resources, PUBLIC_ACCESS_TYPES)
        if not blocks:
            yield bucket.urn, f"bucket {bucket.name} has no public access block"
            continue
        for block in blocks:
            off = [flag for flag in PUBLIC_ACCESS_FLAGS if truthy(block.get(flag)) is not True and block.get(flag) is not UNKNOWN]
            if off:
                yield bucket.urn, f"bucket {bucket.name}: public access block {block.name} leaves {', '.join(off)} off"


def denies_insecure_transport(document: object) -> bool | None:
    found = statements(document)
    if found is UNKNOWN:
        return None
    for stmt in found:
        actions = {a.lower() for a in str_list(stmt.get("Action"))}
        principal = stmt.get("Principal")
        everyone = principal == "*" or (isinstance(principal, dict) and "*" in str_list(principal.get("AWS")))
        condition = get(stmt, "Condition", "Bool", "aws:SecureTransport")
        if stmt.get("Effect") == "Deny" and everyone and actions & {"s3:*", "*"} and str(condition).lower() == "false":
            return True
    return False


def check_bucket_tls_only(resources: list[Res], config: Config) -> Iterator[tuple[str, str]]:
    for bucket in _buckets(resources):
        documents = [p.get("policy") for p in companions(bucket, resources, POLICY_TYPES)]
        if bucket.get("policy") is not None:
            documents.append(bucket.get("policy"))
        verdicts = [denies_insecure_transport(d) for d in documents]
        if True in verdicts or None in verdicts:
            continue
        yield bucket.urn, (f"bucket {bucket.name} has no policy denying s3:* to everyone when aws:SecureTransport is false")


def check_no_public_acl(res: Res, config: Config) -> Iterator[str]:
    acl = res.get("acl")
    if isinstance(acl, str) and acl in PUBLIC_ACLS:
        yield f"{res.name} sets the canned ACL {acl}"
    for grant in as_list(res.get("accessControlPolicy", "grants")):
        uri = get(grant, "grantee", "uri")
        if isinstance(uri, str) and uri in PUBLIC_GRANTEES:
            yield f"{res.name} grants {get(grant, 'permission')} to {uri.rsplit('/', 1)[-1]}"


def check_volume_encrypted(res: Res, config: Config) -> Iterator[str]:
    encrypted = res.get("encrypted")
    if encrypted is not UNKNOWN and truthy(encrypted) is not True:
        yield f"EBS volume {res.name} is not encrypted"


def check_messaging_kms(res: Res, config: Config) -> Iterator[str]:
    key = res.get("kmsMasterKeyId")
    if _is_customer_key(key) is False:
        kind = "topic" if res.type.startswith("aws:sns") else "queue"
        yield (f"{kind} {res.name} is not encrypted with a customer-managed KMS key (kmsMasterKeyId is {key or 'unset'})")


POLICIES = [
    stack_policy(
        "s3-bucket-kms-encryption",
        "S3 buckets are encrypted by default with a customer-managed KMS key (access-log bucket: SSE-S3).",
        "Create buckets through components.lib.secure_bucket.SecureBucket with kms_key_arn set.",
        check_bucket_kms,
    ),
    stack_policy(
        "s3-bucket-versioned",
        "S3 buckets have versioning enabled.",
        "Add an aws.s3.BucketVersioning with status Enabled (SecureBucket does).",
        check_bucket_versioning,
    ),
    stack_policy(
        "s3-bucket-public-access-blocked",
        "S3 buckets block public access with all four public access block settings.",
        "Add an aws.s3.BucketPublicAccessBlock with all four flags true (SecureBucket does).",
        check_bucket_public_access,
    ),
    stack_policy(
        "s3-bucket-tls-only",
        "S3 bucket policies deny every request not made over TLS.",
        "Attach a bucket policy with a Deny on s3:* for Principal * when aws:SecureTransport is false.",
        check_bucket_tls_only,
    ),
    resource_policy(
        "s3-no-public-acl",
        "S3 buckets and objects grant nothing to AllUsers or AuthenticatedUsers through ACLs.",
        "Drop the ACL; keep ownership controls at BucketOwnerEnforced so ACLs are disabled.",
        BUCKET_TYPES + ACL_TYPES + OBJECT_TYPES,
        check_no_public_acl,
    ),
    resource_policy(
        "ebs-volume-encrypted",
        "EBS volumes are encrypted.",
        "Set encrypted=True and kms_key_id to the account's customer-managed key.",
        ("aws:ebs/volume:Volume",),
        check_volume_encrypted,
    ),
    resource_policy(
        "messaging-kms-encrypted",
        "SNS topics and SQS queues are encrypted with a customer-managed KMS key.",
        "Set kms_master_key_id to a customer-managed key ARN (not alias/aws/sns or alias/aws/sqs).",
        ("aws:sns/topic:Topic", "aws:sqs/queue:Queue"),
        check_messaging_kms,
    ),
]
