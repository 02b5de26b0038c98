"""Fixtures every area shares. Stack runs are cached per session: the programs are deterministic."""

from __future__ import annotations

import functools
import gc
import os
from pathlib import Path

import botocore.loaders
import botocore.session
import pulumi_aws  # noqa: F401 - imported before the freeze below, as every stack run needs it
import pytest

from tools.mockrun import StackRun, cached_run
from tools.preview import GC_THRESHOLDS

# The SDK and provider modules are a few hundred thousand long-lived objects. Freezing them keeps the
# cyclic collector from re-walking them on every full collection (measured: benchmarks/preview_time.py).
# The preview's thresholds suit the tests too; measured paired over test_isolate, test_foundation and
# test_policy_grammar: 24-27 s of CPU, 37-38 s at CPython's default (700, 10, 10), no gain at 1,000,000.
gc.collect()
gc.freeze()
gc.set_threshold(*GC_THRESHOLDS)

# Every boto3.Session() (moto resets the default one per test; handlers open one per assumed account)
# would otherwise build its own botocore loader and parse the service and endpoint JSON again: a third
# of the handler tests' CPU (tests/handlers: 97 s of CPU before, 69 s after, paired). The parsed models are read-only, so one loader per data path serves them all,
# as one long-lived Lambda container's session does.
botocore.session.create_loader = functools.lru_cache(maxsize=None)(botocore.loaders.create_loader)

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


E2E = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(config, items):
    """Every end-to-end test is slow (each world is a moto server and seconds of setup): they run in
    `make test-slow` and CI, not in `make test`.
    BAKEHOUSE_REVERSE=1 runs the suite in reverse order: no test may depend on another having run first."""
    for item in items:
        if item.path.is_relative_to(E2E):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)
    if os.environ.get("BAKEHOUSE_REVERSE") == "1":
        items.reverse()
