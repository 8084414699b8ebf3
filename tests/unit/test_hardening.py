"""The HTTP surface's defences as units: headers (HSTS under TLS), the failure counts,
the keys a failure counts against, URL redaction, the webhook allow-list, and home
paths said as <home>. The server end to end is tests/e2e/test_hardening.py."""

from __future__ import annotations

import ast
import base64
import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest

from mlops_lite import InvalidInput
from mlops_lite.config import load_settings, redacted_url
from server.hardening import FailedLogins, TooManyFailures, failure_keys, hide_home, metrics_public, security_headers


def _headers_after(scope: dict[str, Any], preset: list[tuple[bytes, bytes]] | None = None) -> dict[str, str]:
    message: dict[str, Any] = {"type": "http.response.start", "status": 200, "headers": list(preset or [])}
    anyio.run(security_headers, message, scope)
    return {k.decode(): v.decode() for k, v in message["headers"]}


def test_hsts_is_sent_only_over_tls() -> None:
    over_tls = _headers_after({"type": "http", "scheme": "https", "path": "/v1/health"})
    plain = _headers_after({"type": "http", "scheme": "http", "path": "/v1/health"})
    assert over_tls["strict-transport-security"].startswith("max-age=")
    assert "strict-transport-security" not in plain
    for headers in (over_tls, plain):
        assert (headers["x-content-type-options"], headers["x-frame-options"], headers["referrer-policy"]) == (
            "nosniff", "DENY", "no-referrer")
        assert headers["cache-control"] == "no-store"


def test_a_route_that_sets_its_own_cache_control_keeps_it_and_non_api_paths_get_none() -> None:
    own = _headers_after({"type": "http", "scheme": "http", "path": "/v1/x"}, [(b"cache-control", b"max-age=60")])
    assert own["cache-control"] == "max-age=60"
    assert "cache-control" not in _headers_after({"type": "http", "scheme": "http", "path": "/metrics"})


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_past_the_limit_in_the_window_refuse_then_the_window_passes() -> None:
    clock = _Clock()
    counts = FailedLogins(3, 60.0, clock=clock)
    keys = ["client:10.0.0.1"]
    for _ in range(3):
        counts.check(keys)
        counts.record(keys)
        clock.now += 1
    with pytest.raises(TooManyFailures) as refused:
        counts.check(keys)
    assert refused.value.http_status == 429
    assert refused.value.headers["Retry-After"] == "57"  # the first failure (3 s ago) leaves the window in 57 s
    counts.check(["client:10.0.0.2"])  # another key is not affected
    clock.now += 57.5
    counts.check(keys)  # the oldest failure left the window


def test_the_failure_counts_forget_the_least_recently_seen_keys() -> None:
    counts = FailedLogins(1, 60.0, max_tracked=100)
    for i in range(1000):
        counts.record([f"client:10.0.{i // 256}.{i % 256}"])
    assert len(counts) == 100
    counts.check(["client:10.0.0.0"])  # forgotten
    with pytest.raises(TooManyFailures):
        counts.check(["client:10.0.3.231"])  # the newest is remembered


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def test_a_failure_counts_against_the_client_and_the_identity_its_credential_claims() -> None:
    secret = "mll_not-a-real-token"
    basic = base64.b64encode(b"AKIAEXAMPLE:wrong").decode()
    assert failure_keys("10.0.0.1", "") == []  # no credential: nothing counts
    assert failure_keys("10.0.0.1", "Bearer ") == []
    bearer = failure_keys("10.0.0.1", f"Bearer {secret}")
    assert bearer[0] == "client:10.0.0.1" and bearer[1].startswith("identity:token:")
    assert secret not in "".join(bearer)  # a hash prefix, never the secret
    assert failure_keys("10.0.0.1", f"Basic {basic}") == ["client:10.0.0.1", "identity:access-key:AKIAEXAMPLE"]
    jwt = _jwt({"iss": "https://idp.example.com", "sub": "alice"})
    assert failure_keys(None, f"Bearer {jwt}") == ["client:unknown", "identity:jwt:https://idp.example.com#alice"]
    # The same token twice counts against the same identity; another one does not.
    assert failure_keys("a", f"Bearer {secret}")[1] == failure_keys("b", f"Bearer {secret}")[1] == bearer[1]
    assert failure_keys("a", "Bearer other")[1] != bearer[1]
    # From a listed proxy: the client its X-Forwarded-For appended last, or none.
    proxied = failure_keys("10.0.0.9", f"Bearer {secret}", proxies=["10.0.0.9"], forwarded_for="1.2.3.4, 5.6.7.8")
    assert proxied == ["client:5.6.7.8", bearer[1]]
    assert failure_keys("10.0.0.9", f"Bearer {secret}", proxies=["10.0.0.9"]) == [bearer[1]]
    assert failure_keys("10.0.0.1", f"Bearer {secret}", proxies=["10.0.0.9"], forwarded_for="5.6.7.8")[0] == \
        "client:10.0.0.1"  # a header from anyone else is not believed


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://alice:s3cr%40t@db:5432/m?sslmode=verify-full",
     "postgresql+psycopg://alice:***@db:5432/m?sslmode=verify-full"),
    ("postgresql://db/m?user=a&password=hunter2&sslmode=require", "postgresql://db/m?user=a&password=***&sslmode=require"),
    ("duckdb:////tmp/home/metadata.duckdb", "duckdb:////tmp/home/metadata.duckdb"),
    ("postgresql://bob@db/m", "postgresql://bob@db/m"),
])
def test_urls_are_shown_without_their_passwords(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def test_the_status_summary_redacts_the_database_password(tmp_path: Path) -> None:
    from mlops_lite import connect

    with connect(home=tmp_path / "home") as platform:
        platform.settings.database_url = "postgresql://mlops:Very-s3cret@db.internal/mlops"
        summary = platform.summary()
    assert "Very-s3cret" not in json.dumps(summary, default=str)
    assert summary["database"] == "postgresql://mlops:***@db.internal/mlops"


def test_the_allow_list_names_hosts_and_ports_and_refuses_what_it_does_not() -> None:
    from mlops_lite.alerts.webhook import Webhook, WebhookAllowList

    allow = WebhookAllowList(["hooks.example.com:443", "127.0.0.1:*", "[::1]:8080"])
    assert allow.check_url("https://hooks.example.com/services/x") == ("hooks.example.com", 443)
    assert allow.check_url("http://127.0.0.1:9000/x") == ("127.0.0.1", 9000)
    assert allow.check_url("http://[::1]:8080/x") == ("::1", 8080)
    for refused in ("http://hooks.example.com/x", "https://evil.example.net/x", "http://169.254.169.254/latest",
                    "http://[fd00:ec2::254]/latest"):
        with pytest.raises(InvalidInput, match="webhook_allow") as error:
            allow.check_url(refused)
        assert error.value.field == "url"
    with pytest.raises(InvalidInput, match="webhook_allow"):
        Webhook("http://169.254.169.254/latest/meta-data/")  # nothing listed: nothing reachable
    with pytest.raises(InvalidInput, match="webhook_allow"):
        WebhookAllowList(["no-port"])


def test_non_public_addresses_are_refused_unless_the_address_itself_is_listed() -> None:
    from mlops_lite.alerts.webhook import WebhookAllowList

    by_name = WebhookAllowList(["metadata.example:80", "localhost:*"])
    for address in ("169.254.169.254", "fe80::1", "fd00:ec2::254", "10.1.2.3", "192.168.0.1", "127.0.0.1"):
        with pytest.raises(InvalidInput, match="webhook_allow"):
            by_name.resolve(address, 80)
    assert WebhookAllowList(["127.0.0.1:*"]).resolve("127.0.0.1", 80) == "127.0.0.1"
    assert WebhookAllowList(["169.254.169.254:80"]).resolve("169.254.169.254", 80) == "169.254.169.254"
    assert WebhookAllowList(["8.8.8.8:443"]).resolve("8.8.8.8", 443) == "8.8.8.8"  # public: no listing needed


def test_webhook_allow_takes_a_list_or_the_environment_string(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLOPS_LITE_WEBHOOK_ALLOW", "hooks.example.com:443, 127.0.0.1:*")
    assert load_settings(home=tmp_path).webhook_allow == ["hooks.example.com:443", "127.0.0.1:*"]
    monkeypatch.setenv("MLOPS_LITE_WEBHOOK_ALLOW", "http://hooks.example.com/")
    with pytest.raises(ValueError, match="webhook_allow"):
        load_settings(home=tmp_path)


def test_metrics_are_public_by_default_only_on_a_loopback_bind(tmp_path: Path) -> None:
    assert metrics_public(load_settings(home=tmp_path, host="127.0.0.1")) is True
    assert metrics_public(load_settings(home=tmp_path, host="0.0.0.0")) is False
    assert metrics_public(load_settings(home=tmp_path, host="0.0.0.0", public_metrics=True)) is True
    assert metrics_public(load_settings(home=tmp_path, host="127.0.0.1", public_metrics=False)) is False


def test_answers_say_home_instead_of_the_servers_folder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    text = f"cannot read {home}/objects/ab/cdef: no such file"
    assert hide_home(text, home) == "cannot read <home>/objects/ab/cdef: no such file"


# ---- constant-time comparison of secrets ------------------------------------------------------

# The audit chain's hashes are not among them: they are exported to operators, links anyone may read.
_SECRET_NAME = re.compile(r"(secret|password|signature|token_hash|(^|_)mac$)")
_SCANNED = ("server", "mlops_lite/security", "mlops_lite/alerts", "mlops_lite/client")


def _operand_name(node: ast.expr) -> str | None:
    """The name an operand is known by: ``x``, ``obj.x`` or ``d["x"]``; None for a column of
    a table class (``ApiToken.token_hash == digest`` is a lookup by sha256 in SQL)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id[:1].isupper():
            return None
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value
    return None


def test_no_secret_is_compared_with_equals() -> None:
    """Secrets, MACs and signatures are compared with hmac.compare_digest: ``==`` leaks how
    many leading characters matched through its timing."""
    root = Path(__file__).resolve().parents[2]
    found = []
    for folder in _SCANNED:
        for file in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if not isinstance(node, ast.Compare) or not any(isinstance(o, ast.Eq | ast.NotEq) for o in node.ops):
                    continue
                operands = [node.left, *node.comparators]
                if any(isinstance(o, ast.Constant) for o in operands):
                    continue  # against a literal (a scheme, an empty string): no secret on both sides
                names = [_operand_name(o) or "" for o in operands]
                if any(_SECRET_NAME.search(name.lower()) for name in names):
                    found.append(f"{file.relative_to(root)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []


def test_the_audit_chain_check_refuses_a_forged_hash_of_any_text() -> None:
    from mlops_lite.security.audit import GENESIS, _event_hash, verify_events

    key = b"k" * 32
    event = {"prev_hash": GENESIS, "seq": 1, "id": "e1", "at": "2026-01-01T00:00:00+00:00", "actor": "a",
             "action": "x", "object": "o", "before": {}, "after": {}}
    event["hash"] = _event_hash(key, GENESIS, 1, "e1", event["at"], "a", "x", "o", {}, {})
    assert verify_events(key, [event]) is None
    for forged in (event["hash"][:-1] + "0", "é" * 64, ""):
        assert verify_events(key, [{**event, "hash": forged}]) is not None


def test_a_settings_repr_holds_no_secret(tmp_path: Path) -> None:
    """A repr reaches logs and tracebacks that show locals."""
    settings = load_settings(home=tmp_path, token="mll_Repr-secret", lakefs_secret_access_key="lakefs-Repr-secret",
                             database_url="postgresql://mlops:Repr-password@db/mlops")
    shown = f"{settings!r} {settings}"
    assert "Repr-secret" not in shown and "Repr-password" not in shown
    assert "postgresql://mlops:***@db/mlops" in shown
    assert settings.token == "mll_Repr-secret"  # the value itself is untouched
