"""The console in a browser tab: ``mlops-lite tui --web`` serves the same app through
textual-serve, on 127.0.0.1 only.

Each browser tab that connects runs its own ``mlops-lite tui`` process, with this
process's environment (the home, ``MLOPS_LITE_URL`` and ``MLOPS_LITE_TOKEN`` pass through
the environment, never the command line). A port on 127.0.0.1 is open to every local
user, and the console acts with the home's or the token's rights, so the page asks for a
key made at start (the printed URL carries it, as Jupyter's does): the first visit trades
it for a cookie (HttpOnly, SameSite=Strict) and is sent on without it, and the app's
websocket takes only that cookie and a same-origin request, so another page in the same
browser cannot drive the console either. No request is logged (a URL may hold the key).
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import secrets
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from textual_serve.server import Server

from mlops_lite.errors import InvalidInput

HOST = "127.0.0.1"
DEFAULT_PORT = 8566
COOKIE = "mlops-lite-console"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConsoleServer(Server):
    """textual-serve's server for one command, behind a key, bound to 127.0.0.1."""

    def __init__(self, command: str, *, port: int = DEFAULT_PORT, key: str | None = None) -> None:
        super().__init__(command, host=HOST, port=port, title="mlops-lite console")
        self.key = key or secrets.token_urlsafe(24)

    @property
    def url(self) -> str:
        """Where to point the browser: the page, with the key."""
        return f"{self.public_url}/?key={self.key}"

    def _granted(self, request: web.Request) -> bool:
        given = request.cookies.get(COOKIE, "")
        return bool(given) and hmac.compare_digest(given.encode(), self.key.encode())

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/static/"):
            return await handler(request)  # the page's scripts and styles: no data, no app
        if request.path == "/" and "key" in request.query:
            if not hmac.compare_digest(request.query["key"].encode(), self.key.encode()):
                raise web.HTTPForbidden(text="wrong key: open the URL that `mlops-lite tui --web` printed\n")
            # Trade the key for a cookie and drop it from the address bar and history.
            found = web.HTTPSeeOther("/")
            found.set_cookie(COOKIE, self.key, httponly=True, samesite="Strict", path="/")
            raise found
        if not self._granted(request):
            raise web.HTTPForbidden(text="no key: open the URL that `mlops-lite tui --web` printed\n")
        if request.path == "/ws" and request.headers.get("Origin") not in (None, self.public_url):
            raise web.HTTPForbidden(text="the console's websocket answers its own page only\n")
        return await handler(request)

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._guard)
        return app

    async def on_startup(self, app: web.Application) -> None:
        """Nothing yet (textual-serve prints its banner here, before the port is bound)."""

    def _announce(self, *args: Any) -> None:
        """aiohttp calls this once the port is listening: the URL, with the key."""
        self.console.print(f"The operator console: {self.url}", highlight=False, soft_wrap=True)
        self.console.print("Each tab runs its own console; ctrl+c stops serving.", highlight=False)

    def serve(self, debug: bool = False) -> None:
        """Serve until SIGINT or SIGTERM (textual-serve's ``serve``, without its access log)."""
        self.debug = debug
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_exit)
        try:
            web.run_app(self._make_app(), host=self.host, port=self.port, handle_signals=False, loop=loop,
                        print=self._announce, access_log=None)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InvalidInput(f"port {self.port} on {self.host} is in use", field="port",
                                   expected="a free port, e.g. --port 8567") from exc
            raise
        finally:
            loop.close()


def serve_console(command: str, *, port: int = DEFAULT_PORT) -> None:
    """Serve ``command`` (the console, run once per tab with this process's environment)
    at http://127.0.0.1:PORT until interrupted."""
    if not 0 < port < 65536:
        raise InvalidInput(f"bad port {port}", field="port", expected="1-65535")
    ConsoleServer(command, port=port).serve()
