"""``mlops-lite keys encrypt-home``: encrypt a home made before encryption existed, in
place and crash-safe.

Order, each step idempotent, so that running the command again after a crash finishes
the job (the home refuses to open while ``keys/encrypting`` exists):

1. the marker ``keys/encrypting``, then the key file and the keyring;
2. every object of the data and artifact stores: its plaintext file (named by its
   sha256) is encrypted into a temporary file, made durable and renamed to its keyed
   name; only then is the plaintext file removed;
3. the DuckDB metadata file: checkpointed, copied whole into an encrypted database
   beside it, made durable and renamed over the original (the original is intact until
   that rename);
4. the prediction log, feedback and error files, rewritten encrypted one by one;
5. the marker removed, and the event ``keys.encrypt-home`` appended to the audit chain.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_lite.config import Settings
from mlops_lite.crypto import envelope
from mlops_lite.crypto.cipher import ObjectCipher
from mlops_lite.crypto.keys import Keyring, fsync_path, write_private
from mlops_lite.daemon import read_daemon
from mlops_lite.errors import Conflict, IntegrityError, InvalidInput
from mlops_lite.objects import ObjectStore
from mlops_lite.privacy.protection import kms_of

Progress = Callable[[str, int, int], None]


@dataclass
class EncryptionReport:
    objects_encrypted: int = 0
    objects_already: int = 0
    objects_unsound: list[str] = field(default_factory=list)
    """Plaintext files whose content does not match their name: left as they were."""
    metadata: str = "skipped"  # "encrypted", "already", "postgresql"
    log_files: int = 0
    resumed: bool = False


def encrypt_home(settings: Settings, *, actor: str = "system:keys", progress: Progress | None = None) -> EncryptionReport:
    daemon = read_daemon(settings.daemon_file)
    if daemon is not None:
        raise Conflict(f"the daemon (pid {daemon.pid}) has the home open: stop it (`mlops-lite down` or SIGTERM) "
                       "before encrypting the home")
    if not settings.home.exists():
        raise InvalidInput(f"no home at {settings.home}", field="home", expected="an existing mlops-lite home")
    report = EncryptionReport(resumed=settings.encrypting_marker.exists())
    if settings.keyring_file.exists() and not report.resumed:
        raise Conflict(f"the home {settings.home} is encrypted already (keys/keyring.json)")
    write_private(settings.encrypting_marker, b"mlops-lite keys encrypt-home is in progress; run it again to finish\n")
    keyring = Keyring.create(settings.keyring_file, kms_of(settings, create=True))
    cipher = ObjectCipher(keyring.data_key("objects"), keyring.data_key("names"))
    for store in ("data", "artifacts"):
        root = settings.objects_dir / store
        if root.exists():
            _encrypt_objects(ObjectStore(root, cipher), report, progress)
    if settings.database_url is None:
        import base64

        report.metadata = encrypt_duckdb(settings.database_path, base64.b64encode(
            keyring.data_key("metadata").key).decode())
    else:
        report.metadata = "postgresql"
    report.log_files = _encrypt_log(settings, keyring)
    settings.encrypting_marker.unlink()
    from mlops_lite.platform import Platform

    with Platform(settings, actor=actor) as platform:
        platform.audit.record(actor=actor, action="keys.encrypt-home", object="keys:home", before={"encrypted": False},
                              after={"encrypted": True, "objects": report.objects_encrypted,
                                     "metadata": report.metadata, "log_files": report.log_files,
                                     "unsound_objects": len(report.objects_unsound)})
    return report


def _encrypt_objects(store: ObjectStore, report: EncryptionReport, progress: Progress | None) -> None:
    files = store.files()
    for done, (name, path) in enumerate(files, 1):
        if progress is not None:
            progress(f"objects/{store.root.name}", done, len(files))
        with open(path, "rb") as head:
            if envelope.is_encrypted(head.read(len(envelope.MAGIC))):
                report.objects_already += 1
                continue
        if len(name) != 64:
            report.objects_unsound.append(name)
            continue
        with open(path, "rb") as stream:
            digest, _ = store.put_stream(stream)  # encrypted, durable, under its keyed name
        if digest != name:
            # Its bytes are not what its name says: keep the file for an operator to look at,
            # and drop the encrypted copy only if nothing else has that content.
            report.objects_unsound.append(name)
            continue
        path.unlink()
        report.objects_encrypted += 1
    fsync_path(store.root)


def encrypt_duckdb(path: Path, key: str) -> str:
    """Encrypt a plaintext DuckDB file in place: "encrypted", or "already"."""
    import duckdb

    from mlops_lite.metadata.store import load_crypto

    if not path.exists():
        return "absent"
    try:
        plain = duckdb.connect(str(path))
    except duckdb.Error as exc:
        if "encrypt" in str(exc).lower():
            return "already"
        raise
    try:
        plain.execute("CHECKPOINT")  # the WAL folded in: the copy reads one file
    finally:
        plain.close()
    tmp = path.with_name(path.name + ".encrypting")
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    con = duckdb.connect(":memory:")
    try:
        load_crypto(con)
        con.execute(f"ATTACH '{_quoted(path)}' AS src (READ_ONLY)")
        con.execute(f"ATTACH '{_quoted(tmp)}' AS dst (ENCRYPTION_KEY '{key}')")
        con.execute("COPY FROM DATABASE src TO dst")
        con.execute("DETACH dst")
        con.execute("DETACH src")
    finally:
        con.close()
    with open(tmp, "rb+") as out:
        os.fsync(out.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    Path(str(path) + ".wal").unlink(missing_ok=True)
    fsync_path(path.parent)
    return "encrypted"


def _encrypt_log(settings: Settings, keyring: Keyring) -> int:
    from mlops_lite.monitoring import Monitoring

    monitoring: Any = Monitoring(settings.home, log_key=keyring.data_key("log"))
    try:
        convert = getattr(monitoring, "encrypt_existing", None)
        if convert is None:
            raise IntegrityError("this release cannot encrypt the prediction log")
        return int(convert(keyring.data_key("log")))
    finally:
        monitoring.close()


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")
