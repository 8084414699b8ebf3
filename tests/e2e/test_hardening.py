"""The hardened HTTP surface end to end: a real server on 127.0.0.1 over a real platform
(DuckDB file, a trained and deployed model), spoken to with real HTTP clients. Body
limits, failed-authentication throttling, security headers and CORS, redaction,
/v1/sql's caps, bounded limits, /metrics and /schema, lakeFS paths, webhooks, and a
full flow whose logs hold none of the secrets it made."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import holdout_rows

PREDICT = "/v1/deployments/loans/predict"


@pytest.fixture(scope="module")
def world(loop: tuple[Any, str, Any]) -> Any:
    return loop


@pytest.fixture
def serve(world: tuple[Any, str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """serve(**settings) -> the URL of a fresh app (its own failure counts) over the
    module's platform, with those settings changed for this test only."""
    from server import create_app
    from server.runner import serve_in_thread

    platform = world[0]
    running: list[Any] = []

    def start(cors_origins: list[str] | None = None, **settings: Any) -> str:
        for name, value in settings.items():
            monkeypatch.setattr(platform.settings, name, value)
        server = serve_in_thread(create_app(platform, cors_origins=cors_origins))
        running.append(server)
        return str(server.url)

    yield start
    for server in running:
        server.stop()


def _client(url: str, token: str | None = None, source: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.HTTPTransport(local_address=source) if source else None
    return httpx.Client(base_url=url, headers=headers, timeout=30, transport=transport)


# ---------------------------------------------------------------------------------- body limits


def test_a_json_body_past_its_limit_is_413_before_it_is_read(world: Any, serve: Any) -> None:
    url = serve(max_body_bytes=4096)
    with _client(url, world[1]) as admin:
        big = admin.post("/v1/sql", content=b" " * 10_000, headers={"content-type": "application/json"})
        small = admin.post("/v1/sql", json={"query": "select 1 as one"})
    assert big.status_code == 413, big.text
    body = big.json()
    assert (body["code"], body["field"], body["limit"], body["setting"]) == (
        "body_too_large", "body", 4096, "max_body_bytes")
    assert "MLOPS_LITE_MAX_BODY_BYTES" in body["message"]
    assert small.status_code == 200 and small.json()["rows"] == [[1]]


def test_a_body_without_a_length_is_stopped_at_the_limit(world: Any, serve: Any) -> None:
    url = serve(max_body_bytes=4096)

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to refuse up front
        for _ in range(100):
            yield b" " * 1024

    with _client(url, world[1]) as admin:
        response = admin.post("/v1/sql", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text
    assert (response.json()["setting"], response.json()["limit"]) == ("max_body_bytes", 4096)


def test_upload_and_predict_routes_take_their_own_larger_limits(world: Any, serve: Any) -> None:
    platform, token, spec = world
    url = serve(max_body_bytes=2048, max_predict_body_bytes=256 * 1024, max_upload_bytes=128 * 1024)
    rows = holdout_rows(spec, 20)
    platform.data.repo("loans").branch("limits").create(source="main", exist_ok=True)
    objects = "/api/v1/repositories/loans/branches/limits/objects"
    with _client(url, token) as admin:
        predicted = admin.post(PREDICT, json={"instances": rows})
        assert len(json.dumps({"instances": rows})) > 2048
        too_many = admin.post(PREDICT, content=b"[" + b" " * 300_000 + b"]",
                              headers={"content-type": "application/json"})
        uploaded = admin.post(objects, params={"path": "limits/a.bin"}, content=b"x" * 100_000,
                              headers={"content-type": "application/octet-stream"})
        too_big = admin.post(objects, params={"path": "limits/b.bin"}, content=b"x" * 200_000,
                             headers={"content-type": "application/octet-stream"})
    assert predicted.status_code == 200, predicted.text
    assert (too_many.status_code, too_many.json()["setting"]) == (413, "max_predict_body_bytes")
    assert uploaded.status_code == 201, uploaded.text
    assert too_big.status_code == 413 and too_big.json()["setting"] == "max_upload_bytes"
    assert "max_upload_bytes" in too_big.json()["message"]  # lakeFS clients read "message"
    assert [o.path for o in platform.data.repo("loans").ref("limits").ls("limits/").objects] == ["limits/a.bin"]


def test_a_run_artifact_is_streamed_into_the_store_up_to_the_upload_limit(world: Any, serve: Any) -> None:
    platform, token, _ = world
    url = serve(max_upload_bytes=256 * 1024)
    payload = bytes(range(256)) * 800  # 200 kB, past the JSON limit, within the upload limit

    def chunks(total: int) -> Iterator[bytes]:  # chunked: counted as it streams
        for _ in range(total // 4096):
            yield b"z" * 4096

    octets = {"content-type": "application/octet-stream"}
    with _client(url, token) as admin:
        run = admin.post("/v1/runs/start", json={"name": "artifact-limits"}).json()["id"]
        stored = admin.put(f"/v1/runs/{run}/artifacts", params={"name": "blob"}, content=payload, headers=octets)
        streamed = admin.put(f"/v1/runs/{run}/artifacts", params={"name": "stream"}, content=chunks(64 * 1024),
                             headers=octets)
        too_big = admin.put(f"/v1/runs/{run}/artifacts", params={"name": "big"}, content=chunks(512 * 1024),
                            headers=octets)
    assert stored.status_code == 200, stored.text
    assert platform.tracking.read_artifact(run, "blob") == payload
    assert streamed.status_code == 200 and platform.tracking.read_artifact(run, "stream") == b"z" * 64 * 1024
    assert (too_big.status_code, too_big.json()["setting"]) == (413, "max_upload_bytes")
    assert "big" not in platform.tracking.get_run(run).artifacts


def test_log_artifact_takes_a_binary_stream_locally_and_over_http(world: Any, serve: Any) -> None:
    import io

    from mlops_lite.client import RemotePlatform

    platform, token, _ = world
    url = serve()
    payload = b"model-bytes" * 10_000
    with RemotePlatform(url, token) as remote:
        for api in (platform, remote):
            with api.tracking.start_run("streamed-artifact") as run:
                digest = run.log_artifact("weights", io.BytesIO(payload))
                assert digest == run.log_artifact("weights-again", payload)  # the same content, the same digest
            assert api.tracking.read_artifact(run.id, "weights") == payload


def test_a_multipart_upload_streams_a_text_field_or_a_file_part(world: Any, serve: Any) -> None:
    platform, token, _ = world
    url = serve(max_upload_bytes=1 << 20)
    platform.data.repo("loans").branch("multipart").create(source="main", exist_ok=True)
    objects = "/api/v1/repositories/loans/branches/multipart/objects"
    text = "a,b\n" + "1,2\n" * 50_000  # 200 kB in a text (not file) part
    with _client(url, token) as admin:
        # A part without a filename is a text field; the legacy lakeFS client may send one.
        as_text = admin.post(objects, params={"path": "mp/text.csv"}, data={"content": text},
                             files={"other": ("o.txt", b"x")})
        as_file = admin.post(objects, params={"path": "mp/file.bin"},
                             files={"content": ("f.bin", b"\x00\x01" * 1000, "application/octet-stream")})
        missing = admin.post(objects, params={"path": "mp/none"}, data={"other": "x"}, files={"x": ("x", b"1")})
    assert as_text.status_code == 201, as_text.text
    assert as_file.status_code == 201, as_file.text
    ref = platform.data.repo("loans").ref("multipart")
    assert ref.read_bytes("mp/text.csv") == text.encode()
    assert ref.read_bytes("mp/file.bin") == b"\x00\x01" * 1000
    assert missing.status_code == 400 and "content" in missing.json()["message"]


# ---------------------------------------------------------------------------- failed logins


def test_bad_tokens_hammered_get_429_with_retry_after_and_the_credential_is_not_checked(
        world: Any, serve: Any) -> None:
    token = world[1]
    url = serve(auth_failures_max=5, auth_failures_window_s=60.0)
    statuses = []
    with _client(url, source="127.0.0.2") as attacker:
        for i in range(12):
            statuses.append(attacker.get("/v1/health", headers={"Authorization": f"Bearer mll_guess{i}"}))
        good_from_attacker = attacker.get("/v1/health", headers={"Authorization": f"Bearer {token}"})
        anonymous = attacker.get("/v1/health")
    assert [r.status_code for r in statuses] == [401] * 5 + [429] * 7
    limited = statuses[-1]
    assert limited.json()["code"] == "too_many_failed_authentications"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # The client is blocked while the window lasts, even with a good token: it is not looked at.
    assert good_from_attacker.status_code == 429
    assert anonymous.status_code == 401  # no credential: nothing to throttle, nothing counted
    with _client(url, token, source="127.0.0.3") as other:
        assert other.get("/v1/health").status_code == 200  # another client is not affected


def test_failures_count_per_identity_across_clients_and_successes_do_not_count(
        world: Any, serve: Any) -> None:
    platform, token, _ = world
    url = serve(auth_failures_max=3, auth_failures_window_s=60.0)
    _, key_id, secret = platform.tokens.create_access_key("hammered", "viewer")

    def basic(key: str, value: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{key}:{value}".encode()).decode()}

    with _client(url, source="127.0.0.4") as first, _client(url, source="127.0.0.5") as second, \
            _client(url, source="127.0.0.6") as third:
        assert first.get("/api/v1/user", headers=basic(key_id, "wrong-1")).status_code == 401
        assert second.get("/api/v1/user", headers=basic(key_id, "wrong-2")).status_code == 401
        assert third.get("/api/v1/user", headers=basic(key_id, "wrong-3")).status_code == 401
        # Three clients, one failure each: the key's identity is past its limit, not the clients.
        blocked = third.get("/api/v1/user", headers=basic(key_id, secret))
        assert blocked.status_code == 429 and "identity" in blocked.json()["message"]
        assert third.get("/api/v1/user", headers=basic("AKIAOTHER", "wrong")).status_code == 401
    with _client(url, token, source="127.0.0.7") as good:
        assert all(good.get("/v1/health").status_code == 200 for _ in range(10))
        assert good.get("/v1/health", headers={"Authorization": "Bearer mll_wrong"}).status_code == 401


def test_a_listed_proxy_is_never_throttled_itself_only_the_clients_it_forwards(world: Any, serve: Any) -> None:
    """A serving replica checks each of its clients' tokens here: a flood of bad tokens
    through it must not shut its good clients out."""
    token = world[1]
    url = serve(auth_failures_max=3, auth_failures_window_s=60.0, auth_proxies=["127.0.0.8"])
    with _client(url, source="127.0.0.8") as replica:
        relayed = [replica.get("/v1/whoami", headers={"Authorization": f"Bearer mll_bad{i}"}).status_code
                   for i in range(10)]
        assert relayed == [401] * 10  # distinct tokens, no forwarded client: nothing adds up
        assert replica.get("/v1/whoami", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        forwarded = [replica.get("/v1/whoami", headers={"Authorization": f"Bearer mll_fw{i}",
                                                        "X-Forwarded-For": "10.9.8.7, 203.0.113.7"}).status_code
                     for i in range(5)]
        assert forwarded == [401, 401, 401, 429, 429]  # the forwarded client is counted
        other = replica.get("/v1/whoami", headers={"Authorization": f"Bearer {token}",
                                                   "X-Forwarded-For": "203.0.113.8"})
        assert other.status_code == 200


# ---------------------------------------------------------------------------- headers, CORS


def test_every_answer_carries_the_security_headers_and_api_answers_are_not_cached(
        world: Any, serve: Any) -> None:
    url = serve()
    with _client(url, world[1]) as admin, _client(url) as anonymous:
        answers = {"ok": admin.get("/v1/whoami"), "created": admin.post("/v1/tokens", json={"name": "hdr",
                                                                                            "role": "viewer"}),
                   "401": anonymous.get("/v1/status"), "404": anonymous.get("/nowhere"),
                   "metrics": anonymous.get("/metrics"), "lakefs": anonymous.get("/api/v1/healthcheck")}
    for name, response in answers.items():
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.headers["referrer-policy"] == "no-referrer", name
        assert response.headers["x-frame-options"] == "DENY", name
        assert "strict-transport-security" not in response.headers, name  # plain HTTP
    for name in ("ok", "created", "401", "lakefs"):
        assert answers[name].headers["cache-control"] == "no-store", name
    assert answers["created"].status_code == 201 and answers["created"].json()["token"]


def test_hsts_is_sent_over_tls_and_not_over_plain_http(world: Any, tmp_path: Path) -> None:
    import ssl

    from mlops_lite.config import load_settings
    from mlops_lite.security import tls
    from server import create_app
    from server.runner import serve_in_thread

    platform, token, _ = world
    settings = load_settings(home=platform.settings.home)
    tls.ensure_server_certificate(settings)
    server = serve_in_thread(create_app(platform), tls=tls.reloadable_server_context(settings))
    try:
        trust = ssl.create_default_context(cafile=str(settings.tls_ca_file))
        with httpx.Client(base_url=server.url, verify=trust, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            over_tls = client.get("/v1/health")
            refused = client.get("/v1/health", headers={"Authorization": "Bearer mll_wrong"})
    finally:
        server.stop()
    assert server.url.startswith("https://")
    assert over_tls.status_code == 200
    for response in (over_tls, refused):
        assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_no_cors_header_by_default_and_a_configured_origin_works(world: Any, serve: Any) -> None:
    token = world[1]
    preflight = {"Origin": "https://ops.example.com", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    default = serve()
    with _client(default, token) as admin:
        plain = admin.get("/v1/health", headers={"Origin": "https://ops.example.com"})
        asked = admin.options("/v1/health", headers=preflight)
    assert not [h for h in plain.headers if h.startswith("access-control-")]
    assert not [h for h in asked.headers if h.startswith("access-control-")]
    configured = serve(cors_origins=["https://ops.example.com"])
    with _client(configured, token) as admin:
        allowed = admin.get("/v1/health", headers={"Origin": "https://ops.example.com"})
        checked = admin.options("/v1/health", headers=preflight)
        other = admin.get("/v1/health", headers={"Origin": "https://evil.example.net"})
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example.com"
    assert checked.status_code in (200, 204)
    assert checked.headers["access-control-allow-origin"] == "https://ops.example.com"
    assert "access-control-allow-origin" not in other.headers


# ---------------------------------------------------------------------------- redaction, paths


def test_status_never_shows_the_database_password(world: Any, serve: Any) -> None:
    url = serve(database_url="postgresql+psycopg://mlops:Sup3r-s3cret@db.internal:5432/mlops?sslmode=require")
    with _client(url, world[1]) as admin:
        response = admin.get("/v1/status")
    assert response.status_code == 200, response.text
    assert "Sup3r-s3cret" not in response.text
    assert response.json()["database"] == "postgresql+psycopg://mlops:***@db.internal:5432/mlops?sslmode=require"


def test_lakefs_answers_hold_no_path_of_the_server(world: Any, serve: Any) -> None:
    platform, token, _ = world
    url = serve()
    home = str(platform.settings.home)
    with _client(url, token) as admin:
        stat = admin.get("/api/v1/repositories/loans/refs/main/objects/stat", params={"path": "loans/train.csv"})
        listing = admin.get("/api/v1/repositories/loans/refs/main/objects/ls")
    assert stat.status_code == 200, stat.text
    assert stat.json()["physical_address"].startswith("local://objects/")
    assert home not in stat.text and home not in listing.text
    assert str(Path(home).parent) not in stat.text


# ---------------------------------------------------------------------------- abuse limits


def test_sql_rows_and_time_are_capped_by_the_server(world: Any, serve: Any) -> None:
    url = serve(sql_max_rows=2, sql_timeout_s=0.5)
    three = "select 1 as n union all select 2 union all select 3"
    slow = ("with recursive t(n) as (select 1 union all select n + 1 from t where n < 1000000000) "
            "select count(*) from t")
    with _client(url, world[1]) as admin:
        beyond = admin.post("/v1/sql", json={"query": three, "max_rows": 3})
        slower = admin.post("/v1/sql", json={"query": three, "timeout_s": 5})
        capped = admin.post("/v1/sql", json={"query": three, "max_rows": None})
        whole = admin.post("/v1/sql", json={"query": "select 1 as n", "max_rows": 2})
        stopped = admin.post("/v1/sql", json={"query": slow})
    assert beyond.status_code == 422 and beyond.json()["field"] == "max_rows"
    assert "sql_max_rows" in beyond.json()["message"]
    assert slower.status_code == 422 and slower.json()["field"] == "timeout_s"
    assert capped.status_code == 200 and capped.json()["rows"] == [[1], [2]] and capped.json()["truncated"] is True
    assert whole.json()["truncated"] is False
    assert stopped.status_code == 422, stopped.text
    assert stopped.json()["rule"] == "time_limit"


def test_sql_over_data_tables_is_capped_and_stopped_by_the_server(world: Any, serve: Any) -> None:
    import pyarrow as pa

    url = serve(sql_max_rows=5, sql_timeout_s=0.5)
    query = "/v1/data/repositories/loans/query"
    tables = {"loans": ["main", "loans/train.csv"]}
    with _client(url, world[1]) as admin:
        capped = admin.post(query, json={"sql": "select * from loans", "tables": tables})
        small = admin.post(query, json={"sql": "select count(*) as n from loans", "tables": tables})
        slow = admin.post(query, json={"sql": "select count(*) from loans, range(10000000000)", "tables": tables})
    table = pa.ipc.open_stream(capped.content).read_all()
    assert capped.status_code == 200 and table.num_rows == 5
    assert table.schema.metadata[b"mlops_lite.truncated"] == b"true"
    assert b"mlops_lite.truncated" not in (pa.ipc.open_stream(small.content).read_all().schema.metadata or {})
    assert slow.status_code == 422, slow.text
    assert (slow.json()["field"], slow.json()["rule"]) == ("sql", "time_limit")


def test_sql_over_the_prediction_log_is_capped_and_stopped_by_the_server(world: Any, serve: Any) -> None:
    url = serve(sql_timeout_s=0.5)
    with _client(url, world[1]) as admin:
        capped = admin.post("/v1/monitoring/query", json={"sql": "select * from range(1000000)", "max_rows": 5})
        slow = admin.post("/v1/monitoring/query", json={"sql": "select count(*) from range(10000000000)"})
    assert capped.status_code == 200, capped.text
    assert (len(capped.json()["rows"]), capped.json()["truncated"]) == (5, True)
    assert slow.status_code == 422, slow.text
    assert (slow.json()["field"], slow.json()["rule"]) == ("sql", "time_limit")


@pytest.mark.parametrize("path", ["/v1/runs", "/v1/alerts", "/v1/audit/events"])
def test_limit_parameters_are_bounded(world: Any, serve: Any, path: str) -> None:
    url = serve()
    with _client(url, world[1]) as admin:
        huge = admin.get(path, params={"limit": 10_001})
        negative = admin.get(path, params={"limit": -1})
        fine = admin.get(path, params={"limit": 5})
    assert (huge.status_code, huge.json()["field"]) == (422, "limit")
    assert (negative.status_code, negative.json()["field"]) == (422, "limit")
    assert fine.status_code == 200


def test_metrics_and_schema_need_a_token_unless_public(world: Any, serve: Any) -> None:
    token = world[1]
    closed = serve(public_metrics=False)
    with _client(closed) as anonymous, _client(closed, token) as viewer:
        assert anonymous.get("/metrics").status_code == 401
        assert anonymous.get("/schema/openapi.json").status_code == 401
        assert viewer.get("/metrics").status_code == 200
        assert "paths" in viewer.get("/schema/openapi.json").json()
    loopback = serve(public_metrics=None)  # the default: open on a loopback bind
    with _client(loopback) as anonymous:
        assert anonymous.get("/metrics").status_code == 200
        assert anonymous.get("/schema/openapi.json").status_code == 200


# ---------------------------------------------------------------------------- webhooks


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers["content-length"])
        self.server.received.append((self.path, json.loads(self.rfile.read(length))))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_a_listed_loopback_webhook_gets_the_alert_and_an_unlisted_one_is_refused(
        tmp_path: Path, receiver: HTTPServer) -> None:
    from mlops_lite import InvalidInput, connect

    port = receiver.server_address[1]
    url = f"http://127.0.0.1:{port}/hooks/T0KEN-in-path"
    with pytest.raises(InvalidInput, match="webhook_allow"):
        connect(home=tmp_path / "refused", alert_webhook="http://169.254.169.254/latest/meta-data/")
    with pytest.raises(InvalidInput, match="webhook_allow"):
        connect(home=tmp_path / "unlisted", alert_webhook=url)
    with connect(home=tmp_path / "listed", alert_webhook=url, webhook_allow=[f"127.0.0.1:{port}"]) as platform:
        sink = next(s for s in platform.alerts.sinks if type(s).__name__ == "WebhookSink")
        sink.send({"event": "alert.fire", "id": "a1"})
        assert sink.drain(10)
    assert receiver.received == [("/hooks/T0KEN-in-path", {"event": "alert.fire", "id": "a1"})]  # type: ignore[attr-defined]


def test_a_name_that_resolves_to_loopback_is_refused_before_any_connection() -> None:
    from mlops_lite.alerts.webhook import Webhook

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        # The name is listed, its address is not: a DNS answer cannot make it reach loopback.
        delivery = Webhook(f"http://localhost:{port}/x", allow=[f"localhost:{port}"], retries=0).post({"e": 1})
        with pytest.raises(TimeoutError):
            listener.accept()
    assert delivery.ok is False and delivery.attempts == 0
    assert "refused" in (delivery.error or "") and "127.0.0.1" in (delivery.error or "")


# ---------------------------------------------------------------------------- secrets never in logs


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


def test_a_full_flow_logs_none_of_the_secrets_it_made(
        world: Any, serve: Any, receiver: HTTPServer) -> None:
    from mlops_lite.alerts.webhook import WebhookSink

    platform, admin_token, spec = world
    capture = _Capture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(name) for name in ("mlops_lite", "uvicorn", "uvicorn.error", "litestar", "httpx")]
    for each in loggers:
        each.addHandler(capture)
    db_password = "Pg-pa55word-xyz"
    hook_secret = "hook-path-secret-123"
    try:
        url = serve(database_url=f"postgresql://mlops:{db_password}@db.internal/mlops", auth_failures_max=4)
        with _client(url, admin_token) as admin:
            token = admin.post("/v1/tokens", json={"name": "flow-op", "role": "operator"}).json()["token"]
            key = admin.post("/v1/access-keys", json={"name": "flow-key", "role": "viewer"}).json()
            assert admin.get("/v1/status").status_code == 200
        with _client(url, source="127.0.0.9") as guesser:
            for guess in (token[:-2] + "xx", "mll_" + token[4:10], admin_token + "0"):
                guesser.get("/v1/whoami", headers={"Authorization": f"Bearer {guess}"})
            wrong = base64.b64encode(f"{key['access_key_id']}:{key['secret_access_key']}x".encode()).decode()
            guesser.get("/api/v1/user", headers={"Authorization": f"Basic {wrong}"})
            guesser.get("/api/v1/user", headers={"Authorization": f"Basic {wrong}"})
        with _client(url, token) as operator:
            assert operator.post(PREDICT, json={"instances": holdout_rows(spec, 5)}).status_code == 200
            assert operator.post("/v1/sql", json={"query": "select token_hash from api_tokens"}).status_code in (
                200, 422)
        hook = WebhookSink(f"http://127.0.0.1:{receiver.server_address[1]}/{hook_secret}",
                           allow=["127.0.0.1:*"], retries=0)
        hook.send({"event": "alert.fire", "id": "flow"})
        assert hook.drain(10)
        refused = WebhookSink(f"http://localhost:1/{hook_secret}", allow=["localhost:1"], retries=0)
        refused.send({"event": "alert.fire", "id": "refused"})
        assert refused.drain(10)
        refused.close()
        hook.close()
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
        for each in loggers:
            each.removeHandler(capture)
    home = platform.settings.home
    audit_key = (home / "audit.key").read_text().strip() if (home / "audit.key").exists() else None
    secrets = {"admin token": admin_token, "operator token": token, "access key secret": key["secret_access_key"],
               "database password": db_password, "webhook path": hook_secret}
    if audit_key:
        secrets["audit key"] = audit_key
    files = [p for p in (home / "logs").rglob("*") if p.is_file()] if (home / "logs").exists() else []
    texts = {"log records": "\n".join(capture.lines),
             **{str(p): p.read_text(errors="replace") for p in files}}
    assert capture.lines, "the flow logged nothing: the capture is not working"
    assert any("refused" in line for line in capture.lines)  # the webhook refusal was logged
    hits = [(name, where) for name, secret in secrets.items() for where, text in texts.items() if secret in text]
    assert hits == []


def test_a_serving_replica_keeps_metrics_and_schema_behind_a_token_off_loopback(
        world: Any, serve: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from server.runner import serve_in_thread
    from server.serving import ServingPlatform, build_serving_app

    platform = world[0]
    url = serve()
    _, replica_token = platform.tokens.create("replica@hardening", "predictor", service="replica")
    _, viewer = platform.tokens.create("viewer@hardening", "viewer")
    monkeypatch.setenv("MLOPS_LITE_HOME", str(platform.settings.home))
    monkeypatch.setenv("MLOPS_LITE_HOST", "0.0.0.0")  # what `mlops-lite serve --host 0.0.0.0` gives its workers
    replica = serve_in_thread(build_serving_app(ServingPlatform(url, replica_token, poll_s=0.5)))
    try:
        with _client(replica.url) as anonymous, _client(replica.url, viewer) as reader:
            closed = [anonymous.get("/metrics"), anonymous.get("/schema/openapi.json")]
            opened = [reader.get("/metrics"), reader.get("/schema/openapi.json")]
            health = anonymous.get("/v1/health")
            flood = anonymous.post("/v1/deployments/loans/predict", content=b" " * (65 << 20),
                                   headers={"content-type": "application/json"})
    finally:
        replica.stop()
    assert [r.status_code for r in closed] == [401, 401]
    assert [r.status_code for r in opened] == [200, 200]
    assert health.status_code == 401 and health.headers["x-content-type-options"] == "nosniff"
    assert (flood.status_code, flood.json()["setting"]) == (413, "max_predict_body_bytes")
