"""The image's HEALTHCHECK: is the command this container runs answering?

- ``up``: GET /v1/health at the URL the daemon wrote in the home (daemon.json).
- ``serve``: GET /v1/health on 127.0.0.1 at its --port (8080 by default); a replica's
  readiness (models loaded) is /v2/health/ready, for an orchestrator's readiness probe.
- ``worker`` and any other command: no port to ask; the process running is the check.

``MLOPS_LITE_HEALTH_URL`` overrides the URL. The bearer is ``MLOPS_LITE_HEALTH_TOKEN``,
``MLOPS_LITE_SERVE_TOKEN`` or ``MLOPS_LITE_TOKEN`` (role predictor is enough); with none,
the server answering 401 counts as alive (it is up and checking tokens). HTTPS is verified
against ``MLOPS_LITE_CA_BUNDLE``, else the home's CA (tls/ca.crt) and the system's roots.
Exit 0 healthy, 1 not. Standard library only: it runs every 30 s.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

HOME = Path(os.environ.get("MLOPS_LITE_HOME", "/data/home"))


def _command(cmdline: list[str]) -> tuple[str | None, list[str]]:
    """The mlops-lite subcommand in a process's arguments, and the arguments after it."""
    for index, arg in enumerate(cmdline):
        if arg in ("up", "serve", "worker"):
            return arg, cmdline[index + 1:]
    return None, []


def _option(args: list[str], name: str) -> str | None:
    for index, arg in enumerate(args):
        if arg == name and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def health_url(cmdline: list[str]) -> str | None:
    """Where to ask, or None when the command serves nothing."""
    if os.environ.get("MLOPS_LITE_HEALTH_URL"):
        return os.environ["MLOPS_LITE_HEALTH_URL"]
    command, args = _command(cmdline)
    if command == "up":
        try:
            base = json.loads((HOME / "daemon.json").read_text())["url"]
        except (OSError, ValueError, KeyError):
            raise SystemExit("unhealthy: the daemon has not written daemon.json (starting, or failed)") from None
        return f"{base.rstrip('/')}/v1/health"
    if command == "serve":
        port = _option(args, "--port") or "8080"
        # Plain HTTP only with --insecure-http (or --no-tls on loopback); else HTTPS is tried
        # first and plain HTTP after a TLS failure, as the home's `tls` setting decides.
        scheme = "http" if "--insecure-http" in args else "auto"
        return f"{scheme}://127.0.0.1:{port}/v1/health"
    return None


def _context() -> ssl.SSLContext:
    bundle = os.environ.get("MLOPS_LITE_CA_BUNDLE")
    context = ssl.create_default_context(cafile=bundle or None)
    home_ca = HOME / "tls" / "ca.crt"
    if not bundle and home_ca.exists():
        context.load_verify_locations(cafile=str(home_ca))
    return context


def probe(url: str, token: str | None) -> tuple[bool, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=4, context=_context() if url.startswith("https") else None) as r:
            return r.status == 200, f"{url}: {r.status}"
    except urllib.error.HTTPError as exc:
        if exc.code == 401 and not token:
            return True, f"{url}: 401 (alive; no token to ask further)"
        return False, f"{url}: {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {getattr(exc, 'reason', exc)}"


def main() -> int:
    try:
        cmdline = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        cmdline = []
    url = health_url(cmdline)
    if url is None:
        print("healthy: no port to ask (the process runs)")
        return 0
    token = next((os.environ[k] for k in ("MLOPS_LITE_HEALTH_TOKEN", "MLOPS_LITE_SERVE_TOKEN", "MLOPS_LITE_TOKEN")
                  if os.environ.get(k)), None)
    if url.startswith("auto://"):  # `serve` as the `tls` setting decides: HTTPS first, then HTTP
        ok, detail = probe("https://" + url[len("auto://"):], token)
        if not ok and "SSL" in detail.upper():
            ok, detail = probe("http://" + url[len("auto://"):], token)
    else:
        ok, detail = probe(url, token)
    print(("healthy: " if ok else "unhealthy: ") + detail)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
