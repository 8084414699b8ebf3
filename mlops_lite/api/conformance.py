"""The proof, for mypy, that both implementations are the Platform API: each function
below type-checks only if its argument conforms to ``PlatformAPI`` (every facet, every
verb, the same signatures and records). Nothing here runs; CI runs mypy over it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_lite.api import PlatformAPI
    from mlops_lite.client import RemotePlatform
    from mlops_lite.platform import Platform


def local_platform_is_the_api(platform: Platform) -> PlatformAPI:
    return platform


def remote_platform_is_the_api(platform: RemotePlatform) -> PlatformAPI:
    return platform
