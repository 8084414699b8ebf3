"""``platform.keys``: encryption at rest: the home's protection state and key rotation
(docs/encryption.md). Over HTTP both need the admin role."""

from __future__ import annotations

from typing import Protocol

from mlops_lite.records import KeyRotation, KeysStatus


class KeysAPI(Protocol):
    def status(self) -> KeysStatus:
        """Whether the home is encrypted, which KMS and key encryption key, and each data
        key's purpose, id and age. Never a key."""
        ...

    def rotate(self, *, actor: str | None = None) -> KeyRotation:
        """A new key encryption key becomes current and every data key is re-wrapped under
        it (payloads are not rewritten); the old key encryption key is retired. Audited as
        ``keys.rotate``. PolicyViolation on a home that is not encrypted."""
        ...
