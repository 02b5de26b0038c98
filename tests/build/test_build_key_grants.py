"""Who may create grants on the build account's image keys, and for what (EBS for launching roles,
the Auto Scaling service-linked role of each workload account)."""

from __future__ import annotations

import json

import pytest
import yaml

from components.build.factory_keys import AUTOSCALING_GRANT_OPERATIONS, AUTOSCALING_ROLE_PATH
from tests.iam.evaluate import allowed
from tools.mockrun import PROJECT_DIR

BUILD, REGIONS = "333333333333", ("eu-central-1", "us-east-1")
WORKLOADS = ("444444444444", "555555555555", "666666666666")
KEYS = [("build-factory-key-key", "eu-west-1"), *((f"build-images-{r}-key", r) for r in REGIONS)]
AUTOMATION = f"arn:aws:iam::{BUILD}:role/BakehouseFactoryAutomation"


def as_principal(policy: str, principal: str) -> dict:
    """The statements of a key policy that admit the principal, by name or as "*" (the evaluator does not
    read Principal; a "*" statement's conditions say whom it admits)."""
    doc = json.loads(policy)

    def names(s):
        p = (s.get("Principal") or {}).get("AWS", [])
        return p if isinstance(p, list) else [p]

    return {"Version": doc["Version"], "Statement": [s for s in doc["Statement"] if principal in names(s) or "*" in names(s)]}


def org_id(_stack_run) -> str:
    return yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]["bakehouse:organizationId"]["value"]


def workload_ou_path(org: str) -> list[str]:
    # Pulumi.build.yaml's workloadOus, under the example root; the value AWS puts in aws:PrincipalOrgPaths
    return [f"{org}/r-exam/ou-ab12-wkld0001/"]


def slr(account: str) -> str:
    return f"arn:aws:iam::{account}:role/{AUTOSCALING_ROLE_PATH}"


@pytest.mark.parametrize("key_name, region", KEYS)
def test_factory_automation_may_let_ebs_create_grants_on_the_keys_it_launches_and_copies_with(stack_run, key_name, region):
    policy = stack_run("build").named(key_name).inputs["policy"]
    automation = as_principal(policy, AUTOMATION)
    via_ec2 = {"kms:ViaService": f"ec2.{region}.amazonaws.com", "kms:GrantIsForAWSResource": "true"}
    assert allowed(automation, "kms:CreateGrant", "*", via_ec2)
    assert not allowed(automation, "kms:CreateGrant", "*", via_ec2 | {"kms:GrantIsForAWSResource": "false"})


@pytest.mark.parametrize("key_name, region", KEYS)
def test_each_workload_account_may_grant_its_own_auto_scaling_role_the_launch_operations(stack_run, key_name, region):
    policy = stack_run("build").named(key_name).inputs["policy"]
    org = org_id(stack_run)
    for account in WORKLOADS:
        theirs = as_principal(policy, f"arn:aws:iam::{account}:root")
        # The grant is made by the workload account's deployer, calling KMS directly (no service in
        # between): GrantIsForAWSResource is false and there is no kms:ViaService.
        request = {
            "aws:PrincipalAccount": account,
            "aws:PrincipalOrgID": org,
            "aws:PrincipalOrgPaths": workload_ou_path(org),
            "kms:GrantIsForAWSResource": "false",
            "kms:GranteePrincipal": slr(account),
            "kms:GrantOperations": list(AUTOSCALING_GRANT_OPERATIONS),
        }
        assert allowed(theirs, "kms:CreateGrant", "*", request)
        assert not allowed(theirs, "kms:CreateGrant", "*", request | {"kms:GranteePrincipal": slr(BUILD)})
        assert not allowed(
            theirs, "kms:CreateGrant", "*", request | {"kms:GranteePrincipal": f"arn:aws:iam::{account}:role/Anyone"}
        )
        assert not allowed(
            theirs, "kms:CreateGrant", "*", request | {"kms:GrantOperations": [*AUTOSCALING_GRANT_OPERATIONS, "Encrypt"]}
        )
        assert not allowed(
            theirs,
            "kms:CreateGrant",
            "*",
            request | {"aws:PrincipalOrgID": "o-other00000", "aws:PrincipalOrgPaths": workload_ou_path("o-other00000")},
        )


def test_auto_scaling_grant_operations_cover_what_ebs_needs_to_launch_from_an_encrypted_image():
    # EC2 Auto Scaling user guide, "Required KMS key policy for use with encrypted volumes".
    assert {"Decrypt", "DescribeKey", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKeyWithoutPlaintext", "CreateGrant"} == set(
        AUTOSCALING_GRANT_OPERATIONS
    )


@pytest.mark.parametrize("key_name, region", KEYS)
def test_workload_use_of_image_keys_stays_inside_the_organization(stack_run, key_name, region):
    policy = stack_run("build").named(key_name).inputs["policy"]
    theirs = as_principal(policy, f"arn:aws:iam::{WORKLOADS[0]}:root")
    org = org_id(stack_run)
    via_ec2 = {
        "kms:ViaService": f"ec2.{region}.amazonaws.com",
        "aws:PrincipalOrgID": org,
        "aws:PrincipalOrgPaths": workload_ou_path(org),
    }
    assert allowed(theirs, "kms:Decrypt", "*", via_ec2)
    assert not allowed(
        theirs,
        "kms:Decrypt",
        "*",
        via_ec2 | {"aws:PrincipalOrgID": "o-other00000", "aws:PrincipalOrgPaths": workload_ou_path("o-other00000")},
    )
    # an account of the organization outside the workload OUs (the build or security account's OU)
    assert not allowed(theirs, "kms:Decrypt", "*", via_ec2 | {"aws:PrincipalOrgPaths": [f"{org}/r-exam/ou-ab12-core0001/"]})
