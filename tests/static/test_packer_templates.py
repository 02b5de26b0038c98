"""The Packer templates, parsed with python-hcl2: what every image build must hold, and that the
Packer path and the SSM BuildImage path start from the same base and run the same scripts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.static.packer_hcl import load as _load
from tests.static.rig import REPO, SCRIPTS

PACKER = REPO / "packer"
BUILD_IMAGE_DOC = REPO / "automation" / "build_image.yaml"
VALIDATE_IMAGE_DOC = REPO / "automation" / "validate_image.yaml"
SOURCES = ("amazon-ebs.golden", "docker.local")


@pytest.fixture(scope="module")
def variables() -> dict[str, dict]:
    return {name: body for block in _load("variables.pkr.hcl")["variable"] for name, body in block.items()}


@pytest.fixture(scope="module")
def sources_file() -> dict:
    return _load("sources.pkr.hcl")


@pytest.fixture(scope="module")
def ebs(sources_file) -> dict:
    return next(b["amazon-ebs"]["golden"] for b in sources_file["source"] if "amazon-ebs" in b)


@pytest.fixture(scope="module")
def build() -> dict:
    (block,) = _load("build.pkr.hcl")["build"]
    return block


def _provisioners_for(build: dict, source: str) -> list[tuple[str, dict]]:
    out = []
    for entry in build["provisioner"]:
        ((kind, body),) = entry.items()
        if "only" in body and source not in body["only"]:
            continue
        if "except" in body and source in body["except"]:
            continue
        out.append((kind, body))
    return out


def _regex_of(condition: str) -> str:
    match = re.search(r'regex\("((?:[^"\\]|\\.)*)"', condition)
    assert match, f"no regex() in {condition}"
    return match.group(1).encode().decode("unicode_escape")


def _base_parameters(sources_file: dict) -> set[str]:
    data = sources_file["data"][0]["amazon-parameterstore"]["base_ami"]
    return set(re.findall(r"/aws/service/[^\"\\]+", data["name"]))


# --- variables ---------------------------------------------------------------------------------------


def test_every_variable_is_typed_described_and_validated(variables):
    assert len(variables) >= 8
    for name, body in variables.items():
        assert body.get("type"), f"{name} has no type"
        assert body.get("description"), f"{name} has no description"
        assert body.get("validation"), f"{name} has no validation block"
        for rule in body["validation"]:
            assert f"var.{name}" in rule["condition"] and rule["error_message"].endswith(".")


def test_variables_have_no_default_where_the_account_must_choose(variables):
    for name in ("kms_key_id", "subnet_id", "security_group_id", "instance_profile"):
        assert "default" not in variables[name], f"{name} must be given, not defaulted"


@pytest.mark.parametrize(
    "name, good, bad",
    [
        (
            "kms_key_id",
            ["arn:aws:kms:eu-west-1:333333333333:key/1234abcd-12ab-34cd-56ef-1234567890ab"],
            ["alias/aws/ebs", "alias/bakehouse-factory", "1234abcd-12ab-34cd-56ef-1234567890ab"],
        ),
        ("subnet_id", ["subnet-0123456789abcdef0"], ["subnet-XYZ", "sn-01234567"]),
        ("security_group_id", ["sg-0123456789abcdef0"], ["sg-", "default"]),
        ("family", ["al2023-base", "ubuntu2404-web"], ["AL2023", "2023-base", "a" * 40]),
        ("scripts_commit", ["0123abc", "unversioned", "a" * 40], ["main", "HEAD~1", "a" * 41]),
        ("region", ["eu-west-1", "us-gov-west-1"], ["eu-west", "EU-WEST-1"]),
    ],
)
def test_variable_validation_accepts_good_values_and_rejects_bad_ones(variables, name, good, bad):
    pattern = re.compile(_regex_of(variables[name]["validation"][0]["condition"]))
    for value in good:
        assert pattern.search(value), f"{name} should accept {value!r}"
    for value in bad:
        assert not pattern.search(value), f"{name} should reject {value!r}"


# --- the amazon-ebs builder ----------------------------------------------------------------------------


def test_ebs_build_requires_imdsv2_with_hop_limit_one(ebs):
    (options,) = ebs["metadata_options"]
    assert options["http_tokens"] == "required"
    assert options["http_put_response_hop_limit"] == 1
    assert ebs["imds_support"] == "v2.0", "instances launched from the AMI default to IMDSv2 too"


def test_ebs_build_encrypts_every_volume_with_the_factory_key(ebs):
    assert ebs["encrypt_boot"] is True
    assert ebs["kms_key_id"] == "${var.kms_key_id}"
    assert ebs["launch_block_device_mappings"]
    for mapping in ebs["launch_block_device_mappings"]:
        assert mapping["encrypted"] is True and mapping["kms_key_id"] == "${var.kms_key_id}"


def test_ebs_build_is_reached_through_session_manager_only(ebs):
    assert ebs["communicator"] == "ssh" and ebs["ssh_interface"] == "session_manager"
    assert ebs["associate_public_ip_address"] is False
    assert ebs["subnet_id"] == "${var.subnet_id}"
    assert ebs["iam_instance_profile"] == "${var.instance_profile}"
    assert "temporary_security_group_source_cidrs" not in ebs, "no SSH ingress rule is ever opened"


def test_ebs_build_starts_from_the_public_base_parameter(ebs, sources_file):
    assert ebs["source_ami"] == "${data.amazon-parameterstore.base_ami.value}"
    assert _base_parameters(sources_file) == {
        "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
        "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id",
    }


def test_ebs_image_and_snapshots_carry_provenance_tags(ebs, sources_file):
    provenance = sources_file["locals"][0]["provenance"]
    for key in (
        "bakehouse:family",
        "bakehouse:source-ami",
        "bakehouse:commit",
        "bakehouse:build-date",
        "bakehouse:build-execution",
    ):
        assert key in provenance, f"provenance lacks {key}"
    assert "base_ami.value" in provenance["bakehouse:source-ami"]
    for attribute in ("tags", "snapshot_tags", "run_volume_tags"):
        assert ebs[attribute] == "${local.provenance}"


# --- both builders run the same scripts ----------------------------------------------------------------


def test_build_uses_both_builders(build):
    assert sorted(build["sources"]) == sorted(f"source.{s}" for s in SOURCES)


@pytest.mark.parametrize("source", SOURCES)
def test_each_builder_uploads_the_scripts_then_provisions_then_validates(build, source):
    steps = _provisioners_for(build, source)
    upload = next(i for i, (kind, body) in enumerate(steps) if kind == "file")
    assert set(steps[upload][1]["sources"]) == {"${path.root}/scripts", "${path.root}/validation"}
    inline = [(i, line) for i, (kind, body) in enumerate(steps) if kind == "shell" for line in body.get("inline", [])]
    provision = [i for i, line in inline if line.strip() == "/tmp/bakehouse/scripts/provision.sh"]
    validate = [i for i, line in inline if line.strip() == "/tmp/bakehouse/validation/validate.sh"]
    assert len(provision) == 1 and len(validate) == 1, f"{source} must run each entrypoint exactly once"
    assert upload < provision[0] < validate[0]


@pytest.mark.parametrize("source, context", [("amazon-ebs.golden", "build"), ("docker.local", "container")])
def test_each_builder_validates_in_its_own_context(build, source, context):
    validating = [
        body
        for kind, body in _provisioners_for(build, source)
        if kind == "shell" and "/tmp/bakehouse/validation/validate.sh" in body.get("inline", [])
    ]
    (body,) = validating
    assert f"BAKEHOUSE_CONTEXT={context}" in body["environment_vars"]


def test_packer_records_the_scripts_commit_like_the_ssm_build(build):
    provisioning = [
        body
        for entry in build["provisioner"]
        for kind, body in entry.items()
        if kind == "shell" and "/tmp/bakehouse/scripts/provision.sh" in body.get("inline", [])
    ]
    assert provisioning and all("BAKEHOUSE_SCRIPTS_VERSION=${var.scripts_commit}" in b["environment_vars"] for b in provisioning)


# --- the same base and scripts as the SSM BuildImage document -----------------------------------------


def _run_command_lines(doc: Path) -> list[str]:
    steps = yaml.safe_load(doc.read_text())["mainSteps"]
    return [line for step in steps if step["action"] == "aws:runCommand" for line in step["inputs"]["Parameters"]["commands"]]


def test_ssm_build_runs_the_same_step_scripts_in_the_same_order():
    if not BUILD_IMAGE_DOC.exists():
        pytest.skip("automation/build_image.yaml is written by the factory-documents engineer; not there yet")
    steps = re.search(r'^STEPS="([^"]+)"', (SCRIPTS / "provision.sh").read_text(), re.MULTILINE).group(1).split()
    lines = "\n".join(_run_command_lines(BUILD_IMAGE_DOC))
    if re.search(r"scripts/provision\.sh", lines):
        return  # the entrypoint itself carries STEPS
    glob = re.search(r"scripts/(\[0-9\]\[0-9\]-\*\.sh)", lines)
    if glob:
        # The document runs every numbered script in glob (i.e. lexical) order: the same list as STEPS.
        assert sorted(p.name for p in SCRIPTS.glob("[0-9][0-9]-*.sh")) == steps
        return
    named = re.findall(r"scripts/(\d\d-[\w-]+\.sh)", lines)
    assert named == steps, "BuildImage must run provision.sh, the numbered glob, or exactly STEPS in order"


def test_ssm_validation_runs_the_same_entrypoint_for_a_booted_image():
    if not VALIDATE_IMAGE_DOC.exists():
        pytest.skip("automation/validate_image.yaml is written by the factory-documents engineer; not there yet")
    lines = _run_command_lines(VALIDATE_IMAGE_DOC)
    assert any("validation/validate.sh" in line and "BAKEHOUSE_CONTEXT=image" in line for line in lines)


def test_ssm_build_offers_the_same_base_parameters_as_packer(sources_file):
    if not BUILD_IMAGE_DOC.exists():
        pytest.skip("automation/build_image.yaml is written by the factory-documents engineer; not there yet")
    param = yaml.safe_load(BUILD_IMAGE_DOC.read_text())["parameters"]["BaseImageParameter"]
    assert set(param["allowedValues"]) == _base_parameters(sources_file)


def test_packer_family_pattern_matches_the_ssm_build(variables):
    if not BUILD_IMAGE_DOC.exists():
        pytest.skip("automation/build_image.yaml is written by the factory-documents engineer; not there yet")
    doc_pattern = yaml.safe_load(BUILD_IMAGE_DOC.read_text())["parameters"]["Family"]["allowedPattern"]
    assert _regex_of(variables["family"]["validation"][0]["condition"]) == doc_pattern


def test_plugins_are_held_to_one_major_version():
    (packer,) = _load("plugins.pkr.hcl")["packer"]
    (plugins,) = packer["required_plugins"]
    assert set(plugins) == {"amazon", "docker"}
    for name, spec in plugins.items():
        assert spec["source"] == f"github.com/hashicorp/{name}"
        assert re.fullmatch(r">= \d+\.\d+\.\d+, < (\d+)\.0\.0", spec["version"]), spec["version"]


def test_ebs_shell_steps_stop_at_the_first_failing_line(build):
    # Packer runs inline lines as one script; with a custom execute_command its shebang (-e) is bypassed.
    for kind, body in _provisioners_for(build, "amazon-ebs.golden"):
        if kind == "shell" and "execute_command" in body:
            assert "bash -e " in body["execute_command"]


# --- the container twin goes to ECR --------------------------------------------------------------------


def test_container_twin_is_tagged_and_pushed_to_the_ecr_repository_only(build):
    (chain,) = build["post-processors"]
    steps = [next(iter(p.items())) for p in chain["post-processor"]]
    assert [kind for kind, _ in steps] == ["docker-tag", "docker-push"], "tag first, then push the tagged image"
    for _, body in steps:
        assert body["only"] == ["docker.local"], "the AMI build has nothing to push"
    tag, push = steps[0][1], steps[1][1]
    assert tag["repository"] == "${var.twin_repository}"
    assert all("${var.scripts_commit}" in t and "${var.family}" in t for t in tag["tags"]), (
        "an immutable repository needs a tag unique to the family, commit and build"
    )
    assert push["ecr_login"] is True


def test_twin_repository_has_no_default_and_must_be_a_private_ecr_url(variables):
    assert "default" not in variables["twin_repository"]
    pattern = re.compile(_regex_of(variables["twin_repository"]["validation"][0]["condition"]))
    assert pattern.search("333333333333.dkr.ecr.eu-west-1.amazonaws.com/bakehouse/provisioning-twin")
    for bad in ("public.ecr.aws/bakehouse/twin", "docker.io/library/ubuntu", "bakehouse/provisioning-twin"):
        assert not pattern.search(bad), bad
