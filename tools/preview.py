"""`make preview`: every stack's real program under the mock runtime, its tree, counts, exports, verdict.

Exit status 1 if any stack fails to run or has a mandatory policy violation.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from estate.config import ConfigError  # noqa: E402
from tools.mockrun import STACKS, StackRun, run_stack  # noqa: E402


def component_tree(run: StackRun) -> Tree:
    """Components and their children; custom resources are summarised by type under their parent."""
    tree = Tree(f"[bold]stack {run.stack}[/bold]")
    nodes = {}
    by_parent: dict[str | None, list] = {}
    for res in run.resources:
        by_parent.setdefault(res.parent, []).append(res)

    def add(branch: Tree, parent_urn: str | None) -> None:
        children = by_parent.get(parent_urn, [])
        leaf_counts = Counter(r.type for r in children if r.custom and r.urn not in by_parent)
        for res in children:
            if res.custom and res.urn not in by_parent:
                continue
            label = f"[cyan]{res.type}[/cyan] {res.name}"
            nodes[res.urn] = branch.add(label)
            add(nodes[res.urn], res.urn)
        for type_token, count in sorted(leaf_counts.items()):
            branch.add(f"{type_token}" + (f" x{count}" if count > 1 else ""))

    roots = {r.parent for r in run.resources if r.parent and r.parent.endswith(f"pulumi:pulumi:Stack::bakehouse-{run.stack}")}
    for root in roots:
        add(tree, root)
    return tree


def counts_table(run: StackRun) -> Table:
    table = Table(title=f"{run.stack}: {sum(1 for r in run.resources if r.custom)} resources by type")
    table.add_column("type")
    table.add_column("count", justify="right")
    for type_token, count in sorted(Counter(r.type for r in run.resources if r.custom).items()):
        table.add_row(type_token, str(count))
    return table


def judge(run: StackRun):
    """The policy pack's verdict, or None while the pack does not exist yet."""
    try:
        from tools.policy_runner import judge as judge_run
    except ImportError:
        return None
    return judge_run(run)


def preview(stack: str, console: Console, show_tree: bool = True) -> bool:
    try:
        run = run_stack(stack)
    except ConfigError as err:
        console.print(f"[red]stack {stack}: configuration rejected[/red]\n{err}")
        return False
    except Exception as err:  # noqa: BLE001 - any program failure fails the preview, loudly
        console.print(f"[red]stack {stack}: program failed: {type(err).__name__}: {err}[/red]")
        return False
    console.rule(f"stack {stack} ({run.seconds:.2f} s)")
    if show_tree:
        console.print(component_tree(run))
    console.print(counts_table(run))
    console.print("[bold]exports[/bold]")
    console.print_json(json.dumps(run.exports, default=str))
    for line in run.logs:
        console.print(f"[blue]note[/blue] {line}")
    verdict = judge(run)
    if verdict is None:
        console.print("[yellow]policy pack: not present[/yellow]")
        return True
    for violation in verdict.advisory:
        console.print(f"[yellow]advisory[/yellow] {violation}")
    for violation in verdict.mandatory:
        console.print(f"[red]MANDATORY[/red] {violation}")
    ok = not verdict.mandatory
    console.print(f"policy verdict for {stack}: " + ("[green]pass[/green]" if ok else "[red]FAIL[/red]")
                  + f" ({len(verdict.mandatory)} mandatory, {len(verdict.advisory)} advisory)")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stacks", nargs="*", default=list(STACKS), help="stacks to preview (default: all six)")
    parser.add_argument("--no-tree", action="store_true", help="skip the component tree")
    args = parser.parse_args(argv)
    # emoji off: type tokens like bakehouse:factory:X would otherwise render as emoji codes
    console = Console(width=140, emoji=False)
    results = {stack: preview(stack, console, not args.no_tree) for stack in args.stacks}
    failed = [s for s, ok in results.items() if not ok]
    console.rule("summary")
    console.print(f"{len(results) - len(failed)} of {len(results)} stacks passed" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
