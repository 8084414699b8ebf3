"""The model registry: immutable, content-addressed, semantically versioned."""

from mlops_lite.registry.models import Registry
from mlops_lite.registry.semver import next_version

__all__ = ["Registry", "next_version"]
