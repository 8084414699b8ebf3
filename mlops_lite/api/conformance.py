"""The proof, for mypy, that both implementations are the Platform API: each function
below type-checks only if its argument conforms to ``PlatformAPI`` (every facet, every
verb, the same signatures and records). Nothing here runs; CI runs mypy over it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_lite.api import DataAPI, PlatformAPI
    from mlops_lite.client import RemotePlatform
    from mlops_lite.data import DataStore
    from mlops_lite.platform import Platform


def local_platform_is_the_api(platform: Platform) -> PlatformAPI:
    # Platform.data may be the lakeFS backend, which lacks DataAPI's config, configure,
    # query, log, open, commit_record and import_directory: with the embedded store
    # (checked below) the local platform is the API. mypy flags this ignore once it is not needed.
    return platform  # type: ignore[return-value]


def embedded_data_is_the_api(data: DataStore) -> DataAPI:
    return data


def remote_platform_is_the_api(platform: RemotePlatform) -> PlatformAPI:
    return platform
