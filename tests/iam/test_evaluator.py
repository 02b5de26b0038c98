"""The one evaluator (tests/iam/evaluate.py) answers as AWS does where the two hand-written ones it
replaced disagreed, and it can say no."""

from __future__ import annotations

from tests.iam.evaluate import Simulation, allowed, simulate, with_full_aws_access

DEV = "444444444444"
ROLE = f"arn:aws:iam::{DEV}:role/app"
LAUNCH = f"arn:aws:ec2:eu-west-1:{DEV}:instance/*"


def _scp_denies(condition: dict, context: dict) -> bool:
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "RequireImdsv2", "Effect": "Deny", "Action": "ec2:RunInstances", "Resource": "*", "Condition": condition}
        ],
    }
    verdict = simulate([Simulation(ROLE, "ec2:RunInstances", LAUNCH, context, scps=with_full_aws_access([("root", [deny])]))])[0]
    return verdict.denied_by("scp") == ["RequireImdsv2"]


def test_a_negated_operator_matches_when_the_key_is_absent_so_the_deny_applies():
    # IAM User Guide, "IAM JSON policy elements: Condition operators": a key absent from the request
    # context makes a negated operator (StringNotEquals, StringNotLike, ArnNotLike) true. The old
    # tests/unit/_iam_eval.py said false here, so it passed launches the SCP really denies.
    assert _scp_denies({"StringNotEquals": {"ec2:MetadataHttpTokens": "required"}}, {})
    assert _scp_denies({"StringNotEquals": {"ec2:MetadataHttpTokens": "required"}}, {"ec2:MetadataHttpTokens": "optional"})
    assert not _scp_denies({"StringNotEquals": {"ec2:MetadataHttpTokens": "required"}}, {"ec2:MetadataHttpTokens": "required"})


def test_positive_operators_do_not_match_an_absent_key_and_if_exists_forms_do():
    # Same page, "...IfExists condition operators": an absent key makes the condition true.
    assert not _scp_denies({"StringEquals": {"ec2:MetadataHttpTokens": "optional"}}, {})
    assert _scp_denies({"StringEqualsIfExists": {"ec2:MetadataHttpTokens": "optional"}}, {})
    assert _scp_denies({"StringNotEqualsIfExists": {"ec2:MetadataHttpTokens": "required"}}, {})
    assert _scp_denies({"Null": {"ec2:MetadataHttpTokens": "true"}}, {})


def test_a_key_the_service_does_not_send_satisfies_no_condition():
    # ec2:InstanceID is not in S3's request context: the policy variable never resolves (issue 11, #14).
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::evidence/${ec2:InstanceID}/*"}],
    }
    context = {"ec2:InstanceID": "i-0123456789abcdef0"}
    assert not allowed(policy, "s3:PutObject", "arn:aws:s3:::evidence/i-0123456789abcdef0/memory", context)
    verdict = simulate(
        [
            Simulation(
                ROLE,
                "s3:PutObject",
                "arn:aws:s3:::evidence/i-0123456789abcdef0/memory",
                context,
                identity=(policy,),
                resource_account=DEV,
            )
        ]
    )[0]
    assert verdict.ignored_context_keys == ("ec2:InstanceID",)


def test_kms_encryption_context_keys_reach_the_condition():
    # AWS KMS Developer Guide, "kms:EncryptionContext:context-key"; the harness widens the library here.
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"StringLike": {"kms:EncryptionContext:PARAMETER_ARN": "arn:aws:ssm:*:parameter/app/*"}},
            }
        ],
    }
    key = f"arn:aws:kms:eu-west-1:{DEV}:key/k"
    assert allowed(
        policy, "kms:Decrypt", key, {"kms:EncryptionContext:PARAMETER_ARN": f"arn:aws:ssm:eu-west-1:{DEV}:parameter/app/x"}
    )
    assert not allowed(
        policy, "kms:Decrypt", key, {"kms:EncryptionContext:PARAMETER_ARN": f"arn:aws:ssm:eu-west-1:{DEV}:parameter/other"}
    )


def test_a_key_policy_is_needed_beside_the_identity_policy():
    identity = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}
    key = f"arn:aws:kms:eu-west-1:{DEV}:key/k"
    alone, delegated = simulate(
        [
            Simulation(ROLE, "kms:Decrypt", key, identity=(identity,)),
            Simulation(
                ROLE,
                "kms:Decrypt",
                key,
                identity=(identity,),
                resource_policy={
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{DEV}:root"}, "Action": "kms:*", "Resource": "*"}
                    ],
                },
            ),
        ]
    )
    assert not alone.allowed and delegated.allowed
