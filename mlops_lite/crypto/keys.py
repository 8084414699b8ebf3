"""Keys for encryption at rest: a key encryption key (KEK) from a KMS wraps the data
keys (DEKs) of a keyring; the payloads are encrypted under the data keys.

- ``Kms`` is the small interface a key service implements: ``wrap``/``unwrap`` a data
  key under the current (or a named) KEK, ``rotate`` to a new KEK version. Three come
  with mlops-lite: ``LocalKms`` (a 0600 keyfile holding every KEK version),
  ``EnvKms`` (``MLOPS_LITE_MASTER_KEY``, base64 of 32 bytes; the previous value in
  ``MLOPS_LITE_MASTER_KEY_PREVIOUS`` while rotating) and any class named by the
  ``kms`` setting (``"package.module:factory"``, called with the settings) for a
  cloud KMS. docs/encryption.md describes the contract.
- ``Keyring`` keeps the wrapped data keys in ``<home>/keys/keyring.json`` (0600), one
  per purpose: ``objects`` (data and artifact contents), ``names`` (keyed object names),
  ``metadata`` (the DuckDB file), ``log`` (prediction log and feedback Parquet) and
  ``anonymize`` (the root of per-repository pseudonymization keys). Rotation re-wraps
  every data key under a new KEK: payloads are not rewritten, and the old KEK can go.

A keyring file is replaced atomically (a temporary file, fsync, rename), so a crash
leaves the old keyring or the new one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mlops_lite.errors import IntegrityError, InvalidInput, MissingDependency, NotFound

PURPOSES = ("objects", "names", "metadata", "log", "anonymize")
ENV_KEY = "MLOPS_LITE_MASTER_KEY"
ENV_PREVIOUS = "MLOPS_LITE_MASTER_KEY_PREVIOUS"
KEY_BYTES = 32


@dataclass(frozen=True)
class WrappedKey:
    kek_id: str
    blob: bytes


@runtime_checkable
class Kms(Protocol):
    """What a key service offers the keyring. ``context`` is bound to the wrapped key
    (authenticated, not secret): a wrapped key moved to another purpose fails to unwrap."""

    name: str

    def current_id(self) -> str: ...

    def wrap(self, key: bytes, *, context: bytes) -> WrappedKey: ...

    def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes: ...

    def rotate(self) -> str:
        """Make a new KEK version current; return its id. Older versions still unwrap."""
        ...

    def retire(self, kek_ids: Iterable[str]) -> None:
        """Forget KEK versions that no data key is wrapped under any more."""
        ...


def _wrap(kek: bytes, kek_id: str, key: bytes, context: bytes) -> WrappedKey:
    nonce = secrets.token_bytes(12)
    return WrappedKey(kek_id, nonce + AESGCM(kek).encrypt(nonce, key, context + b"|" + kek_id.encode()))


def _unwrap(kek: bytes, wrapped: WrappedKey, context: bytes) -> bytes:
    try:
        return AESGCM(kek).decrypt(wrapped.blob[:12], wrapped.blob[12:], context + b"|" + wrapped.kek_id.encode())
    except InvalidTag as exc:
        raise IntegrityError(f"a data key wrapped under {wrapped.kek_id} does not unwrap: the key encryption "
                             "key is not the one it was wrapped with, or the keyring was altered") from exc


def fingerprint(key: bytes) -> str:
    """A public name for a key that reveals nothing about it."""
    return hmac.new(key, b"mlops-lite key id", hashlib.sha256).hexdigest()[:12]


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, mode 0600, its folder 0700."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def fsync_path(path: Path) -> None:
    """Make a file's content, or a folder's entries (a rename into it), durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class LocalKms:
    """KEK versions in a 0600 JSON keyfile: ``{"current": id, "keys": [{id, key, created_at}]}``.
    Put the file outside the home (``key_file``) so that a copy of the home alone
    (a backup, a stolen disk) does not carry its key."""

    name = "keyfile"

    def __init__(self, path: Path, *, create: bool = False) -> None:
        self.path = path
        if not path.exists():
            if not create:
                raise NotFound(f"the key file {path} does not exist; the home's data keys cannot be unwrapped "
                               "without it (restore it from your backup, or point key_file at it)")
            key = secrets.token_bytes(KEY_BYTES)
            self._doc: dict[str, Any] = {"current": f"kek-{fingerprint(key)}",
                         "keys": [{"id": f"kek-{fingerprint(key)}", "key": _b64(key), "created_at": _now()}]}
            write_private(path, json.dumps(self._doc, indent=1).encode())
        else:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                raise InvalidInput(f"the key file {path} is readable by others (mode {mode:o}); "
                                   f"chmod 600 {path}", field="key_file", expected="a file of mode 0600")
            try:
                self._doc = json.loads(path.read_bytes())
                self._keys = {k["id"]: base64.b64decode(k["key"]) for k in self._doc["keys"]}
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidInput(f"the key file {path} is not a mlops-lite key file", field="key_file",
                                   expected='{"current": id, "keys": [...]}') from exc
        self._keys = {k["id"]: base64.b64decode(k["key"]) for k in self._doc["keys"]}

    def current_id(self) -> str:
        return str(self._doc["current"])

    def created_at(self, kek_id: str) -> str | None:
        return next((k.get("created_at") for k in self._doc["keys"] if k["id"] == kek_id), None)

    def wrap(self, key: bytes, *, context: bytes) -> WrappedKey:
        kek_id = self.current_id()
        return _wrap(self._keys[kek_id], kek_id, key, context)

    def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes:
        kek = self._keys.get(wrapped.kek_id)
        if kek is None:
            raise NotFound(f"the key file {self.path} has no key {wrapped.kek_id}: it was retired, or this "
                           "is not the home's key file")
        return _unwrap(kek, wrapped, context)

    def rotate(self) -> str:
        key = secrets.token_bytes(KEY_BYTES)
        kek_id = f"kek-{fingerprint(key)}"
        self._doc["keys"].append({"id": kek_id, "key": _b64(key), "created_at": _now()})
        self._doc["current"] = kek_id
        write_private(self.path, json.dumps(self._doc, indent=1).encode())
        self._keys[kek_id] = key
        return kek_id

    def retire(self, kek_ids: Iterable[str]) -> None:
        gone = set(kek_ids) - {self.current_id()}
        self._doc["keys"] = [k for k in self._doc["keys"] if k["id"] not in gone]
        write_private(self.path, json.dumps(self._doc, indent=1).encode())
        for kek_id in gone:
            self._keys.pop(kek_id, None)


class EnvKms:
    """The KEK from the environment: ``MLOPS_LITE_MASTER_KEY`` (base64 of 32 bytes). To
    rotate, set the new value there and the old one in ``MLOPS_LITE_MASTER_KEY_PREVIOUS``,
    run ``mlops-lite keys rotate``, then drop the previous one."""

    name = "environment"

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._keys: dict[str, bytes] = {}
        self._current = ""
        for variable in (ENV_PREVIOUS, ENV_KEY):
            raw = env.get(variable)
            if not raw:
                continue
            try:
                key = base64.b64decode(raw, validate=True)
            except ValueError as exc:
                raise InvalidInput(f"{variable} is not base64", field=variable,
                                   expected="base64 of 32 random bytes (head -c32 /dev/urandom | base64)") from exc
            if len(key) != KEY_BYTES:
                raise InvalidInput(f"{variable} holds {len(key)} bytes", field=variable,
                                   expected="base64 of 32 random bytes (head -c32 /dev/urandom | base64)")
            kek_id = f"env-{fingerprint(key)}"
            self._keys[kek_id] = key
            if variable == ENV_KEY:
                self._current = kek_id
        if not self._current:
            raise NotFound(f"{ENV_KEY} is not set", )

    def current_id(self) -> str:
        return self._current

    def wrap(self, key: bytes, *, context: bytes) -> WrappedKey:
        return _wrap(self._keys[self._current], self._current, key, context)

    def unwrap(self, wrapped: WrappedKey, *, context: bytes) -> bytes:
        kek = self._keys.get(wrapped.kek_id)
        if kek is None:
            raise NotFound(f"the data keys are wrapped under {wrapped.kek_id}, which neither {ENV_KEY} nor "
                           f"{ENV_PREVIOUS} holds")
        return _unwrap(kek, wrapped, context)

    def rotate(self) -> str:
        return self._current  # the operator rotates the variable; the keyring re-wraps under it

    def retire(self, kek_ids: Iterable[str]) -> None:
        return None


def load_kms(spec: str | None, key_file: Path, *, create: bool = False, settings: Any = None) -> Kms:
    """The KMS the settings name: ``None``/``"keyfile"`` (``key_file``), ``"env"``, or
    ``"package.module:factory"`` (called with the settings; returns a ``Kms``)."""
    if spec in (None, "", "keyfile"):
        if os.environ.get(ENV_KEY):
            return EnvKms()
        return LocalKms(key_file, create=create)
    if spec == "env":
        return EnvKms()
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise InvalidInput(f"kms {spec!r} is not 'keyfile', 'env' or 'package.module:factory'", field="kms",
                           expected="keyfile | env | package.module:factory")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise MissingDependency(f"the kms {spec!r} cannot be loaded: {exc}") from exc
    kms = factory(settings)
    if not isinstance(kms, Kms):
        raise InvalidInput(f"the kms factory {spec!r} returned {type(kms).__name__}, not a Kms", field="kms",
                           expected="an object with current_id, wrap, unwrap, rotate and retire")
    return kms


@dataclass(frozen=True)
class DataKey:
    purpose: str
    id: str
    key: bytes

    def __repr__(self) -> str:  # never a key in a log or a traceback
        return f"DataKey(purpose={self.purpose!r}, id={self.id!r})"


@dataclass(frozen=True)
class KeyStatus:
    purpose: str
    id: str
    kek_id: str
    created_at: str
    wrapped_at: str


class Keyring:
    """The data keys of one home, wrapped by a KMS, in a 0600 file."""

    def __init__(self, path: Path, kms: Kms) -> None:
        self.path = path
        self.kms = kms
        self._doc: dict[str, Any] = json.loads(path.read_bytes()) if path.exists() else {"version": 1, "keys": []}
        self._cache: dict[str, DataKey] = {}

    @classmethod
    def create(cls, path: Path, kms: Kms) -> Keyring:
        """A keyring with a fresh data key per purpose (keeps one that exists)."""
        ring = cls(path, kms)
        for purpose in PURPOSES:
            ring._ensure(purpose)
        return ring

    @property
    def exists(self) -> bool:
        return self.path.exists()

    def _ensure(self, purpose: str) -> DataKey:
        if any(k["purpose"] == purpose for k in self._doc["keys"]):
            return self.data_key(purpose)
        key = secrets.token_bytes(KEY_BYTES)
        key_id = f"{purpose}-{fingerprint(key)}"
        wrapped = self.kms.wrap(key, context=self._context(purpose, key_id))
        now = _now()
        self._doc["keys"].append({"purpose": purpose, "id": key_id, "kek": wrapped.kek_id,
                                  "wrapped": _b64(wrapped.blob), "created_at": now, "wrapped_at": now})
        self._save()
        data_key = DataKey(purpose, key_id, key)
        self._cache[purpose] = data_key
        return data_key

    @staticmethod
    def _context(purpose: str, key_id: str) -> bytes:
        return f"mlops-lite/{purpose}/{key_id}".encode()

    def data_key(self, purpose: str) -> DataKey:
        if purpose not in PURPOSES:
            raise InvalidInput(f"no data key purpose {purpose!r}", field="purpose", expected=" | ".join(PURPOSES))
        cached = self._cache.get(purpose)
        if cached is not None:
            return cached
        entry = next((k for k in self._doc["keys"] if k["purpose"] == purpose), None)
        if entry is None:
            return self._ensure(purpose)
        key = self.kms.unwrap(WrappedKey(entry["kek"], base64.b64decode(entry["wrapped"])),
                              context=self._context(purpose, entry["id"]))
        data_key = DataKey(purpose, entry["id"], key)
        self._cache[purpose] = data_key
        return data_key

    def status(self) -> list[KeyStatus]:
        return [KeyStatus(k["purpose"], k["id"], k["kek"], k["created_at"], k.get("wrapped_at", k["created_at"]))
                for k in self._doc["keys"]]

    def rotate(self) -> tuple[str, str, int]:
        """A new KEK version, every data key re-wrapped under it, the old versions retired.
        Returns (old KEK id, new KEK id, data keys re-wrapped). Payloads are untouched."""
        keys = {k["purpose"]: self.data_key(k["purpose"]) for k in self._doc["keys"]}  # unwrap under the old
        old = {k["kek"] for k in self._doc["keys"]}
        old_id = self.kms.current_id()
        new_id = self.kms.rotate()
        now = _now()
        for entry in self._doc["keys"]:
            data_key = keys[entry["purpose"]]
            wrapped = self.kms.wrap(data_key.key, context=self._context(entry["purpose"], entry["id"]))
            entry.update(kek=wrapped.kek_id, wrapped=_b64(wrapped.blob), wrapped_at=now)
        self._save()
        self.kms.retire(old - {new_id})
        return old_id, new_id, len(keys)

    def _save(self) -> None:
        write_private(self.path, json.dumps(self._doc, indent=1).encode())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
