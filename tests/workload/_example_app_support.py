"""examples/app and mocks that answer its StackReference with a workload stack's exports."""

from __future__ import annotations

from pathlib import Path

import pulumi

from tools.mockrun import EchoMocks

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "app"


class WorkloadStackMocks(EchoMocks):
    """Echo mocks, plus a StackReference answering with a workload stack's recorded exports."""

    def __init__(self, exports: dict):
        super().__init__()
        self.exports = exports
        self.references: list[str] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        if args.typ == "pulumi:pulumi:StackReference":
            self.references.append(args.inputs["name"])
            return [args.name, {"name": args.inputs["name"], "outputs": self.exports, "secretOutputNames": []}]
        return super().new_resource(args)
