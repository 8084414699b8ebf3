"""Run the app with uvicorn: in a background thread (the demo, tests) or as the daemon."""

from __future__ import annotations

import asyncio
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from litestar import Litestar

from mlops_lite.errors import BackendUnavailable
from mlops_lite.security.tls import ReloadableServerContext


class _Server(uvicorn.Server):
    """uvicorn's server, whose shutdown does not wait on idle TLS connections.

    Closing an idle connection sends TLS's close_notify, and asyncio then waits up to 30 s
    for the client's own, which a client holding a pooled connection does not send: a
    server with one such client took 30 s to stop. A connection still closing a second
    after the shutdown began is aborted; one finishing a response is left to finish."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        def abort_idle_tls() -> None:
            for connection in list(self.server_state.connections):
                transport = getattr(connection, "transport", None)
                if (transport is not None and transport.is_closing()
                        and transport.get_extra_info("sslcontext") is not None):
                    transport.abort()

        timer = asyncio.get_running_loop().call_later(1.0, abort_idle_tls)
        try:
            await super().shutdown(sockets)
        finally:
            timer.cancel()


@dataclass
class RunningServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    tls: ReloadableServerContext | None = None

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.tls is not None:
            self.tls.stop()


def ssl_options(tls: ReloadableServerContext | None) -> dict[str, Any]:
    """uvicorn's options to serve ``tls``'s context (uvicorn would otherwise build one of its
    own from certificate files at start, which nothing could reload); none for plain HTTP."""
    if tls is None:
        return {}
    context = tls.context

    def ssl_context(_config: uvicorn.Config, _default: Any) -> ssl.SSLContext:
        return context

    return {"ssl_context_factory": ssl_context}


def settings_ssl_context(_config: uvicorn.Config, _default: Any) -> ssl.SSLContext:
    """uvicorn's ``ssl_context_factory`` for worker processes (``serve --workers N``; it must
    be importable, as each worker builds its own): the context of the settings, reloaded
    when the certificate files change. SIGHUP to the parent replaces the workers, one at a
    time, and each new one reads the files then."""
    from mlops_lite.config import load_settings
    from mlops_lite.security.tls import reloadable_server_context

    tls = reloadable_server_context(load_settings())
    tls.watch()
    if threading.current_thread() is threading.main_thread():
        tls.reload_on_sighup()  # a worker process, or the one process of `serve --workers 1`
    return tls.context


def _url(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def serve_in_thread(app: Litestar, host: str = "127.0.0.1", port: int = 0, *,
                    tls: ReloadableServerContext | None = None) -> RunningServer:
    """Serve ``app`` on a background thread; port 0 takes a free loopback port. With
    ``tls``, HTTPS; its file watcher (if started) is stopped by ``stop()``."""
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted connections only when
    # it does, and without it Nagle's algorithm adds ~40 ms to every response.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", **ssl_options(tls))
    server = _Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="mlops-lite-server")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise BackendUnavailable(f"the server did not start on {host}:{bound_port}")
        time.sleep(0.01)
    return RunningServer(url=_url("https" if tls is not None else "http", host, bound_port), server=server,
                         thread=thread, tls=tls)


def serve_forever(app: Litestar, host: str, port: int, *, tls: ReloadableServerContext | None = None) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM. With ``tls``, HTTPS, and the
    certificate is read again on SIGHUP and when its files change (no restart)."""
    # uvicorn re-raises the signal after its graceful shutdown; the default actions (death for
    # SIGTERM, KeyboardInterrupt for SIGINT) would skip or garble the daemon's cleanup
    # (daemon.json, Prefect, the stores). Exit cleanly instead.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: sys.exit(0))
    if tls is not None:
        tls.reload_on_sighup()
        tls.watch()
    try:
        server = _Server(uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False,
                                        **ssl_options(tls)))
        server.run()
        if not server.started:
            sys.exit(3)  # as uvicorn.run: the server did not start (the port taken, a bad certificate)
    finally:
        if tls is not None:
            tls.stop()
