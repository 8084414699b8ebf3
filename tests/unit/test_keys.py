"""Keys: the keyfile, the environment and a plug-in KMS wrap a home's data keys; rotation
re-wraps them (payloads stay as they are and stay readable) and retires the old key."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from mlops_lite.config import Settings
from mlops_lite.crypto.cipher import ObjectCipher
from mlops_lite.crypto.keys import ENV_KEY, ENV_PREVIOUS, EnvKms, Keyring, LocalKms, load_kms
from mlops_lite.errors import IntegrityError, InvalidInput, NotFound
from mlops_lite.objects import ObjectStore
from mlops_lite.privacy.protection import open_protection


def _store(ring: Keyring, root: Path) -> ObjectStore:
    return ObjectStore(root, ObjectCipher(ring.data_key("objects"), ring.data_key("names")))


def test_a_keyfile_is_made_0600_and_a_readable_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "master.key"
    with pytest.raises(NotFound, match="does not exist"):
        LocalKms(path)
    kms = LocalKms(path, create=True)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert LocalKms(path).current_id() == kms.current_id()
    path.chmod(0o644)
    with pytest.raises(InvalidInput) as bad:
        LocalKms(path)
    assert bad.value.field == "key_file"


def test_the_keyring_unwraps_in_another_process_and_never_shows_a_key(tmp_path: Path) -> None:
    kms = LocalKms(tmp_path / "master.key", create=True)
    ring = Keyring.create(tmp_path / "keyring.json", kms)
    objects = ring.data_key("objects")
    again = Keyring(tmp_path / "keyring.json", LocalKms(tmp_path / "master.key"))
    assert again.data_key("objects").key == objects.key
    text = (tmp_path / "keyring.json").read_text()
    assert base64.b64encode(objects.key).decode() not in text and objects.key.hex() not in text
    assert "key=" not in repr(objects) and objects.key.hex() not in repr(objects)
    assert (tmp_path / "keyring.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(InvalidInput):
        ring.data_key("nonsense")


def test_a_wrong_key_encryption_key_fails_loudly(tmp_path: Path) -> None:
    Keyring.create(tmp_path / "keyring.json", LocalKms(tmp_path / "master.key", create=True))
    (tmp_path / "master.key").unlink()
    other = LocalKms(tmp_path / "master.key", create=True)
    with pytest.raises(NotFound, match="has no key"):
        Keyring(tmp_path / "keyring.json", other).data_key("objects")
    doc = json.loads((tmp_path / "master.key").read_text())
    doc["keys"][0]["id"] = json.loads((tmp_path / "keyring.json").read_text())["keys"][0]["kek"]
    doc["current"] = doc["keys"][0]["id"]
    (tmp_path / "master.key").write_text(json.dumps(doc))
    with pytest.raises(IntegrityError, match="does not unwrap"):
        Keyring(tmp_path / "keyring.json", LocalKms(tmp_path / "master.key")).data_key("objects")


def test_rotation_rewraps_without_touching_payloads_and_retires_the_old_key(tmp_path: Path) -> None:
    kms = LocalKms(tmp_path / "master.key", create=True)
    ring = Keyring.create(tmp_path / "keyring.json", kms)
    store = _store(ring, tmp_path / "objects")
    digest, _ = store.put_bytes(b"payload before rotation")
    (_, path), = store.files()
    before = path.read_bytes()
    old, new, count = ring.rotate()
    assert old != new and count == 5
    assert path.read_bytes() == before  # no payload rewritten
    reopened = Keyring(tmp_path / "keyring.json", LocalKms(tmp_path / "master.key"))
    assert {k.kek_id for k in reopened.status()} == {new}
    assert [k["id"] for k in json.loads((tmp_path / "master.key").read_text())["keys"]] == [new]  # old retired
    assert _store(reopened, tmp_path / "objects").get_bytes(digest) == b"payload before rotation"


def test_the_environment_key_and_its_rotation(tmp_path: Path) -> None:
    first, second = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(NotFound):
        EnvKms({})
    with pytest.raises(InvalidInput) as bad:
        EnvKms({ENV_KEY: "not base64!"})
    assert bad.value.field == ENV_KEY
    with pytest.raises(InvalidInput, match="16 bytes"):
        EnvKms({ENV_KEY: base64.b64encode(os.urandom(16)).decode()})
    ring = Keyring.create(tmp_path / "keyring.json", EnvKms({ENV_KEY: first}))
    key = ring.data_key("log").key
    rotated = Keyring(tmp_path / "keyring.json", EnvKms({ENV_KEY: second, ENV_PREVIOUS: first}))
    _, new, _ = rotated.rotate()
    after = Keyring(tmp_path / "keyring.json", EnvKms({ENV_KEY: second}))
    assert after.data_key("log").key == key and {k.kek_id for k in after.status()} == {new}


class _MemoryKms:
    """A KMS plug-in as a user would write one for a cloud service (here: in memory)."""

    name = "memory"

    def __init__(self) -> None:
        self._keys = {"m-1": os.urandom(32)}
        self._current = "m-1"
        self.calls: list[str] = []

    def current_id(self) -> str:
        return self._current

    def wrap(self, key: bytes, *, context: bytes) -> Any:
        from mlops_lite.crypto.keys import _wrap

        self.calls.append("wrap")
        return _wrap(self._keys[self._current], self._current, key, context)

    def unwrap(self, wrapped: Any, *, context: bytes) -> bytes:
        from mlops_lite.crypto.keys import _unwrap

        self.calls.append("unwrap")
        return _unwrap(self._keys[wrapped.kek_id], wrapped, context)

    def rotate(self) -> str:
        self._current = f"m-{len(self._keys) + 1}"
        self._keys[self._current] = os.urandom(32)
        return self._current

    def retire(self, kek_ids: Any) -> None:
        for kek_id in kek_ids:
            self._keys.pop(kek_id, None)


_PLUGIN = _MemoryKms()


def make_kms(settings: Any) -> _MemoryKms:
    return _PLUGIN


def test_a_kms_plugin_named_in_the_settings_wraps_the_keys(tmp_path: Path) -> None:
    kms = load_kms(f"{__name__}:make_kms", tmp_path / "unused.key")
    assert kms is _PLUGIN
    ring = Keyring.create(tmp_path / "keyring.json", kms)
    assert "wrap" in _PLUGIN.calls and not (tmp_path / "unused.key").exists()
    key = ring.data_key("objects").key
    ring.rotate()
    assert Keyring(tmp_path / "keyring.json", kms).data_key("objects").key == key
    with pytest.raises(InvalidInput) as bad:
        load_kms("no-colon-here", tmp_path / "k")
    assert bad.value.field == "kms"
    from mlops_lite.errors import MissingDependency

    with pytest.raises(MissingDependency):
        load_kms("no_such_module_here:factory", tmp_path / "k")


def test_a_new_home_is_encrypted_an_old_plaintext_one_stays_as_it_was(tmp_path: Path) -> None:
    new = Settings(home=tmp_path / "new")
    assert open_protection(new).encrypted and new.keyring_file.exists()
    off = Settings(home=tmp_path / "off", encryption=False)
    assert not open_protection(off).encrypted and not off.keyring_file.exists()
    # A home with data and no keyring (made before encryption existed) is not silently changed.
    old = Settings(home=tmp_path / "old")
    old.home.mkdir()
    old.database_path.write_bytes(b"")  # what an old DuckDB home has
    old.token_file.write_text("x\n")  # what an old home on PostgreSQL has
    assert not open_protection(old).encrypted and not old.keyring_file.exists()
