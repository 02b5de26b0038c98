"""The estate picture (tools/diagram.py) as Graphviz DOT text, and its offline rendering to SVG.

DOT is generated here, labels escaped; Graphviz itself runs as WebAssembly under node (npm
`@viz-js/viz`, tools/diagram_render.cjs), as no `dot` binary is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from tools.mockrun import PROJECT_DIR

if TYPE_CHECKING:
    from tools.diagram import Cluster, Estate, Node

RENDERER = Path(__file__).with_name("diagram_render.cjs")

STYLE = {
    "account": 'shape=box3d style=filled fillcolor="#ffffff"',
    "vpc": 'shape=box style="rounded,filled" fillcolor="#dbeafe"',
    "endpoint": 'shape=ellipse style=filled fillcolor="#eef2ff" fontsize=9',
    "firewall": 'shape=octagon style=filled fillcolor="#fee2e2" fontsize=9',
    "bucket": 'shape=cylinder style=filled fillcolor="#fef3c7"',
    "external": 'shape=cylinder style="dashed"',
    "trail": 'shape=note style=filled fillcolor="#dcfce7"',
    "config": 'shape=note style=filled fillcolor="#dcfce7"',
    "internet": "shape=doublecircle fontsize=9",
}
ENDPOINTS_PER_ROW = 4
EDGE_STYLE = {
    "cloudtrail": 'color="#15803d"',
    "config": 'color="#0e7490"',
    "flowlogs": 'color="#7c3aed"',
    "admin": 'color="#b91c1c" style=dashed',
    "ami": 'color="#c2410c" style=bold',
    "egress": 'color="#525252"',
}


def quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines as centred line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "").replace("\n", "\\n") + '"'


def to_dot(estate: Estate) -> str:
    lines = [
        "digraph estate {",
        '  graph [rankdir=LR compound=true fontname="Helvetica" fontsize=11 nodesep=0.2 ranksep=1.2 '
        'label="bakehouse estate (from the mock run)" labelloc=t];',
        '  node [fontname="Helvetica" fontsize=10];',
        '  edge [fontname="Helvetica" fontsize=9];',
    ]
    children: dict[str | None, list[Cluster]] = defaultdict(list)
    for cluster in estate.clusters.values():
        children[cluster.parent].append(cluster)
    members: dict[str | None, list[Node]] = defaultdict(list)
    for node in estate.nodes.values():
        members[node.cluster].append(node)

    def emit(cluster: Cluster, depth: int) -> None:
        pad = "  " * depth
        lines.append(f"{pad}subgraph {quote('cluster ' + cluster.id)} {{")
        lines.append(f"{pad}  label={quote(cluster.label)}; style=rounded;")
        for child in children[cluster.id]:
            emit(child, depth + 1)
        lines.extend(f"{pad}  {_dot_node(node)}" for node in members[cluster.id])
        # Endpoints in rows of a few, chained by invisible edges: otherwise a VPC is one tall column.
        endpoints = [n.id for n in members[cluster.id] if n.kind == "endpoint"]
        for row in range(0, len(endpoints), ENDPOINTS_PER_ROW):
            chain = endpoints[row : row + ENDPOINTS_PER_ROW]
            lines.extend(f"{pad}  {quote(a)} -> {quote(b)} [style=invis];" for a, b in zip(chain, chain[1:], strict=False))
        lines.append(f"{pad}}}")

    for cluster in children[None]:
        emit(cluster, 1)
    lines.extend(f"  {_dot_node(node)}" for node in members[None])
    for edge in estate.edges:
        lines.append(f"  {quote(edge.src)} -> {quote(edge.dst)} [label={quote(edge.label)} {EDGE_STYLE[edge.kind]}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_node(node: Node) -> str:
    return f"{quote(node.id)} [label={quote(node.label)} {STYLE[node.kind]}];"


class RenderUnavailable(RuntimeError):
    """node or the @viz-js/viz package is missing: the DOT file is all there is."""


def render_svg(dot: str, project_dir: Path = PROJECT_DIR) -> str:
    node = shutil.which("node")
    if node is None:
        raise RenderUnavailable("node is not installed: the SVG is rendered by Graphviz (WebAssembly) under node")
    if not (project_dir / "node_modules" / "@viz-js" / "viz").exists():
        raise RenderUnavailable("the npm package @viz-js/viz is not installed: run `npm ci` in the project")
    done = subprocess.run(
        [node, str(RENDERER)], input=dot, capture_output=True, text=True, cwd=project_dir, timeout=300, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"Graphviz rejected the diagram: {done.stderr.strip()}")
    return done.stdout
