"""The model registry: immutable, content-addressed, semantically versioned."""

from mlops_lite.registry.aliases import Aliases, check_alias_name
from mlops_lite.registry.models import Registry
from mlops_lite.registry.semver import next_version

__all__ = ["Aliases", "Registry", "check_alias_name", "next_version"]
