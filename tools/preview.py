"""`make preview`: every stack's real program under Pulumi's mock runtime, judged by the policy pack.

Prints a summary first (one row a stack, failures on top), then what failed and why. The component
tree, resource counts, exports and notes are behind --details; --json prints the same facts for CI.
Exit status 1 if any stack is rejected, fails to run or has a mandatory policy violation.

    python -m tools.preview                 # every stack in deploy order
    python -m tools.preview dev --details   # one stack, everything
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from estate.config import ConfigError
from tools.mockrun import STACKS, StackRun, run_stack

COST = re.compile(r"estimated interface endpoint cost \$([\d,]+\.\d+)/month")


@dataclass
class StackResult:
    stack: str
    status: str  # pass | FAIL (mandatory violations) | REJECTED (config) | ERROR (program failed)
    role: str = "-"
    account: str = "-"
    region: str = "-"
    resources: int = 0
    seconds: float = 0.0
    monthly_cost_usd: float | None = None
    mandatory: list[str] = field(default_factory=list)
    advisory: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    run: StackRun | None = None

    @property
    def ok(self) -> bool:
        return self.status == "pass"

    def as_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "status": self.status,
            "role": self.role,
            "account": self.account,
            "region": self.region,
            "resources": self.resources,
            "seconds": round(self.seconds, 3),
            "monthlyCostUsd": self.monthly_cost_usd,
            "mandatory": self.mandatory,
            "advisory": self.advisory,
            "problems": self.problems,
        }


# A stack run allocates millions of short-lived objects and almost no cycles; CPython's default
# first-generation threshold (700) collects tens of thousands of times a preview. Measured here over
# eight stack runs, paired: 6.55 s CPU at the default, 4.86 s at 100,000 (benchmarks/preview_time.py).
GC_THRESHOLDS = (100_000, 50, 100)


def freeze_imports() -> None:
    """Import the provider SDK once, move everything alive into the collector's permanent generation
    (never garbage), and collect young objects far less often."""
    import pulumi_aws  # noqa: F401

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def judge(run: StackRun):
    from tools.policy_runner import judge as judge_run

    return judge_run(run)


def where(run: StackRun) -> tuple[str, str, str]:
    """Role (from the root component), account and region (from the stack's account provider)."""
    # The root's type is bakehouse:<role>:Stack (components/roots.py)
    role = next(
        (r.type.split(":")[1] for r in run.resources if r.type.startswith("bakehouse:") and r.type.endswith(":Stack")), "-"
    )
    provider = next((r for r in run.resources if r.is_provider and r.name == f"{run.stack}-account"), None)
    if provider is None:
        return role, "-", "-"
    accounts = provider.inputs.get("allowedAccountIds") or ["-"]
    return role, str(accounts[0]), str(provider.inputs.get("region", "-"))


def evaluate(stack: str) -> StackResult:
    try:
        run = run_stack(stack)
    except ConfigError as err:
        return StackResult(stack, "REJECTED", problems=list(err.problems))
    except Exception as err:  # noqa: BLE001 - any program failure fails the preview, loudly
        return StackResult(stack, "ERROR", problems=[f"{type(err).__name__}: {err}"])
    verdict = judge(run)
    role, account, region = where(run)
    costs = [float(m.group(1).replace(",", "")) for line in run.logs for m in [COST.search(line)] if m]
    return StackResult(
        stack,
        "pass" if verdict.ok else "FAIL",
        role,
        account,
        region,
        resources=sum(1 for r in run.resources if r.custom),
        seconds=run.seconds,
        monthly_cost_usd=sum(costs) if costs else None,
        mandatory=[str(v) for v in verdict.mandatory],
        advisory=[str(v) for v in verdict.advisory],
        run=run,
    )


def summary_table(results: list[StackResult]) -> Table:
    """One row a stack, narrow enough for an 80-column terminal (CI logs and pipes get 80): ids and
    regions are never cut, the policy counts have their own column."""
    table = Table(
        title="bakehouse preview (mock runtime + policy pack)",
        caption="policy: mandatory/advisory violations; $/mo: interface endpoints, estimated",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    for column, justify in (
        ("stack", "left"),
        ("role", "left"),
        ("account", "left"),
        ("region", "left"),
        ("res", "right"),
        ("verdict", "left"),
        ("policy", "right"),
        ("$/mo", "right"),
        ("s", "right"),
    ):
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for r in results:
        style = "green" if r.ok else "red"
        counts = "-" if r.status in ("REJECTED", "ERROR") else f"{len(r.mandatory)}/{len(r.advisory)}"
        cost = f"{r.monthly_cost_usd:,.0f}" if r.monthly_cost_usd is not None else "-"
        table.add_row(
            r.stack,
            r.role,
            r.account,
            r.region,
            str(r.resources),
            f"[{style}]{r.status}[/{style}]",
            counts,
            cost,
            f"{r.seconds:.1f}",
        )
    return table


def component_tree(run: StackRun) -> Tree:
    """Components and their children; custom resources are summarised by type under their parent."""
    tree = Tree(f"[bold]stack {run.stack}[/bold]")
    by_parent: dict[str | None, list] = {}
    for res in run.resources:
        by_parent.setdefault(res.parent, []).append(res)

    def add(branch: Tree, parent_urn: str | None) -> None:
        children = by_parent.get(parent_urn, [])
        leaf_counts = Counter(r.type for r in children if r.custom and r.urn not in by_parent)
        for res in children:
            if res.custom and res.urn not in by_parent:
                continue
            add(branch.add(f"[cyan]{res.type}[/cyan] {res.name}"), res.urn)
        for type_token, count in sorted(leaf_counts.items()):
            branch.add(f"{type_token}" + (f" x{count}" if count > 1 else ""))

    roots = {r.parent for r in run.resources if r.parent and r.parent.endswith(f"pulumi:pulumi:Stack::bakehouse-{run.stack}")}
    for root in sorted(roots):
        add(tree, root)
    return tree


def counts_table(run: StackRun) -> Table:
    table = Table(title=f"{run.stack}: {sum(1 for r in run.resources if r.custom)} resources by type")
    table.add_column("type")
    table.add_column("count", justify="right")
    for type_token, count in sorted(Counter(r.type for r in run.resources if r.custom).items()):
        table.add_row(type_token, str(count))
    return table


def print_problems(result: StackResult, console: Console) -> None:
    if result.status == "REJECTED":
        console.print(f"[red]stack {result.stack}: configuration rejected[/red]")
    elif result.status == "ERROR":
        console.print(f"[red]stack {result.stack}: program failed[/red]")
    for line in result.problems:
        console.print(f"  - {line}", markup=False)
    for line in result.mandatory:
        console.print(f"[red]MANDATORY[/red] {line}")


COMPUTED = "<computed>"


def mark_computed(value: Any, computed: frozenset[str]) -> Any:
    """The value with every id and arn the mocks made up shown as <computed>: `pulumi preview` knows
    none of them before the resource exists, and a made-up id read as real would mislead."""
    if isinstance(value, dict):
        return {key: mark_computed(inner, computed) for key, inner in value.items()}
    if isinstance(value, list):
        return [mark_computed(inner, computed) for inner in value]
    if isinstance(value, str):
        if value in computed:
            return COMPUTED
        # an invented value inside a string the program built (an arn with a suffix, a url)
        for made_up in sorted((c for c in computed if c in value), key=len, reverse=True):
            value = value.replace(made_up, COMPUTED)
    return value


def print_details(result: StackResult, console: Console) -> None:
    run = result.run
    if run is None:
        return
    console.rule(f"stack {run.stack} ({run.seconds:.2f} s)")
    console.print(component_tree(run))
    console.print(counts_table(run))
    console.print("[bold]exports[/bold]")
    console.print_json(json.dumps(mark_computed(run.exports, run.computed), default=str))
    for line in run.logs:
        console.print(f"[blue]note[/blue] {line}")
    for line in result.advisory:
        console.print(f"[yellow]advisory[/yellow] {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stacks", nargs="*", help=f"stacks to preview (default: all, {', '.join(STACKS)})")
    parser.add_argument("--details", action="store_true", help="also the component tree, counts, exports, notes")
    parser.add_argument("--json", action="store_true", help="machine-readable results on stdout, nothing else")
    args = parser.parse_args(argv)
    stacks = args.stacks or list(STACKS)
    unknown = [s for s in stacks if s not in STACKS]
    if unknown:
        parser.error(f"no stack file Pulumi.<stack>.yaml for {', '.join(unknown)}; stacks: {', '.join(STACKS)}")
    freeze_imports()
    results = []
    for stack in stacks:
        result = evaluate(stack)
        if not args.details:
            result.run = None  # a run holds its whole record; only --details reads it again
        results.append(result)
    failed = [r.stack for r in results if not r.ok]
    if args.json:
        print(json.dumps({"ok": not failed, "stacks": [r.as_dict() for r in results]}, indent=2))
        return 1 if failed else 0

    # emoji off: type tokens like bakehouse:build:X would otherwise render as emoji codes
    console = Console(emoji=False)
    ordered = sorted(results, key=lambda r: r.ok)  # failures on top, deploy order kept within each group
    console.print(summary_table(ordered))
    console.print(
        f"{len(results) - len(failed)} of {len(results)} stacks passed" + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    for result in ordered:
        if not result.ok:
            print_problems(result, console)
    if args.details:
        for result in results:
            print_details(result, console)
    else:
        console.print("details (tree, resource counts, exports, notes, advisories): add --details")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
