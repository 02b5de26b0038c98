"""CI's step before `pulumi up -s <stack>`: refuse the example estate's ids, emails and placeholder
ciphertexts with a message naming file, key and value (the CLI itself would fail earlier, and less
clearly, on a ciphertext it cannot decrypt).

Usage: python -m tools.refuse_examples <stack> [<stack> ...]
"""

from __future__ import annotations

import sys

from estate.config import PROJECT_DIR, example_problems


def main(stacks: list[str]) -> int:
    problems = [p for stack in stacks for p in example_problems(stack, PROJECT_DIR)]
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
