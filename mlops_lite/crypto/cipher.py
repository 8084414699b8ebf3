"""``ObjectCipher``: what an encrypted object store needs, from two data keys: the
content key (AES-256-GCM, ``envelope``) and the names key (keyed digests)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import BinaryIO

from mlops_lite.crypto import envelope
from mlops_lite.crypto.keys import DataKey
from mlops_lite.errors import IntegrityError


class ObjectCipher:
    def __init__(self, content: DataKey, names: DataKey) -> None:
        self._content = content
        self._names = names

    def __repr__(self) -> str:
        return f"ObjectCipher(content={self._content.id!r}, names={self._names.id!r})"

    def name(self, digest: str) -> str:
        return hmac.new(self._names.key, bytes.fromhex(digest), hashlib.sha256).hexdigest()

    def key_for(self, key_id: str) -> bytes:
        if key_id != self._content.id:
            raise IntegrityError(f"an object is encrypted under data key {key_id}, which this keyring lacks")
        return self._content.key

    def encrypt_bytes(self, data: bytes) -> bytes:
        return envelope.encrypt_bytes(data, self._content.id, self._content.key)

    def encrypt_chunks(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        return envelope.encrypt_chunks(chunks, self._content.id, self._content.key)

    def decrypt_bytes(self, blob: bytes, *, name: str = "") -> bytes:
        if not envelope.is_encrypted(blob):
            raise IntegrityError(f"object {name} is stored in plaintext in an encrypted store "
                                 "(run `mlops-lite keys encrypt-home` to finish encrypting the home)")
        return envelope.decrypt_bytes(blob, self.key_for)

    def reader(self, raw: BinaryIO, *, name: str = "") -> envelope.DecryptingReader:
        return envelope.DecryptingReader(raw, self.key_for, name=name)

    def plaintext_size(self, raw: BinaryIO) -> int:
        header = envelope.read_header(raw)
        if header is None:
            raise IntegrityError("an object is stored in plaintext in an encrypted store")
        raw.seek(0, 2)
        return envelope.plaintext_size(raw.tell(), len(header[2]))
