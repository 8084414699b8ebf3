"""Benchmark of the zero-trust paths, each figure beside a reference measured in the same run.

    .venv/bin/python bench/security.py [--quick] [--clients 32] [--json PATH]

Figures (``bench: FIGURE value=V reference=R ratio=X target=T ok|short``):

- ``tls_predict_batch1_req_per_s``: requests/s of batch-1 JSON predicts over HTTPS
  (TLS 1.3, the home's CA verified by the client, keep-alive connections), against the
  same app served over plain HTTP by the same runner. ratio = value/reference; target >= 0.8.
- ``tls_http_error_rate``: errors/requests during the HTTPS load; must be 0.
- ``oidc_cached_added_us``: microseconds a request's authentication costs more with a
  federated JWT (an RS256 token of an issuer on 127.0.0.1 whose keys are cached, seen
  before) than with a local ``mll_`` token seen before, through the server's
  ``authenticate_bearer``. The reference is the local token's cost. Target <= 50 us (a
  maximum: ``ok`` when the added cost is at most the target).
- ``oidc_first_verify_us``: microseconds to verify a JWT not seen before (signature,
  claims, JWKS cached), against a local token's first lookup (a metadata store read).
  Reported, no target (each token is verified once, then remembered until it expires).

The issuer is a real one on 127.0.0.1: a discovery document and a JWKS served over
HTTP, its RSA key made here, its tokens signed with PyJWT, as a provider signs them.
Both servers run in this process on threads (``server.runner.serve_in_thread``); the
load generator is ``bench/serving.py``'s, in a child process, over asyncio streams
(with an SSL context trusting the home's CA for HTTPS). Never run by the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from figures import Figure, print_lines, print_table
from serving import DEPLOYMENT, HOLDOUT_CSV, deploy_loans, machine_info, run_load

AUDIENCE = "mlops-lite"


@contextmanager
def issuer() -> Iterator[tuple[str, Any, str]]:
    """A minimal OpenID issuer on 127.0.0.1: discovery + JWKS. Yields (issuer URL, private
    key, kid)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = "bench-1"
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = json.dumps({"keys": [{**public, "kid": kid, "use": "sig", "alg": "RS256"}]}).encode()
    state: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    state["/.well-known/openid-configuration"] = json.dumps(
        {"issuer": url, "jwks_uri": f"{url}/jwks", "id_token_signing_alg_values_supported": ["RS256"]}).encode()
    state["/jwks"] = jwks
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url, key, kid
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def sign(key: Any, kid: str, url: str, subject: str) -> str:
    import jwt

    now = int(time.time())
    claims = {"iss": url, "aud": AUDIENCE, "sub": subject, "preferred_username": subject, "groups": ["ml-ops"],
              "iat": now, "nbf": now, "exp": now + 3600}
    return str(jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid}))


def per_call_us(call: Callable[[], Any], *, calls: int, rounds: int) -> float:
    """The median over ``rounds`` of the mean microseconds per call."""
    results = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        results.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run (~40 s)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent HTTP connections (default 32)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    warmup_s, duration_s, repeats = (0.5, 2.0, 1) if args.quick else (1.0, 5.0, 3)
    auth_calls, auth_rounds, first_calls = (5_000, 3, 100) if args.quick else (50_000, 5, 500)

    import pyarrow.csv as pacsv

    from mlops_lite.config import OidcIssuer, load_settings
    from mlops_lite.home import init_home
    from mlops_lite.platform import open_local
    from mlops_lite.security import tls
    from server import create_app
    from server.auth import authenticate_bearer
    from server.runner import serve_in_thread

    print("bench/security.py: TLS serving and OIDC token checks, against references measured in this run")
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mlops-lite-bench-") as tmp, issuer() as (issuer_url, key, kid):
        home = Path(tmp) / "home"
        settings = load_settings(home=home)
        token = init_home(settings).token
        assert token is not None
        material = tls.ensure_server_certificate(settings)
        settings = load_settings(home=home, oidc=[OidcIssuer(issuer=issuer_url, audience=AUDIENCE,
                                                             roles={"ml-ops": "operator"})])
        platform = open_local(settings)
        servers: list[Any] = []
        try:
            _table, spec, _version = deploy_loans(platform)
            rows = pacsv.read_csv(HOLDOUT_CSV).select([*spec.numeric, *spec.categorical]).to_pylist()
            bodies = [json.dumps({"instances": [row]}) for row in rows]
            info = machine_info(platform.deployments.providers)
            print(f"  machine: {info['cores']} cores, Python {info['python']}, {info['server_stack']}; "
                  f"{info['platform']}")
            print(f"  TLS: the server certificate ({material.server.subject}) signed by the home's CA, the client "
                  f"verifies against {settings.tls_ca_file}; "
                  f"{args.clients} keep-alive connections, batch-1 JSON predicts, {repeats} x {duration_s:g} s each")

            plain = serve_in_thread(create_app(platform))
            servers.append(plain)
            secure = serve_in_thread(create_app(platform), tls=tls.reloadable_server_context(settings))
            servers.append(secure)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            path = f"/v1/deployments/{DEPLOYMENT}/predict"
            runs: dict[str, list[dict[str, Any]]] = {"http": [], "https": []}
            for _ in range(repeats):  # interleaved, so drift in the machine's load hits both
                for name, running in (("http", plain), ("https", secure)):
                    runs[name].append(run_load(running.url + path, bodies, headers, clients=args.clients,
                                               warmup_s=warmup_s, duration_s=duration_s, max_requests=1_000_000,
                                               ca=str(settings.tls_ca_file)))
            best = {name: max(results, key=lambda r: r["req_per_s"]) for name, results in runs.items()}
            for name, result in best.items():
                print(f"  {name:5}: {result['req_per_s']:.0f} req/s, p50 {result['p50_ms']:.2f} ms, "
                      f"p99 {result['p99_ms']:.2f} ms, errors {result['errors']}/{result['requests']}"
                      + (f" (first: {result['first_error']})" if result["first_error"] else ""))
            ratio = best["https"]["req_per_s"] / best["http"]["req_per_s"]
            figures.append(Figure("tls_predict_batch1_req_per_s", f"HTTPS predict, batch 1, {args.clients} conns",
                                  "req/s", best["https"]["req_per_s"], best["http"]["req_per_s"],
                                  "the same app over plain HTTP", ratio, 0.8, ratio >= 0.8, "ratio >="))
            requests = sum(r["requests"] for r in runs["https"])
            errors = sum(r["errors"] for r in runs["https"])
            rate = errors / requests if requests else 1.0
            figures.append(Figure("tls_http_error_rate", "HTTPS error rate", "", rate, 0.0, "none expected",
                                  rate, 0, rate == 0, "must be ="))

            # ---- OIDC: the guard's authentication, cached
            jwt_token = sign(key, kid, issuer_url, "alice")
            loop = asyncio.new_event_loop()
            try:
                def authenticate(secret: str) -> Any:
                    return loop.run_until_complete(authenticate_bearer(platform, secret))

                assert authenticate(jwt_token).kind == "oidc"
                assert authenticate(token).kind == "token"

                async def many(secret: str, n: int) -> None:
                    for _ in range(n):
                        await authenticate_bearer(platform, secret)

                def cached_us(secret: str) -> float:
                    results = []
                    for _ in range(auth_rounds):
                        start = time.perf_counter()
                        loop.run_until_complete(many(secret, auth_calls))
                        results.append((time.perf_counter() - start) / auth_calls * 1e6)
                    return statistics.median(results)

                local_us = cached_us(token)
                federated_us = cached_us(jwt_token)
                added = federated_us - local_us
                figures.append(Figure("oidc_cached_added_us", "OIDC JWT seen before, added cost", "us/req",
                                      max(added, 0.0), local_us, "a local token seen before",
                                      federated_us / local_us if local_us else float("inf"), 50, added <= 50,
                                      "added <="))

                fresh = iter([sign(key, kid, issuer_url, f"user-{i}") for i in range(first_calls * 3)])
                first_jwt = per_call_us(lambda: platform.identities.authenticate(next(fresh)), calls=first_calls,
                                        rounds=3)
                locals_ = iter([platform.tokens.create(f"bench-{i}", "viewer")[1] for i in range(first_calls * 3)])
                first_local = per_call_us(lambda: platform.tokens.authenticate(next(locals_)), calls=first_calls,
                                          rounds=3)
                figures.append(Figure("oidc_first_verify_us", "OIDC JWT first verification", "us/req", first_jwt,
                                      first_local, "a local token's first lookup (store read)",
                                      first_jwt / first_local if first_local else float("inf"), 0, True,
                                      "reported"))
            finally:
                loop.close()
        finally:
            for running in servers:
                running.stop()
            platform.close()

    print()
    print_table(figures)
    print_lines(figures)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([f.__dict__ for f in figures], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
