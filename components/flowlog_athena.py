"""VPC flow logs queryable in Athena: a Glue table over the central flow-log bucket with partition
projection (no crawler, no MSCK REPAIR), an encrypted workgroup, and a saved rejected-traffic query.

The table reads what the workload networks deliver: default (version 2) format, plain text, to
s3://<flowlogs bucket>/AWSLogs/<account>/vpcflowlogs/<region>/<yyyy>/<MM>/<dd>/.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from estate.config import EstateConfig
from estate.naming import central_bucket

DATABASE = "bakehouse_logs"
TABLE = "vpc_flow_logs"
# Default flow-log format, version 2, in delivery order.
COLUMNS = (
    ("version", "int"), ("account_id", "string"), ("interface_id", "string"), ("srcaddr", "string"),
    ("dstaddr", "string"), ("srcport", "int"), ("dstport", "int"), ("protocol", "bigint"),
    ("packets", "bigint"), ("bytes", "bigint"), ("start", "bigint"), ("end", "bigint"),
    ("action", "string"), ("log_status", "string"),
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
        "storage.location.template":
            f"s3://{bucket}/AWSLogs/${{source_account}}/vpcflowlogs/${{source_region}}/${{day}}",
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


@dataclass(frozen=True)
class FlowLogAthenaArgs:
    estate: EstateConfig
    results_bucket: pulumi.Input[str]
    results_key_arn: pulumi.Input[str]


class FlowLogAthena(pulumi.ComponentResource):
    def __init__(self, name: str, args: FlowLogAthenaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("bakehouse:security:FlowLogAthena", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        database = aws.glue.CatalogDatabase(f"{name}-database", name=DATABASE,
                                            description="Bakehouse central logs", opts=child)
        self.table = aws.glue.CatalogTable(
            f"{name}-table", name=TABLE, database_name=database.name, table_type="EXTERNAL_TABLE",
            parameters=projection_parameters(args.estate),
            partition_keys=[aws.glue.CatalogTablePartitionKeyArgs(name=n, type=t) for n, t in PARTITIONS],
            storage_descriptor=aws.glue.CatalogTableStorageDescriptorArgs(
                location=table_location(args.estate),
                input_format="org.apache.hadoop.mapred.TextInputFormat",
                output_format="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                ser_de_info=aws.glue.CatalogTableStorageDescriptorSerDeInfoArgs(
                    serialization_library="org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                    parameters={"field.delim": " ", "serialization.format": " "}),
                columns=[aws.glue.CatalogTableStorageDescriptorColumnArgs(name=n, type=t) for n, t in COLUMNS]),
            opts=child)
        self.workgroup = aws.athena.Workgroup(
            f"{name}-workgroup", name="bakehouse-security",
            configuration=aws.athena.WorkgroupConfigurationArgs(
                # Users cannot point results at an unencrypted or foreign location.
                enforce_workgroup_configuration=True,
                publish_cloudwatch_metrics_enabled=True,
                result_configuration=aws.athena.WorkgroupConfigurationResultConfigurationArgs(
                    output_location=pulumi.Output.concat("s3://", args.results_bucket, "/"),
                    encryption_configuration=aws.athena.WorkgroupConfigurationResultConfigurationEncryptionConfigurationArgs(
                        encryption_option="SSE_KMS", kms_key_arn=args.results_key_arn))),
            opts=child)
        self.rejected_query = aws.athena.NamedQuery(
            f"{name}-rejected-traffic", name="bakehouse-rejected-traffic", database=database.name,
            workgroup=self.workgroup.name, query=REJECTED_TRAFFIC_QUERY,
            description="VPC flows rejected by security groups or network ACLs in the last day", opts=child)
        self.register_outputs({"table": self.table.name, "workgroup": self.workgroup.name})
