"""The on-disk format of an encrypted object: AES-256-GCM in chunks (a STREAM-like
construction), so large objects encrypt and decrypt in bounded memory and a byte range
decrypts only the chunks it touches.

    header  = MAGIC (8) | key id length (1) | key id (ascii) | salt (16)
    chunk i = AES-256-GCM(file key, nonce = i as 12 bytes, aad = header | i | last?)
              over at most CHUNK plaintext bytes, tag appended (16 bytes)

The file key is HKDF-SHA256(data key, salt): every file has its own key, so nonces
never repeat under one key. The ``last`` flag in each chunk's associated data makes a
truncated file fail to decrypt instead of reading as a shorter one. An empty payload is
one empty final chunk.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mlops_lite.errors import IntegrityError

MAGIC = b"MLLENC\x01\x00"
CHUNK = 1 << 20
TAG = 16
SALT = 16


def file_key(data_key: bytes, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"mlops-lite object").derive(data_key)


def is_encrypted(head: bytes) -> bool:
    return head.startswith(MAGIC)


def _header(key_id: str, salt: bytes) -> bytes:
    raw = key_id.encode("ascii")
    return MAGIC + bytes([len(raw)]) + raw + salt


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + index.to_bytes(8, "big") + (b"\x01" if last else b"\x00")


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def encrypt_chunks(chunks: Iterator[bytes], key_id: str, data_key: bytes) -> Iterator[bytes]:
    """Encrypted output for plaintext ``chunks`` (any sizes), header first."""
    salt = os.urandom(SALT)
    header = _header(key_id, salt)
    aead = AESGCM(file_key(data_key, salt))
    yield header
    index = 0
    pending = b""
    for piece in chunks:
        pending += piece
        while len(pending) > CHUNK:  # keep a whole chunk back: the last one is only known at the end
            block, pending = pending[:CHUNK], pending[CHUNK:]
            yield aead.encrypt(_nonce(index), block, _aad(header, index, False))
            index += 1
    yield aead.encrypt(_nonce(index), pending, _aad(header, index, True))


def encrypt_bytes(data: bytes, key_id: str, data_key: bytes) -> bytes:
    return b"".join(encrypt_chunks(iter((data,)), key_id, data_key))


def read_header(stream: BinaryIO) -> tuple[str, bytes, bytes] | None:
    """(key id, salt, header bytes) of an encrypted file, or None for a plaintext one
    (the stream is left at its start then)."""
    head = stream.read(len(MAGIC) + 1)
    if not is_encrypted(head):
        stream.seek(0)
        return None
    length = head[-1]
    rest = stream.read(length + SALT)
    if len(rest) != length + SALT:
        raise IntegrityError("an encrypted object's header is truncated")
    key_id = rest[:length].decode("ascii")
    return key_id, rest[length:], head + rest


def plaintext_size(encrypted_size: int, header_size: int) -> int:
    body = encrypted_size - header_size
    chunks = max(1, -(-body // (CHUNK + TAG)))
    return body - chunks * TAG


class DecryptingReader(io.RawIOBase):
    """A seekable, read-only file of the plaintext of an encrypted file. Each chunk is
    authenticated before a byte of it is returned."""

    def __init__(self, raw: BinaryIO, key_for: Callable[[str], bytes], *, name: str = "") -> None:
        super().__init__()
        self._raw = raw
        self.name = name
        header = read_header(raw)
        if header is None:
            raise IntegrityError(f"{name or 'the object'} is not encrypted")
        key_id, salt, self._header = header
        self._aead = AESGCM(file_key(key_for(key_id), salt))
        raw.seek(0, os.SEEK_END)
        self._encrypted_size = raw.tell()
        self.size = plaintext_size(self._encrypted_size, len(self._header))
        self._chunks = max(1, -(-(self._encrypted_size - len(self._header)) // (CHUNK + TAG)))
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None
        self._sealed: bytearray | None = None  # one buffer the sealed chunks are read into

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self._pos = offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self.size + offset
        self._pos = max(self._pos, 0)
        return self._pos

    def _chunk(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        self._raw.seek(len(self._header) + index * (CHUNK + TAG))
        if self._sealed is None:
            self._sealed = bytearray(min(CHUNK + TAG, self._encrypted_size - len(self._header)))
        sealed = memoryview(self._sealed)[:self._raw.readinto(self._sealed)]  # type: ignore[attr-defined]  # files and BytesIO have it
        last = index == self._chunks - 1
        try:
            plain = self._aead.decrypt(_nonce(index), sealed, _aad(self._header, index, last))
        except InvalidTag as exc:
            raise IntegrityError(f"{self.name or 'an encrypted object'} fails authentication at chunk {index}: "
                                 "it was altered or truncated, or the key is wrong") from exc
        self._cached = (index, plain)
        return plain

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.size - self._pos
        size = min(size, self.size - self._pos)
        if size <= 0:
            return b""
        out = []
        while size > 0:
            index, offset = divmod(self._pos, CHUNK)
            piece = self._chunk(index)[offset:offset + size]
            if not piece:
                break
            out.append(piece)
            self._pos += len(piece)
            size -= len(piece)
        return b"".join(out)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def decrypt_bytes(blob: bytes, key_for: Callable[[str], bytes]) -> bytes:
    with DecryptingReader(io.BytesIO(blob), key_for) as reader:
        return reader.read()
