"""CI's step before `pulumi up -s <stack>`: refuse the example estate's ids, emails and placeholder
ciphertexts with a message naming file, key and value (the CLI itself would fail earlier, and less
clearly, on a ciphertext it cannot decrypt); and refuse pinned digests still at their placeholder.

Usage: python -m tools.refuse_examples <stack> [<stack> ...]
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from estate.config import PROJECT_DIR, example_problems

# A digest nobody can have computed: the shipped stack file's stand-in for a value only the release
# engineer can look up (it is not fetchable offline). Previews accept it; a real deploy may not.
PLACEHOLDER_DIGEST = re.compile(r"0{64}")
# (section, path) of every pinned digest in a stack file.
PINNED_DIGESTS = (("bakehouse:factory", ("memoryCapture", "sha256")),)


def placeholder_problems(stack: str, project_dir: Path = PROJECT_DIR) -> list[str]:
    path = project_dir / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text()) if path.exists() else None
    config = (doc or {}).get("config") or {} if isinstance(doc, Mapping) else {}
    found = []
    for section, keys in PINNED_DIGESTS:
        value: object = config.get(section)
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, str) and PLACEHOLDER_DIGEST.fullmatch(value):
            found.append(
                f"stack {stack}: {path.name}: {section}.{'.'.join(keys)} is the placeholder {value!r}; "
                "allowed: the SHA-256 published for the pinned release asset (docs/build.md, "
                '"Memory capture")'
            )
    if stack == "build":
        found += buildspec_placeholders(project_dir)
    return found


def buildspec_placeholders(project_dir: Path = PROJECT_DIR) -> list[str]:
    """The Packer engine's pinned release digests (packer/buildspec.yml env): the build stack ships the
    buildspec in its bundle, so a placeholder there fails every Packer build at `sha256sum -c`."""
    path = project_dir / "packer" / "buildspec.yml"
    doc = yaml.safe_load(path.read_text()) if path.exists() else None
    variables = ((doc or {}).get("env") or {}).get("variables") or {} if isinstance(doc, Mapping) else {}
    return [
        f"stack build: packer/buildspec.yml: env.variables.{name} is the placeholder {value!r}; allowed: the "
        'SHA-256 HashiCorp publishes in the release\'s SHA256SUMS (docs/build.md, "Packer engine")'
        for name, value in sorted(variables.items())
        if name.endswith("_SHA256") and isinstance(value, str) and PLACEHOLDER_DIGEST.fullmatch(value)
    ]


def main(stacks: list[str]) -> int:
    problems = [p for stack in stacks for p in (*example_problems(stack, PROJECT_DIR), *placeholder_problems(stack, PROJECT_DIR))]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
