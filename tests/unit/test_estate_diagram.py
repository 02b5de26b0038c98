"""`make diagram` (tools/diagram.py): the estate picture is drawn from the registered resources.

Every expectation here comes from the stack files and Pulumi.yaml, not from the picture's own code.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from estate.stack_files import stack_files
from tools import diagram, diagram_dot
from tools.diagram import Estate, EstateIds, build_estate
from tools.diagram_dot import quote, to_dot
from tools.mockrun import STACKS, Declared, StackRun

ROOT = Path(__file__).resolve().parents[2]
FILES = stack_files(ROOT)
IDS = EstateIds.from_files(ROOT)
WORKLOADS = [s for s in STACKS if FILES[s].get("bakehouse:role") == "workload"]


def account_of_stack(stack: str) -> str:
    """The account a stack deploys into, by its file: org -> management, workload -> its env."""
    config = FILES[stack]
    role = config["bakehouse:role"]
    name = {"org": "management", "workload": config.get("bakehouse:env")}.get(role, role)
    return IDS.accounts[str(name)]


@pytest.fixture(scope="module")
def runs() -> dict[str, StackRun]:
    found, failed = diagram.collect()
    assert not failed, failed
    return found


@pytest.fixture(scope="module")
def estate(runs) -> Estate:
    return build_estate(runs, IDS)


@pytest.fixture(scope="module")
def dot(estate) -> str:
    return to_dot(estate)


def cluster_of(estate: Estate, node_id: str) -> str | None:
    """The account cluster a node sits in, through any VPC cluster around it."""
    cluster = estate.nodes[node_id].cluster
    while cluster is not None and estate.clusters[cluster].parent is not None:
        cluster = estate.clusters[cluster].parent
    return cluster


def changed(runs: dict[str, StackRun], stack: str, match: Callable[[Declared], bool], **inputs) -> dict[str, StackRun]:
    """A copy of the runs where the matching resources of one stack take other inputs (and lose the
    recorded dependencies of those inputs); the cached runs are left alone."""

    def edit(res: Declared) -> Declared:
        if not match(res):
            return res
        deps = {k: v for k, v in res.property_dependencies.items() if k not in inputs}
        return dataclasses.replace(res, inputs={**res.inputs, **inputs}, property_dependencies=deps)

    return {**runs, stack: dataclasses.replace(runs[stack], resources=[edit(r) for r in runs[stack].resources])}


def test_diagram_has_one_cluster_per_stack_account_labelled_with_role_id_and_region(estate, dot):
    accounts = {account_of_stack(s) for s in STACKS}
    assert {c.id for c in estate.clusters.values() if c.parent is None} == {f"account {a}" for a in accounts}
    for stack in STACKS:
        account = account_of_stack(stack)
        assert dot.count(f"subgraph {quote(f'cluster account {account}')}") == 1
        label = estate.clusters[f"account {account}"].label
        assert f"role {FILES[stack]['bakehouse:role']}" in label and f"stack {stack}" in label
        assert account in label and "eu-west-1" in label


def test_workload_vpc_cidrs_from_the_stack_files_sit_in_their_accounts(estate, dot):
    for stack in WORKLOADS:
        cidr = FILES[stack]["bakehouse:network"]["cidr"]
        vpcs = [n for n in estate.nodes.values() if n.kind == "vpc" and n.label == f"VPC {cidr}"]
        assert len(vpcs) == 1, (stack, cidr)
        assert cluster_of(estate, vpcs[0].id) == f"account {account_of_stack(stack)}"
        assert quote(f"VPC {cidr}") in dot


def test_each_declared_workload_endpoint_service_is_a_node_in_its_vpc(estate):
    for stack in WORKLOADS:
        network = FILES[stack]["bakehouse:workload"]["network"]
        expected = {f"{s}\n(interface endpoint)" for s in network["interfaceEndpoints"]}
        expected |= {f"{s}\n(gateway endpoint)" for s in network["gatewayEndpoints"]}
        vpc = next(n for n in estate.nodes.values() if n.kind == "vpc" and n.id.startswith(f"{stack}/"))
        drawn = {n.label for n in estate.nodes.values() if n.kind == "endpoint" and n.cluster == vpc.cluster}
        assert drawn == expected, stack


def test_every_account_sends_trail_config_and_flow_logs_to_the_security_archive(estate, dot):
    security = f"account {IDS.accounts['security']}"
    archive = {n.id for n in estate.nodes.values() if n.kind == "bucket" and n.cluster == security}
    for stack in STACKS:
        account = f"account {account_of_stack(stack)}"
        for kind in ("cloudtrail", "config"):
            into_archive = [e for e in estate.edges_of(kind) if cluster_of(estate, e.src) == account and e.dst in archive]
            assert into_archive, (stack, kind)
            assert all(f"{quote(e.src)} -> {quote(e.dst)}" in dot for e in into_archive)
    vpcs = [n.id for n in estate.nodes.values() if n.kind == "vpc"]
    assert len(vpcs) == len(WORKLOADS) + 1  # the build VPC too
    flows = {(e.src, e.dst) for e in estate.edges_of("flowlogs")}
    for vpc in vpcs:
        assert any(src == vpc and dst in archive for src, dst in flows), vpc


def test_a_flow_log_edge_follows_the_bucket_the_flow_log_names_not_the_role(runs):
    elsewhere = changed(
        runs, "dev", lambda r: r.type == diagram.FLOW_LOG, logDestination="arn:aws:s3:::someone-elses-bucket/prefix"
    )
    estate = build_estate(elsewhere, IDS)
    dev_vpc = next(n.id for n in estate.nodes.values() if n.kind == "vpc" and n.id.startswith("dev/"))
    assert [e.dst for e in estate.edges_of("flowlogs") if e.src == dev_vpc] == ["s3://someone-elses-bucket"]
    assert estate.nodes["s3://someone-elses-bucket"].cluster is None


def test_guardduty_and_security_hub_are_delegated_to_the_security_account(estate):
    management, security = (estate.anchor(IDS.accounts[n]) for n in ("management", "security"))
    [edge] = [e for e in estate.edges_of("admin") if e.src == management and e.dst == security]
    assert "GuardDuty" in edge.label and "Security Hub" in edge.label


def test_a_delegated_admin_edge_follows_the_account_id_the_resource_names(runs):
    build = IDS.accounts["build"]
    moved = changed(runs, "org", lambda r: r.type.startswith("aws:guardduty/organizationAdminAccount"), adminAccountId=build)
    estate = build_estate(moved, IDS)
    to_build = [e for e in estate.edges_of("admin") if e.dst == estate.anchor(build)]
    assert len(to_build) == 1 and "GuardDuty" in to_build[0].label
    to_security = [e for e in estate.edges_of("admin") if e.dst == estate.anchor(IDS.accounts["security"])]
    assert "GuardDuty" not in to_security[0].label


def test_build_shares_amis_with_each_target_env_of_the_factory(estate):
    build = next(s for s in STACKS if FILES[s]["bakehouse:role"] == "build")
    targets = FILES[build]["bakehouse:factory"]["targetEnvs"]
    shared = {e.dst for e in estate.edges_of("ami") if e.src == estate.anchor(account_of_stack(build))}
    assert shared == {estate.anchor(IDS.accounts[env]) for env in targets}


def test_no_account_id_in_the_picture_is_invented(dot):
    drawn = set(re.findall(r"(?<!\d)\d{12}(?!\d)", dot))
    assert drawn and drawn <= set(IDS.accounts.values())
    assert "-id" not in " ".join(re.findall(r'label="([^"]*)"', dot))  # no mock ids shown as values


def test_labels_are_escaped_for_dot():
    assert quote('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'


def test_rendered_svg_is_valid_and_shows_every_account(dot):
    if shutil.which("node") is None or not (ROOT / "node_modules" / "@viz-js" / "viz").exists():
        pytest.skip("node or @viz-js/viz is missing: `npm ci` installs the renderer")
    svg = ET.fromstring(diagram_dot.render_svg(dot, ROOT))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    for stack in STACKS:
        account = account_of_stack(stack)
        assert any(t and account in t for t in texts), account
        assert any(t and f"stack {stack}" in t for t in texts), stack


def test_without_node_the_dot_file_is_still_written_and_the_reason_said(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(diagram_dot.shutil, "which", lambda _name: None)
    assert diagram.main(["-o", str(tmp_path / "estate.svg")]) == 1
    assert (tmp_path / "estate.dot").read_text().startswith("digraph estate {")
    assert not (tmp_path / "estate.svg").exists()
    assert "node is not installed" in capsys.readouterr().err
