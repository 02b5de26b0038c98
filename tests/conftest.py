"""Fixtures every area shares. Stack runs are cached per session: the programs are deterministic."""

from __future__ import annotations

import gc
import os

import pulumi_aws  # noqa: F401 - imported before the freeze below, as every stack run needs it
import pytest

from tools.mockrun import StackRun, cached_run
from tools.preview import GC_THRESHOLDS

# The SDK and provider modules are a few hundred thousand long-lived objects. Freezing them keeps the
# cyclic collector from re-walking them on every full collection (measured: benchmarks/preview_time.py).
gc.collect()
gc.freeze()
gc.set_threshold(*GC_THRESHOLDS)

# No test may reach a real AWS endpoint with someone's ambient credentials.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
)
for leaking in ("AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
    os.environ.pop(leaking, None)


@pytest.fixture(scope="session")
def stack_run():
    """`stack_run("dev")` -> the recorded run of that stack's real program under mocks (cached per process)."""

    def get(stack: str) -> StackRun:
        return cached_run(stack)

    return get


def pytest_collection_modifyitems(config, items):
    """BAKEHOUSE_REVERSE=1 runs the suite in reverse order: no test may depend on another having run first."""
    if os.environ.get("BAKEHOUSE_REVERSE") == "1":
        items.reverse()
