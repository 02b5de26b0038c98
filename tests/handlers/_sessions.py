"""One botocore model loader for all the boto3 sessions a handler test creates.

moto resets boto3's default session on every `mock_aws()`, and a fresh session parses the service
and endpoint JSON again (about a second per test on a loaded machine). Sharing the loader keeps the
parsed models; credentials, regions and moto state stay per test.
"""

from __future__ import annotations

import boto3
import botocore.loaders
import botocore.session

_LOADER = botocore.loaders.create_loader()


def core_session() -> botocore.session.Session:
    core = botocore.session.get_session()
    core.register_component("data_loader", _LOADER)
    return core


def fast_default_session(region: str) -> None:
    """Call inside `mock_aws()`: boto3.client(...) then reuses the shared loader."""
    boto3.setup_default_session(botocore_session=core_session(), region_name=region)


def session(region: str, **credentials: str) -> boto3.Session:
    return boto3.Session(region_name=region, botocore_session=core_session(), **credentials)
