"""The proof, for mypy, that both implementations are the Platform API: each function
below type-checks only if its argument conforms to ``PlatformAPI`` (every facet, every
verb, the same signatures and records). Nothing here runs; CI runs mypy over it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_lite.api import DataAPI, PlatformAPI, ServingAPI
    from mlops_lite.client import RemotePlatform
    from mlops_lite.data import DataStore
    from mlops_lite.data.lakefs_backend import LakeFSDataStore
    from mlops_lite.platform import Platform


def local_platform_is_the_api(platform: Platform) -> PlatformAPI:
    # Platform.data is the embedded store or the lakeFS backend (data_backend="lakefs"): both below.
    return platform


def embedded_data_is_the_api(data: DataStore) -> DataAPI:
    return data


def lakefs_data_is_the_api(data: LakeFSDataStore) -> DataAPI:
    return data


def remote_platform_is_the_api(platform: RemotePlatform) -> PlatformAPI:
    return platform


def the_platform_api_serves(platform: PlatformAPI) -> ServingAPI:
    return platform
