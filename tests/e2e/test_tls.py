"""TLS end to end: real servers on 127.0.0.1 serving HTTPS with the home's certificate,
and our clients and the official ones verifying it (RemotePlatform and connect(), the
lakefs SDK with its CA setting, tritonclient with ssl=True); an untrusted CA refused with
a message naming the setting; mutual TLS; rotation while requests flow (SIGHUP and a
change of the files); the CLI's init, cert and the refusal of plain HTTP off loopback."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mlops_lite import errors
from mlops_lite.client import RemotePlatform
from mlops_lite.config import load_settings
from mlops_lite.security import tls
from tests.conftest import build_loop, holdout_rows
from tests.e2e.test_daemon import SCRIPT, Daemon, _env, cli, free_port

PREDICT = "/v1/deployments/loans/predict"


@dataclasses.dataclass
class Secure:
    url: str
    home: Path
    platform: Any
    token: str
    spec: Any
    ca: Path

    @property
    def settings(self) -> Any:
        return load_settings(home=self.home)

    def trusted(self) -> tls.ClientTLS:
        return tls.ClientTLS(ca_file=self.ca, system_roots=False)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secure]:
    from server import create_app
    from server.runner import serve_in_thread

    home = tmp_path_factory.mktemp("tls") / "home"
    platform, token, spec = build_loop(home)
    settings = load_settings(home=home)
    tls.ensure_server_certificate(settings)
    try:
        server = serve_in_thread(create_app(platform), tls=tls.reloadable_server_context(settings))
        try:
            yield Secure(url=server.url, home=home, platform=platform, token=token, spec=spec,
                         ca=settings.tls_ca_file)
        finally:
            server.stop()
    finally:
        platform.close()  # type: ignore[attr-defined]


def _serial(response: httpx.Response) -> int:
    """The serial of the certificate the server presented on this response's connection."""
    ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
    return tls.certificate_info_der(ssl_object.getpeercert(True)).serial


def test_https_verified_against_the_homes_ca(secure: Secure) -> None:
    assert secure.url.startswith("https://127.0.0.1:")
    with RemotePlatform(secure.url, secure.token, tls=secure.trusted()) as remote:
        assert [d.name for d in remote.deployments.list()] == ["loans"]
        answer = remote.deployments.predict("loans", holdout_rows(secure.spec, 3))
        assert len(answer.predictions) == 3
        assert [r.name for r in remote.data.repositories()] == ["loans"]  # lakefs SDK + httpx, same trust
    # connect() with the home's settings: ca_bundle unset, so the home's CA (beside the system's roots)
    from mlops_lite import connect

    with connect(home=secure.home, url=secure.url, token=secure.token) as remote:
        assert remote.summary()["deployments"] == 1


def test_an_untrusted_ca_is_refused_naming_the_setting(secure: Secure, tmp_path: Path) -> None:
    other = tls.create_ca(tmp_path / "other.crt", tmp_path / "other.key")
    for trust in (tls.ClientTLS(ca_file=other.cert_file, system_roots=False), tls.ClientTLS()):
        with RemotePlatform(secure.url, secure.token, tls=trust) as remote, \
                pytest.raises(errors.BackendUnavailable) as raised:
            remote.deployments.list()
        message = str(raised.value)
        assert "not trusted" in message and "ca_bundle" in message and "MLOPS_LITE_CA_BUNDLE" in message
    # connect() from a home that has another CA, with MLOPS_LITE_CA_BUNDLE pointing at it
    with RemotePlatform(secure.url, secure.token,
                        tls=tls.client_tls(load_settings(home=tmp_path / "h", ca_bundle=other.cert_file))) as remote:
        with pytest.raises(errors.BackendUnavailable, match="MLOPS_LITE_CA_BUNDLE"):
            remote.deployments.list()


def test_the_lakefs_sdk_over_tls_with_its_ca_setting(secure: Secure) -> None:
    lakefs_sdk = pytest.importorskip("lakefs_sdk")
    from lakefs_sdk.client import LakeFSClient

    _, key, secret = secure.platform.tokens.create_access_key("tls-sdk", "operator")
    config = lakefs_sdk.Configuration(host=secure.url + "/api/v1", username=key, password=secret,
                                      ssl_ca_cert=str(secure.ca))
    client = LakeFSClient(config)
    try:
        repos = client.repositories_api.list_repositories()
        assert [r.id for r in repos.results] == ["loans"]
        commits = client.refs_api.log_commits("loans", "main")
        assert commits.results and commits.results[0].id
        obj = client.objects_api.get_object("loans", "main", "loans/train.csv")
        assert bytes(obj).startswith(b"")  and len(bytes(obj)) > 100
    finally:
        client._api.close()
    untrusting = LakeFSClient(lakefs_sdk.Configuration(host=secure.url + "/api/v1", username=key, password=secret))
    try:
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.repositories_api.list_repositories()
    finally:
        untrusting._api.close()


def test_the_lakefs_data_backend_verifies_an_https_lakefs_with_ca_bundle(secure: Secure, tmp_path: Path) -> None:
    from mlops_lite import connect

    _, key, secret = secure.platform.tokens.create_access_key("tls-backend", "operator")
    options = {"data_backend": "lakefs", "lakefs_endpoint": secure.url, "lakefs_access_key_id": key,
               "lakefs_secret_access_key": secret}
    with connect(home=tmp_path / "home", ca_bundle=secure.ca, **options) as platform:
        assert [r.name for r in platform.data.repositories()] == ["loans"]
    with connect(home=tmp_path / "other", **options) as platform, pytest.raises(errors.BackendUnavailable):
        platform.data.repositories()


def test_tritonclient_over_tls_with_binary_tensors(secure: Secure) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    import gevent.ssl

    from tests.e2e.test_oip import DEPLOYMENT, INFER, _request
    from tests.e2e.test_oip_binary import _triton_inputs

    rows = holdout_rows(secure.spec, 8)
    with httpx.Client(base_url=secure.url, verify=secure.trusted().context(), timeout=30,
                      headers={"Authorization": f"Bearer {secure.token}"}) as client:
        expected = client.post(INFER, json=_request(secure.spec, rows))
        assert expected.status_code == 200, expected.text
    labels = expected.json()["outputs"][0]["data"]
    address = secure.url.removeprefix("https://")
    triton = httpclient.InferenceServerClient(url=address, ssl=True, ssl_options={"ca_certs": str(secure.ca)},
                                              ssl_context_factory=gevent.ssl.create_default_context)
    try:
        inputs = _triton_inputs(secure.spec, rows)
        assert all(t._get_binary_data() is not None for t in inputs)  # the default: binary tensors
        result = triton.infer(DEPLOYMENT, inputs, headers={"Authorization": f"Bearer {secure.token}"})
        assert result.as_numpy("label").tolist() == labels
        assert np.asarray(result.as_numpy("probabilities")).shape == (8, 2)
        assert triton.is_server_live(headers={"Authorization": f"Bearer {secure.token}"})
    finally:
        triton.close()
    untrusting = httpclient.InferenceServerClient(url=address, ssl=True,
                                                  ssl_context_factory=gevent.ssl.create_default_context)
    try:
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.is_server_live(headers={"Authorization": f"Bearer {secure.token}"})
    finally:
        untrusting.close()


def test_mutual_tls_required_refuses_no_certificate_and_accepts_a_worker(secure: Secure, tmp_path: Path) -> None:
    from server import create_app
    from server.runner import serve_in_thread

    settings = load_settings(home=secure.home, tls_client_auth="required")
    server = serve_in_thread(create_app(secure.platform), tls=tls.reloadable_server_context(settings))
    try:
        with RemotePlatform(server.url, secure.token, tls=secure.trusted()) as remote, \
                pytest.raises(errors.BackendUnavailable) as raised:
            remote.deployments.list()
        assert "client certificate" in str(raised.value) and "tls_client_cert" in str(raised.value)
        done = cli(secure.home, "cert", "issue", "--for", "worker", "--name", "w1", "--out", str(tmp_path / "w"))
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE((tmp_path / "w" / "w1.key").stat().st_mode) == 0o600
        worker = tls.client_tls(load_settings(home=tmp_path / "elsewhere", ca_bundle=tmp_path / "w" / "ca.crt",
                                              tls_client_cert=tmp_path / "w" / "w1.crt",
                                              tls_client_key=tmp_path / "w" / "w1.key"))
        with RemotePlatform(server.url, secure.token, tls=worker) as remote:
            assert [d.name for d in remote.deployments.list()] == ["loans"]
        # a certificate from another CA is refused too
        other = tls.create_ca(tmp_path / "o.crt", tmp_path / "o.key")
        tls.issue_client_certificate(other, tmp_path / "x.crt", tmp_path / "x.key", for_="worker", name="x")
        stranger = tls.ClientTLS(ca_file=secure.ca, system_roots=False, cert_file=tmp_path / "x.crt",
                                 key_file=tmp_path / "x.key")
        with RemotePlatform(server.url, secure.token, tls=stranger) as remote, \
                pytest.raises(errors.BackendUnavailable):
            remote.deployments.list()
    finally:
        server.stop()


class _Traffic:
    """Requests on fresh connections (each a new handshake) and on one kept-alive
    connection, from threads, until stopped; every answer and the serials seen kept."""

    def __init__(self, url: str, token: str, trust: ssl.SSLContext) -> None:
        self.url, self.trust = url, trust
        self.headers = {"Authorization": f"Bearer {token}"}
        self.failures: list[str] = []
        self.fresh_serials: list[int] = []
        self.kept_serials: list[int] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._fresh, daemon=True) for _ in range(2)]
        self._threads.append(threading.Thread(target=self._kept, daemon=True))
        for thread in self._threads:
            thread.start()

    def _fresh(self) -> None:
        while not self._stop.is_set():
            try:
                with httpx.Client(base_url=self.url, verify=self.trust, headers=self.headers, timeout=10) as c:
                    response = c.get("/v1/deployments")
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code}: {response.text}")
                    else:
                        self.fresh_serials.append(_serial(response))
            except httpx.HTTPError as exc:
                self.failures.append(repr(exc))

    def _kept(self) -> None:
        with httpx.Client(base_url=self.url, verify=self.trust, headers=self.headers, timeout=10) as client:
            while not self._stop.is_set():
                try:
                    response = client.get("/v1/deployments")
                    if response.status_code != 200:
                        self.failures.append(f"{response.status_code}: {response.text}")
                    else:
                        self.kept_serials.append(_serial(response))
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                time.sleep(0.01)

    def wait_for(self, serial: int, seconds: float = 15) -> None:
        deadline = time.monotonic() + seconds
        while serial not in self.fresh_serials[-5:]:
            assert time.monotonic() < deadline, f"serial {serial:x} not served within {seconds} s"
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


def test_rotation_on_sighup_and_on_file_change_without_a_failed_request(secure: Secure) -> None:
    from server import create_app
    from server.runner import serve_in_thread

    settings = secure.settings
    reloadable = tls.reloadable_server_context(settings)
    previous = signal.getsignal(signal.SIGHUP)
    reloadable.reload_on_sighup()
    server = serve_in_thread(create_app(secure.platform), tls=reloadable)
    traffic = _Traffic(server.url, secure.token, secure.trusted().context())
    try:
        first = tls.certificate_info(settings.tls_cert_file).serial
        traffic.wait_for(first)
        # SIGHUP: the files are rewritten first; nothing changes until the signal
        renewed = tls.ensure_server_certificate(settings, renew=True).server.serial
        time.sleep(0.3)
        assert renewed not in traffic.fresh_serials
        os.kill(os.getpid(), signal.SIGHUP)
        traffic.wait_for(renewed)
        # the file watcher: a renewal is served without any signal
        reloadable.watch(interval=0.1)
        done = cli(secure.home, "cert", "renew", "--json")
        assert done.returncode == 0, done.stderr
        third = json.loads(done.stdout)["server"]["serial"]
        traffic.wait_for(third)
        time.sleep(0.2)
    finally:
        traffic.stop()
        server.stop()
        signal.signal(signal.SIGHUP, previous)
    assert traffic.failures == []
    assert {first, renewed, third} <= set(traffic.fresh_serials)
    # the kept-alive connection went on with the certificate it began with
    assert traffic.kept_serials and set(traffic.kept_serials) == {traffic.kept_serials[0]}
    assert len(traffic.kept_serials) > 20
    assert reloadable._watcher is None  # stopped with the server


# ------------------------------------------------------------------------------------ the CLI

def test_init_makes_the_ca_and_certificate_once_and_cert_show_reads_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = cli(home, "init")
    assert first.returncode == 0, first.stderr
    assert "TLS CA" in first.stdout and "created" in first.stdout and "issued: missing" in first.stdout
    for key in ("ca.key", "server.key"):
        assert stat.S_IMODE((home / "tls" / key).stat().st_mode) == 0o600
    before = (home / "tls" / "server.crt").read_bytes()
    again = cli(home, "init")
    assert again.returncode == 0 and "kept" in again.stdout
    assert (home / "tls" / "server.crt").read_bytes() == before
    shown = cli(home, "cert", "show", "--json")
    info = json.loads(shown.stdout)
    assert set(info["names"]) == {"localhost", "127.0.0.1", "::1"} and info["usages"] == ["serverAuth"]
    text = cli(home, "cert", "show", "--ca")
    assert "a certificate authority" in text.stdout
    refused = cli(home, "cert", "issue", "--for", "root", "--out", str(tmp_path / "x"))
    assert refused.returncode == 1 and "worker" in refused.stderr and not (tmp_path / "x").exists()


def test_plain_http_off_loopback_is_refused_unless_insecure_http(tmp_path: Path) -> None:
    home = tmp_path / "home"
    for command in ("serve", "up"):
        done = cli(home, command, "--host", "192.0.2.10", "--no-tls", "--port", str(free_port()))
        assert done.returncode == 1, done.stdout
        assert "--insecure-http" in done.stderr and "192.0.2.10" in done.stderr and "Traceback" not in done.stderr
    assert not (home / "daemon.json").exists()


def test_insecure_http_off_loopback_warns_loudly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlops_lite.cli.daemon import _serving_settings

    settings = load_settings(home=tmp_path / "home", host="192.0.2.10")
    chosen = _serving_settings(settings, None, True, home=tmp_path / "home", host="192.0.2.10")
    assert not chosen.tls
    assert "WARNING" in capsys.readouterr().err
    chosen = _serving_settings(settings, None, False, home=tmp_path / "home", host="192.0.2.10")
    assert chosen.tls and chosen.server_url.startswith("https://") and chosen.tls_cert_file.exists()


def test_up_serves_https_and_renews_without_a_restart(tmp_path: Path, daemons: list[Daemon]) -> None:
    home = tmp_path / "home"
    port = free_port()
    daemon = Daemon(home, port, "--no-prefect", "--tls")
    daemons.append(daemon)
    daemon.url = f"https://127.0.0.1:{port}"
    settings = load_settings(home=home)

    def healthy() -> bool:
        token = daemon.token()
        if token is None or not settings.tls_ca_file.exists():
            return False
        try:
            return httpx.get(f"{daemon.url}/v1/health", headers={"Authorization": f"Bearer {token}"}, timeout=5,
                             verify=tls.ClientTLS(ca_file=settings.tls_ca_file).context()).status_code == 200
        except httpx.HTTPError:
            return False

    daemon.wait_until(healthy, 60, "GET /v1/health over https")
    assert json.loads((home / "daemon.json").read_text())["url"] == daemon.url
    # a command beside the daemon goes over https, verifying the home's CA
    status = cli(home, "-v", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert daemon.url in status.stderr
    trust = tls.ClientTLS(ca_file=settings.tls_ca_file, system_roots=False).context()
    traffic = _Traffic(daemon.url, daemon.token() or "", trust)
    try:
        first = tls.certificate_info(settings.tls_cert_file).serial
        traffic.wait_for(first)
        renewed = cli(home, "cert", "renew", "--json")
        assert renewed.returncode == 0, renewed.stderr
        traffic.wait_for(json.loads(renewed.stdout)["server"]["serial"])
        again = tls.ensure_server_certificate(settings, renew=True).server.serial
        os.kill(daemon.pid, signal.SIGHUP)  # reloads (or the watcher does); the daemon lives on
        traffic.wait_for(again)
    finally:
        traffic.stop()
    assert traffic.failures == []
    assert daemon.proc.poll() is None
    os.kill(daemon.pid, signal.SIGTERM)
    assert daemon.proc.wait(30) == 0
    assert not (home / "daemon.json").exists()


@pytest.mark.slow
def test_serve_workers_over_tls_with_the_control_plane_over_tls(tmp_path: Path, daemons: list[Daemon]) -> None:
    """`serve --workers 2 --tls` beside `up --tls`: the replicas verify the control plane
    with the home's CA, answer over HTTPS, and serve a renewed certificate without a restart."""
    home = tmp_path / "home"
    platform, token, spec = build_loop(home)
    platform.close()  # type: ignore[attr-defined]
    settings = load_settings(home=home)
    tls.ensure_server_certificate(settings)  # as `mlops-lite init` does
    port = free_port()
    daemon = Daemon(home, port, "--no-prefect", "--tls")
    daemons.append(daemon)
    trust = tls.ClientTLS(ca_file=settings.tls_ca_file, system_roots=False).context()
    headers = {"Authorization": f"Bearer {token}"}

    def answers(url: str, path: str) -> bool:
        try:
            return httpx.get(url + path, headers=headers, timeout=5, verify=trust).status_code == 200
        except (httpx.HTTPError, ssl.SSLError):
            return False

    daemon.wait_until(lambda: answers(f"https://127.0.0.1:{port}", "/v1/health"), 60, "the daemon over https")
    serve_port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        serve = subprocess.Popen([str(SCRIPT), "serve", "--workers", "2", "--tls", "--port", str(serve_port),
                                  "--poll", "0.2"], env=_env(home), stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    url = f"https://127.0.0.1:{serve_port}"
    try:
        deadline = time.monotonic() + 60
        while not answers(url, "/v2/health/ready"):
            assert serve.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.25)
        rows = holdout_rows(spec, 2)
        with httpx.Client(base_url=url, headers=headers, timeout=10, verify=trust) as client:
            answer = client.post(PREDICT, json={"instances": rows})
            # tokens are checked with the control plane (GET /v1/whoami over https, verified)
            assert answer.status_code == 200 and answer.json()["version"] == "1.0.0"
            assert client.post(PREDICT, headers={"Authorization": "Bearer nope"},
                               json={"instances": rows}).status_code == 401
        renewed = json.loads(cli(home, "cert", "renew", "--json").stdout)["server"]["serial"]
        deadline = time.monotonic() + 15
        seen: set[int] = set()
        while renewed not in seen:
            assert time.monotonic() < deadline, f"workers still serve {seen}"
            with httpx.Client(base_url=url, headers=headers, timeout=10, verify=trust) as client:
                response = client.post(PREDICT, json={"instances": rows})
                assert response.status_code == 200
                seen.add(_serial(response))
            time.sleep(0.1)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(30)
        daemon.kill()
