"""Content-addressed object storage on disk, by sha256 of the content.

Writes go to a temporary file in the same folder and are renamed into place, so
a crash leaves either the whole object or nothing. Objects are immutable.

Plaintext store: ``objects/ab/cdef...`` is the sha256 and the bytes are the content.
Encrypted store (``cipher`` given): the file's name is a keyed digest,
HMAC-SHA256(names key, sha256), so that someone holding the disk cannot tell which
files hold a known content or that two homes hold the same one, while equal contents
still land in one file (deduplication keeps working); the bytes are the content under
AES-256-GCM (``mlops_lite.crypto.envelope``). The sha256 stays the object's address
everywhere above this class (trees, model versions, the APIs), and lives only in the
metadata store, which is encrypted too.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from mlops_lite.errors import IntegrityError, InvalidInput, NotFound

if TYPE_CHECKING:
    from mlops_lite.crypto.cipher import ObjectCipher

_CHUNK = 1 << 20
_SMALL = 4 << 20
_COUNTER = itertools.count()
_HEX = frozenset("0123456789abcdef")


class ObjectStore:
    def __init__(self, root: Path, cipher: ObjectCipher | None = None) -> None:
        self.root = root
        self.cipher = cipher
        self.root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # objects/, beside data/ and artifacts/
        self.root.mkdir(mode=0o700, exist_ok=True)
        present = set(os.listdir(self.root))
        for prefix in (f"{i:02x}" for i in range(256)):
            if prefix not in present:
                (self.root / prefix).mkdir(mode=0o700, exist_ok=True)

    @property
    def encrypted(self) -> bool:
        return self.cipher is not None

    @staticmethod
    def check_digest(digest: str) -> str:
        if len(digest) != 64 or not _HEX.issuperset(digest):
            raise InvalidInput("not a sha256 digest", field="digest", expected="64 lowercase hex characters")
        return digest

    def name_of(self, digest: str) -> str:
        """The file name of object ``digest`` on disk (a keyed digest when encrypted)."""
        self.check_digest(digest)
        return self.cipher.name(digest) if self.cipher is not None else digest

    def path_of(self, digest: str) -> Path:
        """The file that holds object ``digest``: its ciphertext when the store is
        encrypted. Read contents with ``open``/``get_bytes``, never from this path."""
        name = self.name_of(digest)
        return self.root / name[:2] / name[2:]

    def put_bytes(self, data: bytes, *, fsync: bool = True) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_of(digest)
        if target.exists():
            _touch(target)
        elif self.cipher is not None:
            # The header and sealed chunks written as they come: joining them first cost a copy
            # of the object (and its fresh pages) per write, about half of the encryption's cost.
            self._write(target, list(self.cipher.encrypt_chunks(iter((data,)))), fsync=fsync)
        else:
            self._write(target, [data], fsync=fsync)
        return digest, len(data)

    def put_stream(self, stream: BinaryIO, *, fsync: bool = True) -> tuple[str, int]:
        """Store a stream in bounded memory; returns (digest, size). With ``fsync=False``
        the caller makes the batch durable itself (``sync()``) before anything refers to it."""
        hasher = hashlib.sha256()
        size = 0

        def chunks() -> Iterator[bytes]:
            nonlocal size
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
                size += len(chunk)
                yield chunk

        tmp = self._temp_name(self.root)
        try:
            with open(tmp, "xb") as out:
                os.fchmod(out.fileno(), 0o600)
                for piece in (self.cipher.encrypt_chunks(chunks()) if self.cipher is not None else chunks()):
                    out.write(piece)
                out.flush()
                if fsync:
                    os.fsync(out.fileno())
            digest = hasher.hexdigest()
            target = self.path_of(digest)
            if target.exists():
                os.unlink(tmp)
                _touch(target)
            else:
                os.chmod(tmp, 0o400)
                os.replace(tmp, target)
            return digest, size
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def put_file(self, path: Path, *, fsync: bool = True) -> tuple[str, int]:
        """Store a file. Small files are read once; a large one is hashed first, so
        a file the store already holds costs one read and no write."""
        size = path.stat().st_size
        if size <= _SMALL:
            return self.put_bytes(path.read_bytes(), fsync=fsync)
        hasher = hashlib.sha256()
        with open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
        target = self.path_of(hasher.hexdigest())
        if target.exists():
            _touch(target)
            return hasher.hexdigest(), size
        with open(path, "rb") as stream:
            return self.put_stream(stream, fsync=fsync)

    @staticmethod
    def sync() -> None:
        """Flush every write to disk at once: one call instead of an fsync per object."""
        os.sync()

    def get_bytes(self, digest: str, *, verify: bool = True) -> bytes:
        target = self.path_of(digest)
        try:
            data = target.read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"object {digest} is not in the store {self.root}") from exc
        if self.cipher is not None:
            try:
                data = self.cipher.decrypt_bytes(data, name=digest)
            except IntegrityError as exc:
                raise IntegrityError(f"object {digest} at {target} does not match its digest: {exc}") from exc
        if verify and hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(f"object {digest} at {target} does not match its digest")
        return data

    def open(self, digest: str) -> BinaryIO:
        """The object's content as a seekable binary file (decrypted as it is read)."""
        target = self.path_of(digest)
        try:
            raw = open(target, "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"object {digest} is not in the store {self.root}") from exc
        if self.cipher is None:
            return raw
        return io.BufferedReader(self.cipher.reader(raw, name=digest), buffer_size=_CHUNK)

    def size(self, digest: str) -> int:
        """The content's size in bytes."""
        try:
            return self.content_size(self.path_of(digest))
        except FileNotFoundError as exc:
            raise NotFound(f"object {digest} is not in the store {self.root}") from exc

    def content_size(self, path: Path) -> int:
        """The size of the content an object file holds."""
        if self.cipher is None:
            return path.stat().st_size
        with open(path, "rb") as raw:
            return self.cipher.plaintext_size(raw)

    def read_range(self, digest: str, first: int, last: int) -> bytes:
        """Bytes ``first``..``last`` (inclusive) of the content."""
        with self.open(digest) as stream:
            stream.seek(first)
            return stream.read(last - first + 1)

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).exists()

    def files(self) -> list[tuple[str, Path]]:
        """(name on disk, path) of every object file (names are keyed digests when encrypted)."""
        out = []
        for sub in sorted(os.listdir(self.root)):
            folder = self.root / sub
            if len(sub) != 2 or not folder.is_dir():
                continue
            for name in os.listdir(folder):
                if not name.startswith("."):
                    out.append((sub + name, folder / name))
        return out

    def verify_file(self, name: str, path: Path) -> str | None:
        """The digest of the content of an object file when it is sound (authenticates, and
        its name is the one its content gets), else None."""
        hasher = hashlib.sha256()
        try:
            with (self.cipher.reader(open(path, "rb"), name=name) if self.cipher is not None
                  else open(path, "rb")) as stream:
                while chunk := stream.read(_CHUNK):
                    hasher.update(chunk)
        except IntegrityError:
            return None
        digest = hasher.hexdigest()
        return digest if self.name_of(digest) == name else None

    def _write(self, target: Path, chunks: list[bytes], *, fsync: bool = True) -> None:
        tmp = self._temp_name(target.parent)
        try:
            with open(tmp, "xb") as out:
                os.fchmod(out.fileno(), 0o600)
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                if fsync:
                    os.fsync(out.fileno())
            os.chmod(tmp, 0o400)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @staticmethod
    def _temp_name(folder: Path) -> Path:
        # Unique per process, thread and call: cheaper than mkstemp's random names.
        return folder / f".incoming-{os.getpid()}-{threading.get_ident()}-{next(_COUNTER)}"


def _touch(target: Path) -> None:
    """Mark an existing object as just written: gc spares young objects, and a writer
    that is about to refer to this one must not lose it in between."""
    os.utime(target)
