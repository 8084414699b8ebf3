"""The Litestar server: inference and control-plane HTTP API over a Platform."""

from server.app import create_app

__all__ = ["create_app"]
