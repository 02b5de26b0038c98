"""What every end-to-end module shares: one botocore data loader for all the sessions the handlers open,
and one client per service for the handlers' calls without a session.

handlers.common.client opens a new boto3.Session per client (as a Lambda would per invocation); each new
session gets a new loader, which parses the service's JSON model again (measured: over half of a factory
pipeline run's CPU). The models are read-only data, so the e2e sessions share one loader, exactly as the
clients of one session do; what each session sends is unchanged.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from collections.abc import Iterator
from typing import Any

import botocore.loaders
import botocore.session
import pytest

import handlers
from handlers import common


class _UniquePaths(list):
    """boto3.Session appends its own data folder to the loader's paths: once is enough when shared."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


_LOADERS: dict[str | None, botocore.loaders.Loader] = {}
_create_loader = botocore.loaders.create_loader


def shared_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
    if search_path_string not in _LOADERS:
        loader = _create_loader(search_path_string)
        loader._search_paths = _UniquePaths(loader.search_paths)
        _LOADERS[search_path_string] = loader
    return _LOADERS[search_path_string]


# What decides where and as whom a client without a session sends: runner.endpoint_env sets the first two.
_CLIENT_ENV = ("AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_CLIENTS: dict[tuple[Any, ...], Any] = {}


def reused_client(service: str, region: str | None = None, session: Any = None) -> Any:
    """handlers.common.client, one client per service, region and environment when no session is given and
    the handler talks to a moto server: a new boto3.Session and client per call (tens of milliseconds of CPU
    each) is the handlers' Lambda habit, not something an e2e run checks. A session (an assumed role) still
    gets a client of its own."""
    if session is not None or not os.environ.get("AWS_ENDPOINT_URL"):
        # In-process moto (mock_aws) hooks the clients created while it is active: those are not kept.
        return _real_client(service, region, session)
    key = (service, region, *(os.environ.get(name) for name in _CLIENT_ENV))
    if key not in _CLIENTS:
        _CLIENTS[key] = _real_client(service, region)
    return _CLIENTS[key]


_real_client = common.client


@pytest.fixture(scope="module", autouse=True)
def shared_models_and_clients() -> Iterator[None]:
    # Per module, so the suite's other areas keep botocore and the handlers as they ship. Every handler
    # module is imported first: one first imported while patched would keep the stand-in for good.
    for module in pkgutil.iter_modules(handlers.__path__):
        importlib.import_module(f"handlers.{module.name}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(botocore.session, "create_loader", shared_loader)
        for module in [m for name, m in list(sys.modules.items()) if name.startswith("handlers.")]:
            if getattr(module, "client", None) is _real_client:
                mp.setattr(module, "client", reused_client)
        yield
        _CLIENTS.clear()  # the next module's moto world listens on another port
