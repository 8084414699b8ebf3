"""Content-addressed object storage on disk: ``objects/ab/cdef...`` by sha256.

Writes go to a temporary file in the same folder and are renamed into place, so
a crash leaves either the whole object or nothing. Objects are immutable.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from pathlib import Path
from typing import BinaryIO

from mlops_lite.errors import IntegrityError, InvalidInput, NotFound

_CHUNK = 1 << 20
_SMALL = 4 << 20
_COUNTER = itertools.count()


class ObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        present = set(os.listdir(self.root))
        for prefix in (f"{i:02x}" for i in range(256)):
            if prefix not in present:
                (self.root / prefix).mkdir(exist_ok=True)

    def path_of(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise InvalidInput("not a sha256 digest", field="digest", expected="64 lowercase hex characters")
        return self.root / digest[:2] / digest[2:]

    def put_bytes(self, data: bytes, *, fsync: bool = True) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_of(digest)
        if target.exists():
            _touch(target)
        else:
            self._write(target, [data], fsync=fsync)
        return digest, len(data)

    def put_stream(self, stream: BinaryIO, *, fsync: bool = True) -> tuple[str, int]:
        """Store a stream in bounded memory; returns (digest, size). With ``fsync=False``
        the caller makes the batch durable itself (``sync()``) before anything refers to it."""
        hasher = hashlib.sha256()
        size = 0
        tmp = self._temp_name(self.root)
        try:
            with open(tmp, "xb") as out:
                while chunk := stream.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                if fsync:
                    os.fsync(out.fileno())
            digest = hasher.hexdigest()
            target = self.path_of(digest)
            if target.exists():
                os.unlink(tmp)
                _touch(target)
            else:
                os.replace(tmp, target)
                os.chmod(target, 0o444)
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
        if verify and hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(f"object {digest} at {target} does not match its digest")
        return data

    def exists(self, digest: str) -> bool:
        return self.path_of(digest).exists()

    def _write(self, target: Path, chunks: list[bytes], *, fsync: bool = True) -> None:
        tmp = self._temp_name(target.parent)
        try:
            with open(tmp, "xb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                if fsync:
                    os.fsync(out.fileno())
            os.replace(tmp, target)
            os.chmod(target, 0o444)
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
