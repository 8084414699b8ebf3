"""TLS material and contexts (mlops_lite/security/tls.py): a local CA, server and client
certificates it signs, the reloadable server context, the client side, and the choice
of HTTPS by bind address. Real handshakes over 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from mlops_lite.config import load_settings
from mlops_lite.errors import InvalidInput
from mlops_lite.security import tls


@pytest.fixture
def ca(tmp_path: Path) -> tls.CertificateAuthority:
    return tls.create_ca(tmp_path / "ca.crt", tmp_path / "ca.key")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_ca_key_and_every_issued_key_are_0600(tmp_path: Path, ca: tls.CertificateAuthority) -> None:
    os.umask(0o022)
    tls.issue_server_certificate(ca, tmp_path / "s.crt", tmp_path / "s.key")
    tls.issue_client_certificate(ca, tmp_path / "w.crt", tmp_path / "w.key", for_="worker", name="w1")
    for key in ("ca.key", "s.key", "w.key"):
        assert _mode(tmp_path / key) == 0o600, key
    assert _mode(tmp_path / "s.crt") == 0o600  # a certificate too: every file of a home is its owner's


def test_a_server_certificate_names_loopback_and_the_configured_names(tmp_path: Path,
                                                                       ca: tls.CertificateAuthority) -> None:
    info = tls.issue_server_certificate(ca, tmp_path / "s.crt", tmp_path / "s.key",
                                        names=["ops.example.com", "10.0.0.5", "OPS2.example.com"])
    assert set(info.names) == {"localhost", "127.0.0.1", "::1", "ops.example.com", "10.0.0.5", "ops2.example.com"}
    assert info.usages == ("serverAuth",) and not info.is_ca
    assert info.issuer == ca.certificate.subject.rfc4514_string()
    certificate = x509.load_pem_x509_certificate((tmp_path / "s.crt").read_bytes())
    certificate.verify_directly_issued_by(ca.certificate)


def test_bad_names_are_refused_naming_the_field(tmp_path: Path, ca: tls.CertificateAuthority) -> None:
    with pytest.raises(InvalidInput) as raised:
        tls.issue_server_certificate(ca, tmp_path / "s.crt", tmp_path / "s.key", names=["bad name/x"])
    assert raised.value.field == "tls_names"
    assert not (tmp_path / "s.crt").exists()
    with pytest.raises(InvalidInput) as raised:
        tls.issue_client_certificate(ca, tmp_path / "c.crt", tmp_path / "c.key", for_="root", name="x")
    assert raised.value.field == "for"
    with pytest.raises(InvalidInput) as raised:
        tls.issue_client_certificate(ca, tmp_path / "c.crt", tmp_path / "c.key", for_="worker", name="../x")
    assert raised.value.field == "name"
    assert not (tmp_path / "c.key").exists()


def test_a_client_certificate_is_for_client_auth_with_its_kind_as_unit(tmp_path: Path,
                                                                         ca: tls.CertificateAuthority) -> None:
    info = tls.issue_client_certificate(ca, tmp_path / "c.crt", tmp_path / "c.key", for_="replica", name="r-1")
    assert info.usages == ("clientAuth",)
    assert info.subject == "CN=r-1,OU=replica,O=mlops-lite"
    assert info.names == ()


def test_ensure_creates_then_keeps_then_renews(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    first = tls.ensure_server_certificate(settings)
    assert first.created_ca and first.issued == "missing"
    again = tls.ensure_server_certificate(settings)
    assert not again.created_ca and again.issued is None and again.server.serial == first.server.serial
    assert again.ca is not None and first.ca is not None and again.ca.serial == first.ca.serial
    renamed = tls.ensure_server_certificate(load_settings(home=tmp_path / "home", tls_names=["ops.example.com"]))
    assert renamed.issued == "names" and "ops.example.com" in renamed.server.names
    renewed = tls.ensure_server_certificate(settings, renew=True)
    assert renewed.issued == "renew" and renewed.server.serial != renamed.server.serial
    assert _mode(settings.tls_ca_key_file) == 0o600 and _mode(settings.tls_key_file) == 0o600


def test_ensure_renews_a_certificate_that_expires_soon(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home")
    tls.ensure_server_certificate(settings)
    ca = tls.load_ca(settings.tls_ca_file, settings.tls_ca_key_file)
    short = tls.issue_server_certificate(ca, settings.tls_cert_file, settings.tls_key_file, valid_days=10)
    assert short.expires_within(tls.RENEW_WITHIN)
    renewed = tls.ensure_server_certificate(settings)
    assert renewed.issued == "expiring" and renewed.server.not_after > short.not_after + dt.timedelta(days=300)


def test_ensure_never_touches_a_users_own_certificate(tmp_path: Path, ca: tls.CertificateAuthority) -> None:
    tls.issue_server_certificate(ca, tmp_path / "mine.crt", tmp_path / "mine.key", valid_days=5)
    before = (tmp_path / "mine.crt").read_bytes()
    settings = load_settings(home=tmp_path / "home", tls_cert=tmp_path / "mine.crt", tls_key=tmp_path / "mine.key")
    material = tls.ensure_server_certificate(settings)
    assert material.issued is None and (tmp_path / "mine.crt").read_bytes() == before
    assert not (tmp_path / "home" / "tls" / "ca.key").exists()


# --- handshakes ---------------------------------------------------------------------------

class _Server:
    """A TLS echo of the peer's view: accepts on 127.0.0.1, handshakes, answers b"ok"."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)  # so close() is seen within a tick
        self.port = self.sock.getsockname()[1]
        self.context = context
        self.peers: list[dict[str, object] | None] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls_conn:
                    self.peers.append(tls_conn.getpeercert())
                    tls_conn.sendall(b"ok")
            except (ssl.SSLError, OSError):
                conn.close()

    def serial(self, client: ssl.SSLContext) -> int:
        with socket.create_connection(("127.0.0.1", self.port)) as raw, \
                client.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            der = conn.getpeercert(binary_form=True)
            assert der is not None
            assert conn.recv(2) == b"ok"
            return tls.certificate_info_der(der).serial

    def close(self) -> None:
        self._stop = True
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def material(tmp_path: Path) -> Iterator[tuple[Path, Path, Path, tls.CertificateAuthority]]:
    ca = tls.create_ca(tmp_path / "ca.crt", tmp_path / "ca.key")
    tls.issue_server_certificate(ca, tmp_path / "s.crt", tmp_path / "s.key")
    yield tmp_path / "s.crt", tmp_path / "s.key", tmp_path / "ca.crt", ca


def test_reload_serves_the_new_certificate_to_new_handshakes(material: tuple[Path, Path, Path, tls.CertificateAuthority]
                                                             ) -> None:
    cert, key, ca_file, ca = material
    reloadable = tls.ReloadableServerContext(cert, key)
    server = _Server(reloadable.context)
    client = tls.ClientTLS(ca_file=ca_file, system_roots=False).context()
    try:
        before = server.serial(client)
        renewed = tls.issue_server_certificate(ca, cert, key)
        assert server.serial(client) == before  # not reloaded yet
        reloadable.reload()
        assert server.serial(client) == renewed.serial != before
    finally:
        server.close()


def test_a_pair_that_does_not_load_keeps_the_current_certificate(
        material: tuple[Path, Path, Path, tls.CertificateAuthority], tmp_path: Path) -> None:
    cert, key, ca_file, ca = material
    reloadable = tls.ReloadableServerContext(cert, key)
    server = _Server(reloadable.context)
    client = tls.ClientTLS(ca_file=ca_file, system_roots=False).context()
    try:
        before = server.serial(client)
        tls.issue_server_certificate(ca, tmp_path / "other.crt", key)  # the key no longer matches cert
        with pytest.raises(InvalidInput):
            reloadable.reload()
        assert server.serial(client) == before
    finally:
        server.close()


def test_the_watcher_reloads_on_a_file_change_and_stops(material: tuple[Path, Path, Path, tls.CertificateAuthority]
                                                        ) -> None:
    cert, key, ca_file, ca = material
    reloadable = tls.ReloadableServerContext(cert, key)
    reloadable.watch(interval=0.05)
    server = _Server(reloadable.context)
    client = tls.ClientTLS(ca_file=ca_file, system_roots=False).context()
    try:
        renewed = tls.issue_server_certificate(ca, cert, key)
        deadline = threading.Event()
        for _ in range(100):
            if server.serial(client) == renewed.serial:
                break
            deadline.wait(0.05)
        assert server.serial(client) == renewed.serial
    finally:
        reloadable.stop()
        server.close()
    assert reloadable._watcher is None
    assert not any(t.name == "mlops-lite-tls-watch" for t in threading.enumerate())


def test_an_untrusted_ca_fails_and_the_message_names_the_setting(
        material: tuple[Path, Path, Path, tls.CertificateAuthority], tmp_path: Path) -> None:
    cert, key, _, _ = material
    other = tls.create_ca(tmp_path / "other" / "ca.crt", tmp_path / "other" / "ca.key")
    server = _Server(tls.server_context(cert, key))
    try:
        with pytest.raises(ssl.SSLCertVerificationError) as raised:
            server.serial(tls.ClientTLS(ca_file=other.cert_file, system_roots=False).context())
        message = tls.explain_tls_failure(raised.value, "https://127.0.0.1")
        assert message is not None and "ca_bundle" in message and "MLOPS_LITE_CA_BUNDLE" in message
    finally:
        server.close()


def test_mutual_tls_required_refuses_a_client_without_a_certificate(
        material: tuple[Path, Path, Path, tls.CertificateAuthority], tmp_path: Path) -> None:
    cert, key, ca_file, ca = material
    server = _Server(tls.server_context(cert, key, client_ca=ca_file, client_auth="required"))
    try:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            server.serial(tls.ClientTLS(ca_file=ca_file, system_roots=False).context())
        tls.issue_client_certificate(ca, tmp_path / "w.crt", tmp_path / "w.key", for_="worker", name="w1")
        worker = tls.ClientTLS(ca_file=ca_file, system_roots=False, cert_file=tmp_path / "w.crt",
                               key_file=tmp_path / "w.key")
        assert server.serial(worker.context()) > 0
        assert server.peers[-1] is not None and ((("commonName", "w1"),) in server.peers[-1]["subject"])  # type: ignore[operator]
    finally:
        server.close()


def test_client_tls_from_settings(tmp_path: Path) -> None:
    bare = tls.client_tls(load_settings(home=tmp_path / "home"))
    assert bare.ca_file is None and bare.system_roots
    assert bare.verify("http://127.0.0.1:1") is True
    settings = load_settings(home=tmp_path / "home")
    tls.ensure_server_certificate(settings)
    home = tls.client_tls(settings)
    assert home.ca_file == settings.tls_ca_file and home.system_roots
    assert isinstance(home.verify("https://127.0.0.1:1"), ssl.SSLContext)
    explicit = tls.client_tls(load_settings(home=tmp_path / "home", ca_bundle=tmp_path / "bundle.pem"))
    assert explicit.ca_file == tmp_path / "bundle.pem" and not explicit.system_roots
    with pytest.raises(InvalidInput) as raised:
        explicit.context()
    assert raised.value.field == "ca_bundle"


def test_settings_default_paths_and_https_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_LITE_TLS_NAMES", "a.example.com, 10.1.2.3")
    monkeypatch.setenv("MLOPS_LITE_CA_BUNDLE", str(tmp_path / "ca.pem"))
    settings = load_settings(home=tmp_path / "home", tls=True, port=8443)
    assert settings.tls_names == ["a.example.com", "10.1.2.3"]
    assert settings.ca_bundle == tmp_path / "ca.pem"
    assert settings.tls_cert_file == settings.home / "tls" / "server.crt"
    assert settings.tls_ca_key_file == settings.home / "tls" / "ca.key"
    assert settings.server_url == "https://127.0.0.1:8443"
    assert load_settings(home=tmp_path / "home").server_url.startswith("http://")
    # a wildcard bind is reached on loopback, a name the certificate carries
    assert load_settings(home=tmp_path / "home", host="0.0.0.0", tls=True).server_url == "https://127.0.0.1:8000"
    assert load_settings(home=tmp_path / "home", host="::", tls=True).server_url == "https://[::1]:8000"


@pytest.mark.parametrize(("host", "choice", "insecure", "https"), [
    ("127.0.0.1", None, False, False),
    ("127.0.0.1", True, False, True),
    ("localhost", False, False, False),
    ("::1", None, False, False),
    ("0.0.0.0", None, False, True),
    ("10.0.0.5", None, False, True),
    ("10.0.0.5", True, True, True),
    ("10.0.0.5", None, True, False),
    ("10.0.0.5", False, True, False),
    ("ops.example.com", None, False, True),
])
def test_the_scheme_by_bind_address(host: str, choice: bool | None, insecure: bool, https: bool) -> None:
    assert tls.serve_https(host, tls=choice, insecure_http=insecure) is https


def test_plain_http_off_loopback_by_choice_is_refused_without_insecure_http() -> None:
    with pytest.raises(InvalidInput) as raised:
        tls.serve_https("0.0.0.0", tls=False)
    assert raised.value.field == "tls" and "--insecure-http" in str(raised.value)
