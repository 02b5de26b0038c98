"""GuardDuty findings as EventBridge delivers them. moto 5.2.5 keeps detectors but cannot produce a
finding, so tests build the event GuardDuty would send and put it on a (moto) event bus, where the
real rule pattern and input transformer are applied by moto's EventBridge. (AWS reserves `aws.*`
sources for its services; moto's PutEvents accepts them, which is what makes this possible.)

The shape follows GuardDuty's finding format (schemaVersion 2.0) for an EC2 finding, trimmed to the
fields rules and playbooks read; severity is GuardDuty's number (low 1-3.9, medium 4-6.9, high 7-8.9,
critical 9-10).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

EC2_FINDING_TYPES = (
    "UnauthorizedAccess:EC2/SSHBruteForce",
    "Backdoor:EC2/C&CActivity.B!DNS",
    "CryptoCurrency:EC2/BitcoinTool.B!DNS",
    "Trojan:EC2/DropPoint",
)


def finding_detail(
    instance_id: str,
    severity: float,
    *,
    finding_type: str = EC2_FINDING_TYPES[0],
    account: str = "123456789012",
    region: str = "eu-west-1",
    finding_id: str | None = None,
    image_id: str = "ami-0b0a5e0000000000a",
) -> dict[str, Any]:
    finding_id = finding_id or uuid.uuid4().hex
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "schemaVersion": "2.0",
        "accountId": account,
        "region": region,
        "partition": "aws",
        "id": finding_id,
        "type": finding_type,
        "severity": severity,
        "arn": f"arn:aws:guardduty:{region}:{account}:detector/d0example/finding/{finding_id}",
        "title": f"{finding_type} on {instance_id}",
        "description": f"{finding_type} involving {instance_id}.",
        "createdAt": now,
        "updatedAt": now,
        "resource": {
            "resourceType": "Instance",
            "instanceDetails": {
                "instanceId": instance_id,
                "imageId": image_id,
                "instanceState": "running",
                "instanceType": "t3.medium",
                "networkInterfaces": [],
            },
        },
        "service": {
            "serviceName": "guardduty",
            "detectorId": "d0example",
            "count": 1,
            "archived": False,
            "eventFirstSeen": now,
            "eventLastSeen": now,
            "resourceRole": "TARGET",
        },
    }


def finding_entry(instance_id: str, severity: float, **kw: Any) -> dict[str, str]:
    """A PutEvents entry carrying the finding, with GuardDuty's source and detail type."""
    return {
        "Source": "aws.guardduty",
        "DetailType": "GuardDuty Finding",
        "Detail": json.dumps(finding_detail(instance_id, severity, **kw)),
    }
