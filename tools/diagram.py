"""`make diagram`: the estate as a picture, drawn from what the stacks register under the mock runtime.

One cluster per account (the account each resource's explicit provider is pinned to), its VPCs with
their CIDR and endpoints, the build account's filtered egress, and the flows between accounts:
CloudTrail, Config and VPC flow logs into the buckets they name, delegated administrators, AMI
sharing. Every edge comes from a resource input (a bucket name or ARN, an admin account id, a
target-account parameter), never from a role name. The DOT text is rendered to SVG offline by
Graphviz compiled to WebAssembly (npm `@viz-js/viz`, tools/diagram_render.cjs).

    python -m tools.diagram                  # estate.svg (and estate.dot) in the current directory
    python -m tools.diagram -o docs/estate.svg
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key

from estate.naming import FACTORY_TARGETS_PATH
from estate.stack_files import project_config, stack_files
from tools.diagram_dot import RenderUnavailable, render_svg, to_dot
from tools.mockrun import PROJECT_DIR, STACKS, Declared, StackRun, cached_run
from tools.preview import freeze_imports, where

COMPUTED = "<computed>"

VPC = "aws:ec2/vpc:Vpc"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
FIREWALL = "aws:networkfirewall/firewall:Firewall"
RULE_GROUP = "aws:networkfirewall/ruleGroup:RuleGroup"
BUCKET = "aws:s3/bucket:Bucket"
TRAIL = "aws:cloudtrail/trail:Trail"
CONFIG_DELIVERY = "aws:cfg/deliveryChannel:DeliveryChannel"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
ORG_ACCOUNT = "aws:organizations/account:Account"
PARAMETER = "aws:ssm/parameter:Parameter"
# type -> (input naming the delegated account, service shown on the edge)
DELEGATED_ADMINS = {
    "aws:guardduty/organizationAdminAccount:OrganizationAdminAccount": ("adminAccountId", "GuardDuty"),
    "aws:securityhub/organizationAdminAccount:OrganizationAdminAccount": ("adminAccountId", "Security Hub"),
    "aws:inspector2/delegatedAdminAccount:DelegatedAdminAccount": ("accountId", "Inspector"),
    "aws:detective/organizationAdminAccount:OrganizationAdminAccount": ("adminAccountId", "Detective"),
    "aws:macie2/organizationAdminAccount:OrganizationAdminAccount": ("adminAccountId", "Macie"),
    "aws:organizations/delegatedAdministrator:DelegatedAdministrator": ("accountId", ""),  # service from servicePrincipal
}


@dataclass(frozen=True)
class Cluster:
    id: str
    label: str
    parent: str | None = None  # an account cluster holds VPC clusters


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    cluster: str | None
    kind: str  # account | vpc | endpoint | firewall | bucket | trail | config | internet | external


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    label: str
    kind: str  # cloudtrail | config | flowlogs | admin | ami | egress


@dataclass
class Estate:
    clusters: dict[str, Cluster] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def account_cluster(self, account: str) -> str:
        return f"account {account}"

    def anchor(self, account: str) -> str:
        return f"account {account}/anchor"

    def add_node(self, node: Node) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id

    def add_edge(self, edge: Edge) -> None:
        if edge not in self.edges:
            self.edges.append(edge)

    def edges_of(self, kind: str) -> list[Edge]:
        return [e for e in self.edges if e.kind == kind]

    def summary(self) -> str:
        counts = {kind: len(self.edges_of(kind)) for kind in ("cloudtrail", "config", "flowlogs", "admin", "ami", "egress")}
        by_kind: dict[str, int] = defaultdict(int)
        for node in self.nodes.values():
            by_kind[node.kind] += 1
        return (
            f"{by_kind['account']} accounts, {by_kind['vpc']} VPCs, {by_kind['endpoint']} endpoints, "
            f"{by_kind['bucket']} archive buckets; {len(self.nodes)} nodes, {len(self.edges)} edges "
            f"({', '.join(f'{n} {k}' for k, n in counts.items())})"
        )


@dataclass(frozen=True)
class EstateIds:
    """What config says about accounts: name -> id (Pulumi.yaml) and the org stack's email -> name."""

    accounts: Mapping[str, str]
    emails: Mapping[str, str]

    @classmethod
    def from_files(cls, project_dir: Path = PROJECT_DIR) -> EstateIds:
        spec = project_config(project_dir).get("bakehouse:accounts") or {}
        accounts = spec.get("value", spec) if isinstance(spec, Mapping) else {}
        emails: dict[str, str] = {}
        for config in stack_files(project_dir).values():
            org = config.get("bakehouse:org")
            if isinstance(org, Mapping) and isinstance(org.get("accountEmails"), Mapping):
                emails.update({str(email): str(name) for name, email in org["accountEmails"].items()})
        return cls({str(k): str(v) for k, v in accounts.items()}, emails)

    def name_of(self, account_id: str) -> str | None:
        return next((name for name, known in self.accounts.items() if known == account_id), None)


def _unsecret(value: Any) -> Any:
    if isinstance(value, Mapping) and value.get(_special_sig_key) == _special_secret_sig:
        return value.get("value")
    return value


class _RunIndex:
    """One run's resources by URN and by mock id, and the account each one is declared in."""

    def __init__(self, run: StackRun, ids: EstateIds):
        self.run = run
        self.ids = ids
        self.by_urn = {r.urn: r for r in run.resources}
        # EchoMocks gives every resource the id "<name>-id": what a computed input holds in a mock run
        self.by_mock_id = {f"{r.name}-id": r for r in run.resources}
        self.providers = {r.name: r for r in run.resources if r.is_provider}

    def refs(self, res: Declared, key: str) -> list[Declared]:
        """The resources an input was computed from: its dependencies as the engine records them, else
        the resource whose mock id the input holds."""
        found = [self.by_urn[u] for u in res.property_dependencies.get(key, ()) if u in self.by_urn]
        if found:
            return found
        values = res.inputs.get(key)
        values = values if isinstance(values, list) else [values]
        return [self.by_mock_id[v] for v in values if isinstance(v, str) and v in self.by_mock_id]

    def account_id(self, value: Any, res: Declared | None = None, key: str | None = None) -> str | None:
        """A config account id, from a literal id or from the organizations Account an input was computed
        from (matched to config by its email); None when neither says which account it is."""
        value = _unsecret(value)
        if isinstance(value, str) and value in self.ids.accounts.values():
            return value
        sources = self.refs(res, key) if res is not None and key is not None else []
        if not sources and isinstance(value, str) and value in self.by_mock_id:
            sources = [self.by_mock_id[value]]
        for source in sources:
            if source.type == ORG_ACCOUNT:
                name = self.ids.emails.get(str(source.inputs.get("email")))
                if name is not None and name in self.ids.accounts:
                    return self.ids.accounts[name]
        return None

    def account_of(self, res: Declared) -> str | None:
        provider = self.providers.get(res.provider_name or "")
        if provider is None:
            return None
        allowed = provider.inputs.get("allowedAccountIds") or [None]
        return self.account_id(allowed[0], provider, "allowedAccountIds")

    def region_of(self, res: Declared) -> str:
        provider = self.providers.get(res.provider_name or "")
        return str(res.inputs.get("region") or (provider.inputs.get("region") if provider else "") or "")


def _node_id(run: StackRun, res: Declared) -> str:
    return f"{run.stack}/{res.name}"


def _bucket_from_arn(arn: str) -> str:
    # arn:aws:s3:::bucket[/prefix]
    return arn.split(":::", 1)[-1].split("/", 1)[0]


class _Builder:
    def __init__(self, runs: Mapping[str, StackRun], ids: EstateIds):
        self.runs = runs
        self.ids = ids
        self.estate = Estate()
        self.index = {stack: _RunIndex(run, ids) for stack, run in runs.items()}
        self.homes: dict[str, tuple[str, str, str]] = {}  # account -> (role, stack, region)
        self.buckets: dict[str, tuple[StackRun, Declared, str | None]] = {}  # bucket name -> where declared

    def build(self) -> Estate:
        for stack, run in self.runs.items():
            role, account, region = where(run)
            if account in self.ids.accounts.values():
                self.homes.setdefault(account, (role, stack, region))
            else:
                self.estate.problems.append(f"stack {stack}: its account provider names no account from config")
            for res in run.of_type(BUCKET):
                name = res.inputs.get("bucket")
                if isinstance(name, str):
                    self.buckets[name] = (run, res, self.index[stack].account_of(res))
        for account in self.homes:
            self._account(account)
        for run in self.runs.values():
            self._networks(run)
            self._log_sources(run)
            self._delegated_admins(run)
            self._ami_sharing(run)
        return self.estate

    def _account(self, account: str | None) -> str | None:
        """The account's cluster and anchor node (created on first use); None for an unknown account."""
        if account is None:
            return None
        cluster = self.estate.account_cluster(account)
        if cluster not in self.estate.clusters:
            name = self.ids.name_of(account) or "account"
            role, stack, region = self.homes.get(account, ("-", "-", "-"))
            title = f"{name} account · role {role} · stack {stack}" if stack != "-" else f"{name} account (no stack of its own)"
            self.estate.clusters[cluster] = Cluster(cluster, f"{title}\n{account} · {region}")
            self.estate.add_node(Node(self.estate.anchor(account), f"{name}\n{account}", cluster, "account"))
        return self.estate.anchor(account)

    def _cluster_of(self, account: str | None) -> str | None:
        if account is None or self._account(account) is None:
            return None
        return self.estate.account_cluster(account)

    def _networks(self, run: StackRun) -> None:
        index = self.index[run.stack]
        for vpc in run.of_type(VPC):
            account = index.account_of(vpc)
            cluster = f"{_node_id(run, vpc)}/cluster"
            cidr = vpc.inputs.get("cidrBlock") or COMPUTED
            self.estate.clusters[cluster] = Cluster(
                cluster, f"VPC {vpc.name} · {index.region_of(vpc)}", self._cluster_of(account)
            )
            self.estate.add_node(Node(_node_id(run, vpc), f"VPC {cidr}", cluster, "vpc"))
        for endpoint in run.of_type(ENDPOINT):
            vpcs = index.refs(endpoint, "vpcId")
            if not vpcs:
                continue
            service = str(endpoint.inputs.get("serviceName") or COMPUTED)
            short = service.split(f"com.amazonaws.{index.region_of(endpoint)}.", 1)[-1]
            kind = str(endpoint.inputs.get("vpcEndpointType") or "Gateway").lower()
            self.estate.add_node(
                Node(_node_id(run, endpoint), f"{short}\n({kind} endpoint)", f"{_node_id(run, vpcs[0])}/cluster", "endpoint")
            )
        for firewall in run.of_type(FIREWALL):
            vpcs = index.refs(firewall, "vpcId")
            if not vpcs:
                continue
            domains = [d for group in self._rule_groups(index, firewall) for d in self._targets(group)]
            label = f"Network Firewall {firewall.name}\nallow-list ({len(domains)} domains):\n" + "\n".join(domains)
            node = self.estate.add_node(Node(_node_id(run, firewall), label, f"{_node_id(run, vpcs[0])}/cluster", "firewall"))
            internet = self.estate.add_node(Node("internet", "internet", None, "internet"))
            self.estate.add_edge(Edge(_node_id(run, vpcs[0]), node, "egress", "egress"))
            self.estate.add_edge(Edge(node, internet, "filtered egress (SNI / Host allow-list)", "egress"))

    def _rule_groups(self, index: _RunIndex, firewall: Declared) -> list[Declared]:
        """Rule groups the firewall's policy was built from (firewall -> policy -> rule groups)."""
        seen: dict[str, Declared] = {}
        frontier = [firewall]
        while frontier:
            res = frontier.pop()
            for key in res.property_dependencies:
                for dep in index.refs(res, key):
                    if dep.urn not in seen and dep.type.startswith("aws:networkfirewall/"):
                        seen[dep.urn] = dep
                        frontier.append(dep)
        return [r for r in seen.values() if r.type == RULE_GROUP]

    @staticmethod
    def _targets(group: Declared) -> list[str]:
        source = (group.inputs.get("ruleGroup") or {}).get("rulesSource") or {}
        return [str(t) for t in (source.get("rulesSourceList") or {}).get("targets") or []]

    def _archive(self, bucket: str) -> str:
        """The node of the bucket a log flow names: in the account that declares it, or outside every
        cluster when no stack declares it."""
        found = self.buckets.get(bucket)
        if found is None:
            return self.estate.add_node(Node(f"s3://{bucket}", f"S3 {bucket}\n(not declared by any stack)", None, "external"))
        run, res, account = found
        lock = "\nObject Lock" if res.inputs.get("objectLockEnabled") else ""
        return self.estate.add_node(Node(_node_id(run, res), f"S3 {bucket}{lock}", self._cluster_of(account), "bucket"))

    def _log_sources(self, run: StackRun) -> None:
        index = self.index[run.stack]
        for trail in run.of_type(TRAIL):
            account = index.account_of(trail)
            bucket = trail.inputs.get("s3BucketName")
            if not isinstance(bucket, str):
                continue
            archive = self._archive(bucket)
            org = bool(trail.inputs.get("isOrganizationTrail"))
            label = f"CloudTrail {trail.inputs.get('name') or trail.name}" + ("\n(organization trail)" if org else "")
            node = self.estate.add_node(Node(_node_id(run, trail), label, self._cluster_of(account), "trail"))
            self.estate.add_edge(Edge(node, archive, "CloudTrail", "cloudtrail"))
            if org:
                # An organization trail delivers every member account's events to its bucket.
                # https://docs.aws.amazon.com/awscloudtrail/latest/userguide/creating-trail-organization.html
                for member in self.homes:
                    if member != account:
                        self.estate.add_edge(
                            Edge(self.estate.anchor(member), archive, "CloudTrail (organization trail)", "cloudtrail")
                        )
        channels: dict[tuple[str | None, str], list[str]] = defaultdict(list)
        for channel in run.of_type(CONFIG_DELIVERY):
            bucket = channel.inputs.get("s3BucketName")
            if isinstance(bucket, str):
                channels[(index.account_of(channel), bucket)].append(index.region_of(channel))
        for (account, bucket), regions in channels.items():
            cluster = self._cluster_of(account)
            node = self.estate.add_node(
                Node(f"{cluster or run.stack}/config/{bucket}", f"AWS Config\n{', '.join(sorted(regions))}", cluster, "config")
            )
            self.estate.add_edge(Edge(node, self._archive(bucket), "Config snapshots", "config"))
        for flow in run.of_type(FLOW_LOG):
            vpcs = index.refs(flow, "vpcId")
            destination = flow.inputs.get("logDestination")
            if vpcs and flow.inputs.get("logDestinationType") == "s3" and isinstance(destination, str):
                archive = self._archive(_bucket_from_arn(destination))
                self.estate.add_edge(Edge(_node_id(run, vpcs[0]), archive, "VPC flow logs", "flowlogs"))

    def _delegated_admins(self, run: StackRun) -> None:
        index = self.index[run.stack]
        services: dict[tuple[str, str], set[str]] = defaultdict(set)
        for res in run.resources:
            if res.type not in DELEGATED_ADMINS:
                continue
            key, service = DELEGATED_ADMINS[res.type]
            service = service or str(res.inputs.get("servicePrincipal", "")).removesuffix(".amazonaws.com")
            admin = index.account_id(res.inputs.get(key), res, key)
            delegator = index.account_of(res)
            if admin is None or delegator is None:
                self.estate.problems.append(f"stack {run.stack}: {res.name} names no account from config")
                continue
            services[(delegator, admin)].add(service)
        for (delegator, admin), names in services.items():
            src, dst = self._account(delegator), self._account(admin)
            if src and dst:
                self.estate.add_edge(Edge(src, dst, "delegated admin:\n" + ", ".join(sorted(names)), "admin"))

    def _ami_sharing(self, run: StackRun) -> None:
        # The factory shares each image with the accounts under /bakehouse/factory/targets
        # (handlers/targets.py, handlers/distribute.py: ModifyImageAttribute launchPermission).
        index = self.index[run.stack]
        for param in run.of_type(PARAMETER):
            name = str(param.inputs.get("name") or "")
            if not name.startswith(f"{FACTORY_TARGETS_PATH}/"):
                continue
            target = index.account_id(param.inputs.get("value"), param, "value")
            src, dst = self._account(index.account_of(param)), self._account(target)
            if src and dst:
                self.estate.add_edge(Edge(src, dst, f"AMI sharing ({name.rsplit('/', 1)[-1]})", "ami"))


def build_estate(runs: Mapping[str, StackRun], ids: EstateIds) -> Estate:
    """The picture's model from the stacks' registered resources (the runs, in deploy order)."""
    return _Builder(runs, ids).build()


def collect(stacks: Iterable[str] = STACKS) -> tuple[dict[str, StackRun], list[str]]:
    """Each stack's run under the plain mocks (cached per process); the stacks that failed, by reason."""
    runs, failed = {}, []
    for stack in stacks:
        run = cached_run(stack, raise_errors=False)
        if run.error is not None:
            failed.append(f"stack {stack} failed under the mocks: {type(run.error).__name__}: {run.error}")
        else:
            runs[stack] = run
    return runs, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default="estate.svg", type=Path, help="SVG to write (the .dot beside it)")
    args = parser.parse_args(argv)
    freeze_imports()
    runs, failed = collect()
    estate = build_estate(runs, EstateIds.from_files())
    dot = to_dot(estate)
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    dot_path = output.with_suffix(".dot")
    dot_path.write_text(dot)
    status = 0
    for problem in failed + estate.problems:
        print(f"diagram: {problem}", file=sys.stderr)
        status = 1
    try:
        output.write_text(render_svg(dot))
    except RenderUnavailable as err:
        print(f"diagram: no SVG: {err}. Wrote {dot_path} (render it with any Graphviz).", file=sys.stderr)
        return 1
    print(f"estate diagram: {estate.summary()}")
    print(f"wrote {output} and {dot_path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
