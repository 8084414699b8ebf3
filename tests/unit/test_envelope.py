"""The encrypted object format: round trips at every size that matters, authenticated
chunks (tampering, truncation, reordering and a wrong key fail loudly), range reads."""

from __future__ import annotations

import io
import os

import pytest

from mlops_lite.crypto import envelope
from mlops_lite.crypto.cipher import ObjectCipher
from mlops_lite.crypto.keys import DataKey
from mlops_lite.errors import IntegrityError
from mlops_lite.objects import ObjectStore

KEY = DataKey("objects", "objects-test", os.urandom(32))
NAMES = DataKey("names", "names-test", os.urandom(32))
C = envelope.CHUNK


def _key_for(key_id: str) -> bytes:
    assert key_id == KEY.id
    return KEY.key


@pytest.mark.parametrize("size", [0, 1, 100, C - 1, C, C + 1, 2 * C, 2 * C + 17])
def test_round_trip_at_chunk_boundaries(size: int) -> None:
    data = os.urandom(size)
    sealed = envelope.encrypt_bytes(data, KEY.id, KEY.key)
    assert envelope.is_encrypted(sealed)
    assert size < 16 or data[:64] not in sealed  # a few random bytes may occur anywhere by chance
    assert envelope.decrypt_bytes(sealed, _key_for) == data
    header = envelope.read_header(io.BytesIO(sealed))
    assert header is not None
    assert envelope.plaintext_size(len(sealed), len(header[2])) == size


def test_streamed_encryption_equals_whole_and_reads_in_ranges() -> None:
    data = os.urandom(3 * C + 5)
    pieces = [data[i:i + 70_000] for i in range(0, len(data), 70_000)]
    sealed = b"".join(envelope.encrypt_chunks(iter(pieces), KEY.id, KEY.key))
    reader = envelope.DecryptingReader(io.BytesIO(sealed), _key_for)
    assert reader.size == len(data)
    for first, length in ((0, 10), (C - 3, 10), (2 * C + 100, C), (len(data) - 4, 100)):
        reader.seek(first)
        assert reader.read(length) == data[first:first + length]
    reader.seek(0)
    assert reader.read() == data


def test_the_same_content_encrypts_differently_each_time() -> None:
    data = b"same content"
    assert envelope.encrypt_bytes(data, KEY.id, KEY.key) != envelope.encrypt_bytes(data, KEY.id, KEY.key)


def test_tampering_truncation_and_a_wrong_key_are_refused() -> None:
    data = os.urandom(2 * C + 10)
    sealed = bytearray(envelope.encrypt_bytes(data, KEY.id, KEY.key))
    flipped = bytes(sealed[:100]) + bytes([sealed[100] ^ 1]) + bytes(sealed[101:])
    with pytest.raises(IntegrityError, match="authentication"):
        envelope.decrypt_bytes(flipped, _key_for)
    header = envelope.read_header(io.BytesIO(bytes(sealed)))
    assert header is not None
    # Dropping the last chunk leaves a file whose new last chunk was not sealed as the last.
    truncated = bytes(sealed[:len(header[2]) + 2 * (C + envelope.TAG)])
    with pytest.raises(IntegrityError):
        envelope.decrypt_bytes(truncated, _key_for)
    with pytest.raises(IntegrityError):
        envelope.decrypt_bytes(bytes(sealed), lambda _: os.urandom(32))


def test_an_encrypted_store_names_files_by_keyed_digest_and_keeps_dedup(tmp_path) -> None:
    import hashlib

    store = ObjectStore(tmp_path / "objects", ObjectCipher(KEY, NAMES))
    digest, size = store.put_bytes(b"marker-content " * 100)
    again, _ = store.put_bytes(b"marker-content " * 100)
    assert again == digest == hashlib.sha256(b"marker-content " * 100).hexdigest() and size == 1500
    files = store.files()
    assert len(files) == 1
    name, path = files[0]
    assert name != digest and digest not in str(path)  # the disk does not say which content it is
    assert b"marker-content" not in path.read_bytes()
    assert store.get_bytes(digest) == b"marker-content " * 100
    assert store.size(digest) == 1500 and store.read_range(digest, 15, 28) == b"marker-content"
    assert store.verify_file(name, path) == digest
    # Another home's names key names the same content differently: no equality across homes.
    other = ObjectStore(tmp_path / "other", ObjectCipher(KEY, DataKey("names", "n2", os.urandom(32))))
    other.put_bytes(b"marker-content " * 100)
    assert other.files()[0][0] != name
    assert oct(path.stat().st_mode & 0o777) == oct(0o400)


def test_a_plaintext_file_in_an_encrypted_store_is_refused(tmp_path) -> None:
    store = ObjectStore(tmp_path / "objects", ObjectCipher(KEY, NAMES))
    digest, _ = store.put_bytes(b"abc")
    target = store.path_of(digest)
    target.chmod(0o600)
    target.write_bytes(b"abc")
    with pytest.raises(IntegrityError, match="does not match its digest"):
        store.get_bytes(digest)
