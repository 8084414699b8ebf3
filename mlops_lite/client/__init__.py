"""The HTTP implementation of the Platform's facets."""

from mlops_lite.client.remote import RemotePlatform

__all__ = ["RemotePlatform"]
