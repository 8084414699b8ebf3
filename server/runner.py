"""Run the app with uvicorn: in a background thread (the demo, tests) or as the daemon."""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass

import uvicorn
from litestar import Litestar

from mlops_lite.errors import BackendUnavailable


@dataclass
class RunningServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def serve_in_thread(app: Litestar, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve ``app`` on a background thread; port 0 takes a free loopback port."""
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted connections only when
    # it does, and without it Nagle's algorithm adds ~40 ms to every response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="mlops-lite-server")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise BackendUnavailable(f"the server did not start on {host}:{bound_port}")
        time.sleep(0.01)
    return RunningServer(url=f"http://{host}:{bound_port}", server=server, thread=thread)


def serve_forever(app: Litestar, host: str, port: int) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM."""
    # uvicorn re-raises the signal after its graceful shutdown; the default actions (death for
    # SIGTERM, KeyboardInterrupt for SIGINT) would skip or garble the daemon's cleanup
    # (daemon.json, Prefect, the stores). Exit cleanly instead.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: sys.exit(0))
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
