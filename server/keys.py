"""Key routes (admin): the home's protection at rest, and the rotation of its key
encryption key (data keys re-wrapped, no payload rewritten; audited as ``keys.rotate``)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post

from mlops_lite.records import KeyRotation, KeysStatus
from server.context import actor as _actor
from server.context import platform as _platform


@get("/keys", opt={"permission": "admin"}, sync_to_thread=True)
def keys_status(request: Request[Any, Any, Any]) -> KeysStatus:
    """Whether the home is encrypted, its key encryption key, each data key's age (never a key)."""
    return _platform(request).keys.status()


@post("/keys/rotate", opt={"permission": "admin"}, status_code=200, sync_to_thread=True)
def keys_rotate(request: Request[Any, Any, Any]) -> KeyRotation:
    """A new key encryption key; every data key re-wrapped under it."""
    return _platform(request).keys.rotate(actor=_actor(request))


KEY_ROUTES = [keys_status, keys_rotate]
