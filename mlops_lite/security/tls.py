"""TLS material and contexts: a local certificate authority, the certificates it signs,
and the SSL contexts of our servers and clients.

Making material (``cryptography``):

- ``create_ca(cert_file, key_file)``: a self-signed CA (EC P-256), key written 0600.
- ``issue_server_certificate(ca, cert_file, key_file, names=...)``: a server certificate
  signed by the CA, with a subjectAltName for every name (DNS names and IP addresses;
  ``LOOPBACK_NAMES`` are always included). Any server of the node may use one: the API,
  serving replicas, a PostgreSQL server.
- ``issue_client_certificate(ca, cert_file, key_file, for_="worker", name=...)``: a
  client certificate for mutual TLS (extended key usage clientAuth).
- ``ensure_server_certificate(settings)``: what ``mlops-lite init`` does: the home's CA and
  server certificate, created when missing and the certificate renewed when it expires
  within ``RENEW_WITHIN`` or lacks a configured name; existing material is kept.

Using it (``ssl``, no ``cryptography``):

- ``ReloadableServerContext``: the SSLContext a server is given once, whose certificate
  can be replaced while it serves (``reload()``, on SIGHUP, or by a watcher of the files).
- ``client_context(...)`` / ``ClientTLS``: what our clients verify servers against.

Key files are written 0600 and replaced atomically (a reader sees the old file or the
new one, never half of one).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import re
import signal
import ssl
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlops_lite.errors import InvalidInput

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    from mlops_lite.config import Settings

log = logging.getLogger("mlops_lite.tls")

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
"""Every server certificate names these, so a client on the host always verifies."""
CA_VALID_DAYS = 3650
SERVER_VALID_DAYS = 397  # the longest validity browsers accept for a server certificate
CLIENT_VALID_DAYS = 397
RENEW_WITHIN = dt.timedelta(days=30)
CLIENT_KINDS = ("worker", "replica", "user", "service")
"""What a client certificate is for; it becomes the certificate's organizational unit."""
ClientAuth = Literal["none", "optional", "required"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DNS = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


# ---------------------------------------------------------------------------------------
# Material
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CertificateInfo:
    """What a certificate says, as ``mlops-lite cert show`` prints it."""

    path: Path
    subject: str
    issuer: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    names: tuple[str, ...] = ()
    """subjectAltName entries: DNS names and IP addresses, as text."""
    is_ca: bool = False
    usages: tuple[str, ...] = field(default=())
    """Extended key usages: "serverAuth", "clientAuth"."""

    def expires_within(self, delta: dt.timedelta, *, now: dt.datetime | None = None) -> bool:
        return self.not_after - delta <= (now or dt.datetime.now(dt.UTC))


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA's certificate and private key, loaded; signs server and client certificates."""

    cert_file: Path
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def create_ca(cert_file: Path, key_file: Path, *, common_name: str = "mlops-lite local CA",
              valid_days: int = CA_VALID_DAYS) -> CertificateAuthority:
    """Create a self-signed certificate authority: ``key_file`` (PEM, mode 0600) and
    ``cert_file`` (PEM, the bundle clients trust). Existing files are replaced; callers
    that keep a CA check first (``ensure_server_certificate`` does)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mlops-lite"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_file, key)
    _write_certificate(cert_file, certificate)
    return CertificateAuthority(cert_file=cert_file, certificate=certificate, key=key)


def load_ca(cert_file: Path, key_file: Path) -> CertificateAuthority:
    """A CA made by ``create_ca`` (or any PEM CA certificate with its EC or RSA key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise InvalidInput(f"no CA at {exc.filename}: run `mlops-lite init` (or set tls_ca to your own CA)",
                           field="tls_ca", expected="a PEM CA certificate and its key") from exc
    except ValueError as exc:
        raise InvalidInput(f"the CA in {cert_file} / {key_file} cannot be read: {exc}", field="tls_ca",
                           expected="a PEM CA certificate and an unencrypted PEM key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput(f"the CA key {key_file} is not an EC key; mlops-lite signs with EC keys",
                           field="tls_ca", expected="an EC (P-256) CA key")
    return CertificateAuthority(cert_file=cert_file, certificate=certificate, key=key)


def issue_server_certificate(ca: CertificateAuthority, cert_file: Path, key_file: Path, *,
                             names: Iterable[str] = (), common_name: str | None = None,
                             valid_days: int = SERVER_VALID_DAYS) -> CertificateInfo:
    """Sign a server certificate for ``names`` (host names or IP addresses) plus
    ``LOOPBACK_NAMES``; writes ``key_file`` (0600) then ``cert_file``, each atomically.

    Any TLS server may use it (the API, serving replicas, PostgreSQL's ``ssl_cert_file``).
    A running mlops-lite server picks a rewritten pair up without restarting."""
    from cryptography import x509

    all_names = _unique([*LOOPBACK_NAMES, *(_check_host_name(n) for n in names)])
    first = next((n for n in all_names if n not in LOOPBACK_NAMES), all_names[0])
    return _issue(ca, cert_file, key_file, common_name=common_name or first, unit=None, names=all_names,
                  usage=x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, valid_days=valid_days)


def issue_client_certificate(ca: CertificateAuthority, cert_file: Path, key_file: Path, *, for_: str,
                             name: str, valid_days: int = CLIENT_VALID_DAYS) -> CertificateInfo:
    """Sign a client certificate for mutual TLS: subject ``CN=name, OU=for_`` (one of
    ``CLIENT_KINDS``: a Prefect worker, a serving replica...), extended key usage
    clientAuth. Writes ``key_file`` (0600) and ``cert_file``."""
    from cryptography import x509

    if for_ not in CLIENT_KINDS:
        raise InvalidInput(f"a client certificate is for one of {', '.join(CLIENT_KINDS)}, not {for_!r}",
                           field="for", expected=" | ".join(CLIENT_KINDS))
    if not _NAME.match(name):
        raise InvalidInput(f"certificate name {name!r} is not 1-64 letters, digits, '.', '_' or '-'",
                           field="name", expected="e.g. worker-1")
    return _issue(ca, cert_file, key_file, common_name=name, unit=for_, names=(),
                  usage=x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH, valid_days=valid_days)


def certificate_info(cert_file: Path) -> CertificateInfo:
    """Read a PEM certificate (the first of a chain)."""
    from cryptography import x509

    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except FileNotFoundError as exc:
        raise InvalidInput(f"no certificate at {cert_file}: run `mlops-lite init`", field="tls_cert",
                           expected="a PEM certificate file") from exc
    except ValueError as exc:
        raise InvalidInput(f"{cert_file} is not a PEM certificate: {exc}", field="tls_cert",
                           expected="a PEM certificate file") from exc
    return _info(cert_file, certificate)


def certificate_info_der(der: bytes) -> CertificateInfo:
    """What a peer's certificate says (``ssl_object.getpeercert(binary_form=True)``)."""
    from cryptography import x509

    return _info(Path("-"), x509.load_der_x509_certificate(der))


@dataclass(frozen=True)
class ServerMaterial:
    """What ``ensure_server_certificate`` found or made."""

    ca: CertificateInfo | None
    """The home's CA; None when the certificate is the user's own (tls_cert set)."""
    server: CertificateInfo
    created_ca: bool
    issued: str | None
    """Why the server certificate was issued now: "missing", "renew" (asked), "expiring",
    "names" (a configured name was missing), "new CA"; None when it was kept."""


def ensure_server_certificate(settings: Settings, *, renew: bool = False) -> ServerMaterial:
    """The home's CA and server certificate: create what is missing, keep what exists.

    The server certificate is issued again when ``renew`` is true, when it expires within
    ``RENEW_WITHIN``, or when it lacks a name of ``tls_names``. A certificate the user
    configured (``tls_cert``/``tls_key`` outside the home's defaults) is never touched,
    only read; a user's CA without its key in the home is never replaced."""
    cert_file, key_file = settings.tls_cert_file, settings.tls_key_file
    if settings.tls_cert is not None:
        if not key_file.exists():
            raise InvalidInput(f"tls_key {key_file} does not exist", field="tls_key", expected="a PEM key file")
        return ServerMaterial(ca=None, server=certificate_info(cert_file), created_ca=False, issued=None)
    ca_file, ca_key = settings.tls_ca_file, settings.tls_ca_key_file
    created = False
    if not ca_file.exists():
        if settings.tls_ca is not None:
            raise InvalidInput(f"tls_ca {ca_file} does not exist", field="tls_ca", expected="a PEM CA certificate")
        ca = create_ca(ca_file, ca_key)
        created = True
    else:
        ca = None
    current = certificate_info(cert_file) if cert_file.exists() and key_file.exists() else None
    wanted = set(_unique([*LOOPBACK_NAMES, *(_check_host_name(n) for n in settings.tls_names)]))
    reason = ("missing" if current is None else "renew" if renew
              else "expiring" if current.expires_within(RENEW_WITHIN)
              else "names" if not wanted <= set(current.names) else None)
    if created and current is not None:
        reason = "new CA"
    if reason is not None:
        ca = ca or load_ca(ca_file, ca_key)
        current = issue_server_certificate(ca, cert_file, key_file, names=settings.tls_names)
    assert current is not None
    return ServerMaterial(ca=certificate_info(ca_file), server=current, created_ca=created, issued=reason)


def _issue(ca: CertificateAuthority, cert_file: Path, key_file: Path, *, common_name: str, unit: str | None,
           names: Sequence[str], usage: Any, valid_days: int) -> CertificateInfo:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mlops-lite")]
    if unit is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    now = dt.datetime.now(dt.UTC)
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder().subject_name(x509.Name(attributes)).issuer_name(ca.certificate.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=valid_days), ca.certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                     crl_sign=False, content_commitment=False, data_encipherment=False,
                                     key_agreement=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]),
                                        critical=False)
    certificate = builder.sign(ca.key, hashes.SHA256())
    _write_key(key_file, key)
    _write_certificate(cert_file, certificate)
    return _info(cert_file, certificate)


def _info(path: Path, certificate: x509.Certificate) -> CertificateInfo:
    from cryptography import x509

    def extension(cls: type[Any]) -> Any:
        try:
            return certificate.extensions.get_extension_for_class(cls).value
        except x509.ExtensionNotFound:
            return None

    sans = extension(x509.SubjectAlternativeName)
    names: list[str] = []
    if sans is not None:
        names = [*sans.get_values_for_type(x509.DNSName),
                 *(str(ip) for ip in sans.get_values_for_type(x509.IPAddress))]
    constraints = extension(x509.BasicConstraints)
    usages = extension(x509.ExtendedKeyUsage)
    return CertificateInfo(path=path, subject=certificate.subject.rfc4514_string(),
                           issuer=certificate.issuer.rfc4514_string(), serial=certificate.serial_number,
                           not_before=certificate.not_valid_before_utc, not_after=certificate.not_valid_after_utc,
                           names=tuple(names), is_ca=bool(constraints is not None and constraints.ca),
                           usages=tuple(u._name for u in usages) if usages is not None else ())


def _general_name(name: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _check_host_name(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    if not _DNS.match(name) or len(name) > 253:
        raise InvalidInput(f"tls_names: {name!r} is neither a host name nor an IP address", field="tls_names",
                           expected="host names (ops.example.com) or IP addresses")
    return name.lower()


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _write_key(path: Path, key: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write_atomically(path, pem, 0o600)


def _write_certificate(path: Path, certificate: x509.Certificate) -> None:
    from cryptography.hazmat.primitives import serialization

    # Public, yet 0600 like every other file of a home (docs/encryption.md); a copy for
    # others to trust is made with `mlops-lite cert`.
    _write_atomically(path, certificate.public_bytes(serialization.Encoding.PEM), 0o600)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)  # the umask may have narrowed or the file existed
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------
# Server side
# ---------------------------------------------------------------------------------------

def server_context(cert_file: Path, key_file: Path, *, client_ca: Path | None = None,
                   client_auth: ClientAuth = "none") -> ssl.SSLContext:
    """A TLS 1.2+ server context serving ``cert_file``; with ``client_auth`` "optional" or
    "required", client certificates are verified against ``client_ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise InvalidInput(f"no TLS certificate or key at {exc.filename}: run `mlops-lite init` (or set "
                           "tls_cert and tls_key)", field="tls_cert", expected="PEM certificate and key files") from exc
    except ssl.SSLError as exc:
        raise InvalidInput(f"the TLS certificate {cert_file} and key {key_file} do not load: {exc.reason or exc}",
                           field="tls_cert", expected="a PEM certificate and its matching key") from exc
    if client_auth != "none":
        if client_ca is None:
            raise InvalidInput("client certificates need a CA to verify them against", field="tls_ca",
                               expected="the CA that issues worker and replica certificates")
        context.load_verify_locations(cafile=client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if client_auth == "required" else ssl.CERT_OPTIONAL
    return context


class ReloadableServerContext:
    """The SSLContext a server is given once (``.context``), whose certificate can be
    replaced while it serves.

    ``reload()`` reads the certificate and key again into a fresh context, and every new
    handshake switches to the newest one from the first context's server-name callback
    (OpenSSL calls it for every ClientHello, with or without SNI); connections already
    open keep the certificate they began with. Swapping a whole context, rather than
    calling ``load_cert_chain`` again on the one the server holds, means a handshake never
    meets a new certificate beside the old key, and a pair that fails to load (a renewal
    caught between writing the key and the certificate) leaves the current one serving.

    ``watch()`` reloads when either file changes (a thread polling their stat, stopped by
    ``stop()``); ``reload_on_sighup()`` reloads on SIGHUP (main thread only).
    """

    def __init__(self, cert_file: Path, key_file: Path, *, client_ca: Path | None = None,
                 client_auth: ClientAuth = "none") -> None:
        self.cert_file, self.key_file = Path(cert_file), Path(key_file)
        self.client_ca, self.client_auth = client_ca, client_auth
        self._stamp = self._files_stamp()
        self._current = self._build()
        self.context = self._build()
        self.context.sni_callback = self._select
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.reloads = 0

    def _build(self) -> ssl.SSLContext:
        return server_context(self.cert_file, self.key_file, client_ca=self.client_ca, client_auth=self.client_auth)

    def _select(self, ssl_object: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        ssl_object.context = self._current

    def _files_stamp(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for path in (self.cert_file, self.key_file):
            try:
                st = path.stat()
                stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except FileNotFoundError:
                stamps.append((0, 0, 0))
        return tuple(stamps)

    def reload(self) -> CertificateInfo | None:
        """Serve the files' current certificate to new connections. Raises InvalidInput
        (and keeps serving the current one) when the pair does not load."""
        with self._lock:
            stamp = self._files_stamp()
            fresh = self._build()
            self._current = fresh
            self._stamp = stamp
            self.reloads += 1
        try:
            info = certificate_info(self.cert_file)
        except InvalidInput:
            return None
        log.info("TLS certificate reloaded from %s: serial %x, valid until %s", self.cert_file, info.serial,
                 info.not_after.isoformat())
        return info

    def _reload_logged(self) -> None:
        try:
            self.reload()
        except InvalidInput as exc:
            log.warning("TLS certificate not reloaded (still serving the previous one): %s", exc)

    def changed(self) -> bool:
        return self._files_stamp() != self._stamp

    def watch(self, interval: float = 1.0) -> None:
        """Reload whenever the certificate or key file changes, checked every ``interval`` s."""
        if self._watcher is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                if self.changed():
                    self._reload_logged()

        self._watcher = threading.Thread(target=loop, name="mlops-lite-tls-watch", daemon=True)
        self._watcher.start()

    def reload_on_sighup(self) -> None:
        """Reload on SIGHUP. Call from the main thread (where Python runs signal handlers)."""
        signal.signal(signal.SIGHUP, lambda *_: self._reload_logged())

    def stop(self) -> None:
        """Stop the watcher thread, if any; the context keeps serving what it has."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None


def reloadable_server_context(settings: Settings) -> ReloadableServerContext:
    """The server context the settings describe (``tls_cert``, ``tls_key``,
    ``tls_client_auth`` with ``tls_ca``)."""
    return ReloadableServerContext(settings.tls_cert_file, settings.tls_key_file,
                                   client_ca=settings.tls_ca_file if settings.tls_client_auth != "none" else None,
                                   client_auth=settings.tls_client_auth)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_https(host: str, *, tls: bool | None, insecure_http: bool = False) -> bool:
    """Whether a server bound to ``host`` serves HTTPS.

    ``tls`` is the choice made (True/False), or None when nobody chose (the default
    setting). On loopback, HTTPS only when chosen. Elsewhere HTTPS always, unless
    ``insecure_http``; an explicit ``tls=False`` there without ``insecure_http`` is refused,
    since tokens and data would cross the network in clear."""
    if tls:
        return True
    if is_loopback(host) or insecure_http:
        return False
    if tls is False:
        raise InvalidInput(f"plain HTTP on {host}, which is not a loopback address, would send tokens and data "
                           "in clear: turn TLS on (`tls = true` in mlops-lite.toml, MLOPS_LITE_TLS=1) or pass "
                           "--insecure-http to accept the risk", field="tls", expected="true off loopback")
    return True


# ---------------------------------------------------------------------------------------
# Client side
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClientTLS:
    """What our clients trust and present: the CA bundle (``ca_bundle``, else the home's
    CA when it exists, beside the system's roots), and a client certificate for mutual
    TLS when one is configured."""

    ca_file: Path | None = None
    system_roots: bool = True
    cert_file: Path | None = None
    key_file: Path | None = None
    setting: str = "ca_bundle"
    """The setting that names ``ca_file``, for error messages."""

    def context(self) -> ssl.SSLContext:
        """A verifying client context (never one that skips verification)."""
        context = ssl.create_default_context() if self.system_roots else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.ca_file)
            except (FileNotFoundError, ssl.SSLError) as exc:
                raise InvalidInput(f"the CA bundle {self.ca_file} ({self.setting}) cannot be read: {exc}",
                                   field=self.setting, expected="a PEM file of CA certificates") from exc
        if self.cert_file is not None:
            try:
                context.load_cert_chain(self.cert_file, self.key_file)
            except (FileNotFoundError, ssl.SSLError) as exc:
                raise InvalidInput(f"the client certificate {self.cert_file} (tls_client_cert) does not load: {exc}",
                                   field="tls_client_cert", expected="a PEM certificate and its key") from exc
        return context

    def verify(self, url: str) -> ssl.SSLContext | bool:
        """httpx's ``verify`` for ``url``: this context for https, True (unused) for http."""
        return self.context() if url.lower().startswith("https://") else True


def client_tls(settings: Settings) -> ClientTLS:
    """The client side of the settings: ``ca_bundle`` (MLOPS_LITE_CA_BUNDLE) alone when set;
    else the home's CA (when ``init`` made one) beside the system's roots."""
    cert = settings.tls_client_cert
    key = settings.tls_client_key or cert
    if settings.ca_bundle is not None:
        return ClientTLS(ca_file=settings.ca_bundle, system_roots=False, cert_file=cert, key_file=key)
    home_ca = settings.tls_ca_file
    return ClientTLS(ca_file=home_ca if home_ca.exists() else None, system_roots=True, cert_file=cert,
                     key_file=key, setting="tls_ca" if settings.tls_ca is not None else "ca_bundle")


def explain_tls_failure(exc: BaseException, url: str, *, client_certificate: bool = True) -> str | None:
    """A sentence for a client whose TLS handshake failed, naming the setting to fix;
    None when ``exc`` is not a TLS failure. ``client_certificate``: whether the client
    presented one (without, a server that requires one closes the connection after a
    TLS 1.3 handshake, which the client sees as a disconnection)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return (f"the certificate of {url} is not trusted ({seen.verify_message}): point ca_bundle "
                    "(MLOPS_LITE_CA_BUNDLE) at the CA that signed it (for an mlops-lite server: its home's "
                    "tls/ca.crt)")
        if isinstance(seen, ssl.SSLError):
            reason = seen.reason or str(seen)
            if "CERTIFICATE_REQUIRED" in reason or "CERTIFICATE" in reason.upper():
                return (f"the TLS handshake with {url} failed ({reason}): the server asks for a client certificate; "
                        "set tls_client_cert and tls_client_key (`mlops-lite cert issue --for worker`)")
            return f"the TLS handshake with {url} failed ({reason})"
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if not client_certificate and "disconnected without sending a response" in text:
        return (f"{url} closed the connection without answering ({text}): if it asks for a client certificate "
                "(mutual TLS), set tls_client_cert and tls_client_key (`mlops-lite cert issue --for worker`)")
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (f"the certificate of {url} is not trusted ({text}): point ca_bundle (MLOPS_LITE_CA_BUNDLE) at the "
                "CA that signed it")
    if "SSL" in text or "TLS" in text:
        return f"the TLS handshake with {url} failed ({text})"
    return None
