"""VPC flow logs queryable in Athena: a Glue table over the central flow-log bucket with partition
projection (no crawler, no MSCK REPAIR), an encrypted workgroup, a saved rejected-traffic query, and the
analyst role that may run it (the only principal, besides the key's services, that can read the results).

The table reads what the workload networks deliver: default (version 2) format, plain text, to
s3://<flowlogs bucket>/AWSLogs/<account>/vpcflowlogs/<region>/<yyyy>/<MM>/<dd>/.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from estate.config import EstateConfig
from estate.naming import central_bucket, central_bucket_arn, role_arn

from ..lib.iam import document, statement

DATABASE = "bakehouse_logs"
WORKGROUP = "bakehouse-security"
# Athena writes each query's results under the workgroup's output location; nothing else goes there.
RESULTS_PREFIX = f"{WORKGROUP}/"
ANALYST_ROLE = "BakehouseFlowLogAnalyst"
ANALYST_SESSION_SECONDS = 3600
TABLE = "vpc_flow_logs"
# Default flow-log format, version 2, in delivery order.
COLUMNS = (
    ("version", "int"),
    ("account_id", "string"),
    ("interface_id", "string"),
    ("srcaddr", "string"),
    ("dstaddr", "string"),
    ("srcport", "int"),
    ("dstport", "int"),
    ("protocol", "bigint"),
    ("packets", "bigint"),
    ("bytes", "bigint"),
    ("start", "bigint"),
    ("end", "bigint"),
    ("action", "string"),
    ("log_status", "string"),
)
# Named to avoid the account_id column; projected, so queries must filter on them to stay cheap.
PARTITIONS = (("source_account", "string"), ("source_region", "string"), ("day", "string"))
PROJECTION_START = "2025/01/01"


def table_location(estate: EstateConfig) -> str:
    return f"s3://{central_bucket(estate, 'flowlogs')}/AWSLogs/"


def projection_parameters(estate: EstateConfig) -> dict[str, str]:
    bucket = central_bucket(estate, "flowlogs")
    return {
        "EXTERNAL": "TRUE",
        "skip.header.line.count": "1",
        "projection.enabled": "true",
        "projection.source_account.type": "enum",
        "projection.source_account.values": ",".join(a for a in estate.accounts.all_ids),
        "projection.source_region.type": "enum",
        "projection.source_region.values": ",".join(estate.allowed_regions),
        "projection.day.type": "date",
        "projection.day.format": "yyyy/MM/dd",
        "projection.day.range": f"{PROJECTION_START},NOW",
        "projection.day.interval": "1",
        "projection.day.interval.unit": "DAYS",
        "storage.location.template": f"s3://{bucket}/AWSLogs/${{source_account}}/vpcflowlogs/${{source_region}}/${{day}}",
    }


REJECTED_TRAFFIC_QUERY = f"""-- Rejected flows of the last day, busiest first. Narrow source_account / source_region to scan less.
SELECT source_account, source_region, interface_id, srcaddr, dstaddr, dstport, protocol,
       count(*) AS flows, sum(packets) AS packets
FROM {DATABASE}.{TABLE}
WHERE action = 'REJECT'
  AND day >= date_format(current_date - interval '1' day, '%Y/%m/%d')
GROUP BY source_account, source_region, interface_id, srcaddr, dstaddr, dstport, protocol
ORDER BY flows DESC
LIMIT 100
"""


def _via(region: str) -> list[str]:
    # Athena reads the data and writes SSE-KMS results through S3 with the caller's credentials; Athena
    # itself calls KMS for encrypted query metadata (Athena user guide, "Permissions to encrypted data in
    # Amazon S3").
    return [f"s3.{region}.amazonaws.com", f"athena.{region}.amazonaws.com"]


def analyst_key_statements(account_id: str, region: str) -> list[dict]:
    """For the results key's policy: the analyst role may encrypt and read query results, only through
    S3 or Athena. Named by aws:PrincipalArn under the account principal, because a key policy naming a
    role that does not exist yet is rejected, and the role is created after the key."""
    return [
        statement(
            "FlowLogAnalystQueryResults",
            ["kms:GenerateDataKey", "kms:Decrypt"],
            ["*"],
            principals={"AWS": f"arn:aws:iam::{account_id}:root"},
            conditions={
                "ArnEquals": {"aws:PrincipalArn": role_arn(account_id, ANALYST_ROLE)},
                "StringEquals": {"kms:CallerAccount": account_id, "kms:ViaService": _via(region)},
            },
        )
    ]


def analyst_trust(account_id: str) -> dict:
    """People of the security account, signed in with MFA within the hour."""
    return statement(
        "SecurityAccountPeopleWithMfa",
        ["sts:AssumeRole"],
        principals={"AWS": f"arn:aws:iam::{account_id}:root"},
        conditions={
            "Bool": {"aws:MultiFactorAuthPresent": "true"},
            "NumericLessThan": {"aws:MultiFactorAuthAge": str(ANALYST_SESSION_SECONDS)},
        },
    )


def analyst_statements(
    estate: EstateConfig, account_id: str, region: str, results_bucket_arn: str, key_arns: list[pulumi.Input[str]]
) -> list[dict]:
    athena = f"arn:aws:athena:{region}:{account_id}"
    glue = f"arn:aws:glue:{region}:{account_id}"
    flowlogs = central_bucket_arn(estate, "flowlogs")
    return [
        statement(
            "QueryInTheSecurityWorkgroup",
            [
                "athena:StartQueryExecution",
                "athena:StopQueryExecution",
                "athena:GetQueryExecution",
                "athena:GetQueryResults",
                "athena:GetQueryResultsStream",
                "athena:ListQueryExecutions",
                "athena:BatchGetQueryExecution",
                "athena:GetWorkGroup",
                "athena:GetNamedQuery",
                "athena:ListNamedQueries",
                "athena:BatchGetNamedQuery",
            ],
            [f"{athena}:workgroup/{WORKGROUP}"],
        ),
        statement(
            "BrowseTheCatalog",
            [
                "athena:GetDataCatalog",
                "athena:GetDatabase",
                "athena:ListDatabases",
                "athena:GetTableMetadata",
                "athena:ListTableMetadata",
            ],
            [f"{athena}:datacatalog/AwsDataCatalog"],
        ),
        statement(
            "ReadTheFlowLogTable",
            ["glue:GetDatabase", "glue:GetTable", "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition"],
            [f"{glue}:catalog", f"{glue}:database/{DATABASE}", f"{glue}:table/{DATABASE}/{TABLE}"],
        ),
        statement("ListFlowLogs", ["s3:ListBucket", "s3:GetBucketLocation"], [flowlogs]),
        statement("ReadFlowLogs", ["s3:GetObject"], [f"{flowlogs}/AWSLogs/*"]),
        statement("ResultsBucket", ["s3:ListBucket", "s3:GetBucketLocation"], [results_bucket_arn]),
        statement(
            "WriteAndReadResults",
            ["s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
            [f"{results_bucket_arn}/{RESULTS_PREFIX}*"],
        ),
        # The flow-log key delegates to this account's IAM (through S3 only); the results key names the role.
        statement(
            "UseLogAndResultsKeysThroughS3AndAthena",
            ["kms:Decrypt", "kms:GenerateDataKey"],
            key_arns,
            conditions={"StringEquals": {"kms:ViaService": _via(region)}},
        ),
    ]


@dataclass(frozen=True)
class FlowLogAthenaArgs:
    """results_bucket / results_key_arn: where the workgroup writes (the results key's policy must carry
    analyst_key_statements); flowlog_key_arn: the log archive's flow-log key, which the analyst reads with."""

    estate: EstateConfig
    account_id: str
    region: str
    results_bucket: str
    results_key_arn: pulumi.Input[str]
    flowlog_key_arn: pulumi.Input[str]


class FlowLogAthena(pulumi.ComponentResource):
    def __init__(self, name: str, args: FlowLogAthenaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:security:FlowLogAthena", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        database = aws.glue.CatalogDatabase(f"{name}-database", name=DATABASE, description="Bakehouse central logs", opts=child)
        self.table = aws.glue.CatalogTable(
            f"{name}-table",
            name=TABLE,
            database_name=database.name,
            table_type="EXTERNAL_TABLE",
            parameters=projection_parameters(args.estate),
            partition_keys=[aws.glue.CatalogTablePartitionKeyArgs(name=n, type=t) for n, t in PARTITIONS],
            storage_descriptor=aws.glue.CatalogTableStorageDescriptorArgs(
                location=table_location(args.estate),
                input_format="org.apache.hadoop.mapred.TextInputFormat",
                output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                ser_de_info=aws.glue.CatalogTableStorageDescriptorSerDeInfoArgs(
                    serialization_library="org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                    parameters={"field.delim": " ", "serialization.format": " "},
                ),
                columns=[aws.glue.CatalogTableStorageDescriptorColumnArgs(name=n, type=t) for n, t in COLUMNS],
            ),
            opts=child,
        )
        self.workgroup = aws.athena.Workgroup(
            f"{name}-workgroup",
            name=WORKGROUP,
            configuration=aws.athena.WorkgroupConfigurationArgs(
                # Users cannot point results at an unencrypted or foreign location.
                enforce_workgroup_configuration=True,
                publish_cloudwatch_metrics_enabled=True,
                result_configuration=aws.athena.WorkgroupConfigurationResultConfigurationArgs(
                    output_location=f"s3://{args.results_bucket}/{RESULTS_PREFIX}",
                    encryption_configuration=aws.athena.WorkgroupConfigurationResultConfigurationEncryptionConfigurationArgs(
                        encryption_option="SSE_KMS", kms_key_arn=args.results_key_arn
                    ),
                ),
            ),
            opts=child,
        )
        self.rejected_query = aws.athena.NamedQuery(
            f"{name}-rejected-traffic",
            name="bakehouse-rejected-traffic",
            database=database.name,
            workgroup=self.workgroup.name,
            query=REJECTED_TRAFFIC_QUERY,
            description="VPC flows rejected by security groups or network ACLs in the last day",
            opts=child,
        )
        self.analyst = aws.iam.Role(
            f"{name}-analyst",
            name=ANALYST_ROLE,
            max_session_duration=ANALYST_SESSION_SECONDS,
            description="Queries VPC flow logs in the bakehouse-security Athena workgroup (MFA, one hour)",
            assume_role_policy=document(analyst_trust(args.account_id)),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-analyst",
            role=self.analyst.id,
            policy=document(
                *analyst_statements(
                    args.estate,
                    args.account_id,
                    args.region,
                    f"arn:aws:s3:::{args.results_bucket}",
                    [args.flowlog_key_arn, args.results_key_arn],
                )
            ),
            opts=child,
        )
        self.register_outputs({"table": self.table.name, "workgroup": self.workgroup.name, "analyst_role": self.analyst.arn})
