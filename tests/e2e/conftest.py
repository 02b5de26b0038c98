"""What every end-to-end module shares: one botocore data loader for all the sessions the handlers open.

handlers.common.client opens a new boto3.Session per client (as a Lambda would per invocation); each new
session gets a new loader, which parses the service's JSON model again (measured: over half of a factory
pipeline run's CPU). The models are read-only data, so the e2e sessions share one loader, exactly as the
clients of one session do; what each session sends is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import botocore.loaders
import botocore.session
import pytest


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


@pytest.fixture(scope="module", autouse=True)
def one_model_loader() -> Iterator[None]:
    # Per module, so the suite's other areas keep botocore as it ships.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(botocore.session, "create_loader", shared_loader)
        yield
