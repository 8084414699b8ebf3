"""PostgreSQL over verified TLS: with ``database_ca`` set, the metadata store connects with
``sslmode=verify-full`` against that CA, so a server whose certificate does not chain to it,
or does not name the URL's host, is refused before any metadata moves.

A cluster of its own (``ssl = on``, ``hostssl`` only in pg_hba.conf) with a server
certificate signed by the home's CA (``mlops_lite.security.tls``)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.postgres import MISSING, _binary, _free_port, installed

pytestmark = pytest.mark.skipif(not installed(), reason=MISSING)


@contextmanager
def tls_cluster(cert: Path, key: Path) -> Iterator[int]:
    """A cluster that accepts only TLS connections on 127.0.0.1 with ``cert``/``key``."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    assert initdb and pg_ctl
    root = Path(tempfile.mkdtemp(prefix="mlops-lite-pgtls-"))
    as_user: list[str] = []
    data = root / "data"
    try:
        if os.geteuid() == 0:
            as_user = ["runuser", "-u", "postgres", "--"]
            os.chown(root, pwd.getpwnam("postgres").pw_uid, -1)
        subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True)
        for source, name in ((cert, "server.crt"), (key, "server.key")):
            target = data / name
            shutil.copyfile(source, target)
            target.chmod(0o600)
            if as_user:
                os.chown(target, pwd.getpwnam("postgres").pw_uid, -1)
        (data / "pg_hba.conf").write_text("local all all trust\n"
                                          "hostssl all all 127.0.0.1/32 trust\n"
                                          "hostnossl all all 0.0.0.0/0 reject\n")
        port = _free_port()
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
                   "-c fsync=off -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key")
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
                       check=True, capture_output=True)
        try:
            yield port
        finally:
            subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from cryptography import x509

    from mlops_lite.security import tls

    folder = tmp_path_factory.mktemp("pki")
    ca = tls.create_ca(folder / "ca.crt", folder / "ca.key")
    tls.issue_server_certificate(ca, folder / "db.crt", folder / "db.key", names=["db.internal"])
    tls.create_ca(folder / "other-ca.crt", folder / "other-ca.key", common_name="someone else's CA")
    # A certificate from the right CA that names another host only (verify-full checks the name).
    tls._issue(ca, folder / "elsewhere.crt", folder / "elsewhere.key", common_name="db.elsewhere", unit=None,
               names=["db.elsewhere"], usage=x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, valid_days=30)
    return {"ca": folder / "ca.crt", "other": folder / "other-ca.crt", "cert": folder / "db.crt",
            "key": folder / "db.key", "elsewhere": folder / "elsewhere.crt",
            "elsewhere_key": folder / "elsewhere.key"}


def _url(port: int) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"


def test_the_metadata_store_connects_with_verify_full_and_the_session_is_encrypted(pki, tmp_path: Path) -> None:
    from sqlalchemy import text

    from mlops_lite.config import load_settings
    from mlops_lite.metadata.store import MetadataStore

    with tls_cluster(pki["cert"], pki["key"]) as port:
        settings = load_settings(home=tmp_path / "home", database_url=_url(port), database_ca=pki["ca"])
        assert "sslmode=verify-full" in settings.sql_url and "sslrootcert=" in settings.sql_url
        store = MetadataStore(settings.sql_url)
        try:
            with store.engine.connect() as connection:
                ssl, version = connection.execute(text(
                    "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()")).one()
            assert ssl is True and version.startswith("TLSv1.")
        finally:
            store.close()


@pytest.mark.parametrize("case", ["untrusted CA", "certificate for another host"])
def test_a_server_that_fails_verification_is_refused(pki, tmp_path: Path, case: str) -> None:
    from mlops_lite.config import load_settings
    from mlops_lite.errors import MlopsLiteError
    from mlops_lite.metadata.store import MetadataStore

    cert, key, ca = ((pki["cert"], pki["key"], pki["other"]) if case == "untrusted CA"
                     else (pki["elsewhere"], pki["elsewhere_key"], pki["ca"]))
    with tls_cluster(cert, key) as port:
        settings = load_settings(home=tmp_path / "home", database_url=_url(port), database_ca=ca)
        with pytest.raises(MlopsLiteError) as refused:
            MetadataStore(settings.sql_url)
        message = str(refused.value).lower()
        assert "certificate" in message or "ssl" in message, message


def test_a_weaker_sslmode_in_the_url_is_refused_not_guessed(pki, tmp_path: Path) -> None:
    from mlops_lite.config import load_settings

    settings = load_settings(home=tmp_path / "home", database_ca=pki["ca"],
                             database_url="postgresql+psycopg://postgres@127.0.0.1:5/x?sslmode=require")
    with pytest.raises(ValueError, match="sslmode=require"):
        _ = settings.sql_url
