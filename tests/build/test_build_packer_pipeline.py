"""The Packer engine in the build stack: per-family engine config, CodePipeline -> CodeBuild in the
build VPC, the ECR twin (immutable, KMS, enhanced scanning), least-privilege roles, the scan rule."""

from __future__ import annotations

import copy
import json

import pytest

from components.build.factory_config import factory_config
from components.build.packer_pipeline import BUNDLE_KEY, PACKER_BUILD_ROLE, TWIN_REPOSITORY, twin_scan_event_pattern
from estate.config import ConfigError
from tests.build._build_config_support import build_cfg, shipped_factory
from tests.iam.event_patterns import event_matches

REPO_ARN = "arn:aws:ecr:eu-west-1:333333333333:repository/bakehouse/provisioning-twin"


def test_engine_defaults_to_ssm_and_the_shipped_config_builds_one_family_with_packer():
    factory = factory_config(build_cfg(shipped_factory()))
    assert {f.name: f.engine for f in factory.families} == {"al2023": "ssm", "ubuntu2404": "packer"}


def test_unknown_engine_is_refused_naming_the_key_and_the_choices():
    raw = copy.deepcopy(shipped_factory())
    raw["families"]["al2023"]["engine"] = "ami-builder"
    with pytest.raises(ConfigError) as err:
        factory_config(build_cfg(raw))
    assert "bakehouse:factory.families.al2023.engine" in str(err.value) and "ssm, packer" in str(err.value)


def test_packer_family_without_the_hashicorp_release_domain_in_egress_is_refused():
    raw = copy.deepcopy(shipped_factory())
    raw["egressDomains"] = [d for d in raw["egressDomains"] if d != "releases.hashicorp.com"]
    with pytest.raises(ConfigError) as err:
        factory_config(build_cfg(raw))
    assert "releases.hashicorp.com" in str(err.value)


def test_no_packer_family_declares_no_packer_resources(monkeypatch):
    raw = copy.deepcopy(shipped_factory())
    for spec in raw["families"].values():
        spec.pop("engine", None)
    factory = factory_config(build_cfg(raw))
    assert factory.packer_families == ()


def test_codebuild_runs_packer_inside_the_build_subnets_with_encrypted_logs(stack_run):
    run = stack_run("build")
    (project,) = run.of_type("aws:codebuild/project:Project")
    inputs = project.inputs
    assert inputs["vpcConfig"]["subnets"] and inputs["vpcConfig"]["securityGroupIds"]
    assert inputs["environment"]["privilegedMode"] is True, "the docker source needs the daemon"
    assert inputs["source"]["buildspec"] == "packer/buildspec.yml"
    assert inputs["encryptionKey"], "artifacts encrypted with the engine key"
    (group,) = [g for g in run.of_type("aws:cloudwatch/logGroup:LogGroup") if g.inputs["name"] == "/bakehouse/packer"]
    assert group.inputs.get("kmsKeyId") and inputs["logsConfig"]["cloudwatchLogs"]["groupName"] == "/bakehouse/packer"


def test_one_pipeline_per_packer_family_from_the_versioned_bundle(stack_run):
    pipelines = stack_run("build").of_type("aws:codepipeline/pipeline:Pipeline")
    assert [p.inputs["name"] for p in pipelines] == ["bakehouse-packer-ubuntu2404"]
    (pipeline,) = pipelines
    (store,) = pipeline.inputs["artifactStores"]
    assert store["encryptionKey"]["type"] == "KMS"
    source, build = pipeline.inputs["stages"]
    (action,) = source["actions"]
    assert action["provider"] == "S3" and action["configuration"]["S3ObjectKey"] == BUNDLE_KEY
    overrides = json.loads(build["actions"][0]["configuration"]["EnvironmentVariables"])
    assert {"name": "FAMILY", "value": "ubuntu2404", "type": "PLAINTEXT"} in overrides
    assert any(o["value"] == "#{SourceVariables.VersionId}" for o in overrides), "builds exactly that version"


def test_twin_repository_is_immutable_kms_encrypted_and_enhanced_scanned(stack_run):
    run = stack_run("build")
    (repo,) = run.of_type("aws:ecr/repository:Repository")
    assert repo.inputs["name"] == TWIN_REPOSITORY and repo.inputs["imageTagMutability"] == "IMMUTABLE"
    (enc,) = repo.inputs["encryptionConfigurations"]
    assert enc["encryptionType"] == "KMS" and enc["kmsKey"]
    (scanning,) = run.of_type("aws:ecr/registryScanningConfiguration:RegistryScanningConfiguration")
    assert scanning.inputs["scanType"] == "ENHANCED"
    (rule,) = scanning.inputs["rules"]
    assert rule["repositoryFilters"] == [{"filter": "bakehouse/*", "filterType": "WILDCARD"}]


def _build_policy(run) -> dict:
    (policy,) = [p for p in run.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("packer-build-policy")]
    return json.loads(policy.inputs["policy"])


def test_build_role_may_start_only_the_release_document(stack_run):
    statements = _build_policy(stack_run("build"))["Statement"]
    starts = [s for s in statements if "ssm:StartAutomationExecution" in s["Action"]]
    assert [r for s in starts for r in s["Resource"]] == [
        "arn:aws:ssm:eu-west-1:333333333333:automation-definition/Bakehouse-ReleaseImage:*"
    ]


def test_build_role_terminates_and_images_only_instances_packer_tagged(stack_run):
    statements = _build_policy(stack_run("build"))["Statement"]
    for s in statements:
        if {"ec2:TerminateInstances", "ec2:StopInstances"} & set(s["Action"]):
            assert s["Condition"] == {"StringEquals": {"ec2:ResourceTag/bakehouse:built-by": "packer"}}
    launches = [s for s in statements if s["Action"] == ["ec2:RunInstances"] and any(":instance/" in r for r in s["Resource"])]
    assert launches and all(s["Condition"]["StringEquals"]["aws:RequestTag/bakehouse:built-by"] == "packer" for s in launches)


def test_build_role_pushes_to_the_twin_repository_only(stack_run):
    statements = _build_policy(stack_run("build"))["Statement"]
    pushes = [s for s in statements if "ecr:PutImage" in s["Action"]]
    assert len(pushes) == 1 and all(
        r.endswith(":repository/" + TWIN_REPOSITORY) or "repository" in r for r in pushes[0]["Resource"]
    )
    assert all("*" not in r for r in pushes[0]["Resource"])


def test_factory_key_admits_the_packer_build_role_as_a_launcher(stack_run):
    run = stack_run("build")
    (key,) = [k for k in run.of_type("aws:kms/key:Key") if "factory-key" in k.name]
    policy = json.loads(key.inputs["policy"])
    role = f"arn:aws:iam::333333333333:role/{PACKER_BUILD_ROLE}"
    grants = [s for s in policy["Statement"] if s["Sid"] == "LaunchersEbsGrants"]
    assert grants and role in grants[0]["Principal"]["AWS"]


SCAN_EVENT = {
    "source": "aws.inspector2",
    "detail-type": "Inspector2 Scan",
    "resources": [REPO_ARN],
    "detail": {
        "scan-status": "INITIAL_SCAN_COMPLETE",
        "repository-name": REPO_ARN,
        "finding-severity-counts": {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 0, "TOTAL": 3},
        "image-digest": "sha256:ab",
        "image-tags": ["ubuntu2404-0123abc-20261130T090000Z"],
    },
}


def test_twin_scan_rule_matches_the_twins_first_scan_only():
    pattern = twin_scan_event_pattern(REPO_ARN)
    assert event_matches(pattern, SCAN_EVENT)
    other = copy.deepcopy(SCAN_EVENT)
    other["resources"] = ["arn:aws:ecr:eu-west-1:333333333333:repository/someone-else"]
    assert not event_matches(pattern, other)
    ec2 = copy.deepcopy(SCAN_EVENT)
    ec2["detail-type"] = "Inspector2 Finding"
    assert not event_matches(pattern, ec2)


def test_codebuild_reaches_ecr_from_the_build_subnets_through_interface_endpoints(stack_run):
    # The twin's docker-push and the gate's ECR calls run in private subnets with no NAT (build_network).
    run = stack_run("build")
    services = {
        e.inputs["serviceName"].rsplit(".", 2)[-2] + "." + e.inputs["serviceName"].rsplit(".", 1)[-1]: e.inputs
        for e in run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    }
    for service in ("ecr.api", "ecr.dkr"):
        endpoint = services[service]
        assert endpoint["vpcEndpointType"] == "Interface" and endpoint["privateDnsEnabled"] is True


def test_a_failed_release_chain_is_announced_like_the_pipeline():
    from components.build.image_factory import automation_failure_pattern

    pattern = json.loads(automation_failure_pattern())
    event = {
        "source": "aws.ssm",
        "detail-type": "EC2 Automation Execution Status-change Notification",
        "detail": {"Definition": "Bakehouse-ReleaseImage", "Status": "Failed"},
    }
    assert event_matches(pattern, event)


def test_the_packer_build_may_fetch_the_staged_memory_capture_tool_and_decrypt_it_through_s3(stack_run):
    import json

    from tests.iam.evaluate import allowed

    run = stack_run("build")
    (policy,) = [
        p for p in run.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("-build-policy") and "packer" in p.name
    ]
    document = policy.inputs["policy"]
    scripts = next(b.inputs["bucket"] for b in run.of_type("aws:s3/bucket:Bucket") if "scripts" in b.inputs["bucket"])
    assert allowed(document, "s3:GetObjectVersion", f"arn:aws:s3:::{scripts}/tools/avml/0.14.0/avml")
    assert not allowed(document, "s3:GetObject", f"arn:aws:s3:::{scripts}/provisioning/other.tar.gz")
    # and the scripts key (the build account's key) names the Packer build role among its users
    key = next(k for k in run.of_type("aws:kms/key:Key") if k.name == "build-key-key")
    users = next(s for s in json.loads(key.inputs["policy"])["Statement"] if s.get("Sid") == "KeyUse")
    (build_role,) = [r for r in run.of_type("aws:iam/role:Role") if r.inputs.get("name") == "BakehousePackerBuild"]
    assert any(arn.endswith(f":role/{build_role.name}") for arn in users["Principal"]["AWS"])  # the mock's ARN
