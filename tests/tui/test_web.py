"""``mlops-lite tui --web``: the console served to a browser through textual-serve, started
as a real process against a real platform (served over HTTP; the token travels in the
environment), fetched over HTTP, its websocket opened until the app's first frame shows,
then stopped with nothing left listening or running."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.tui.conftest import Served

pytestmark = pytest.mark.anyio

URL_LINE = re.compile(r"The operator console: (http://127\.0\.0\.1:(\d+)/\?key=(\S+))")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> list[str]:
    """The local addresses listening on ``port`` (IPv4 and IPv6), from /proc/net."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def command_lines(pgid: int) -> list[str]:
    """The command lines of every process in the group (the server and each tab's console)."""
    lines = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) == pgid:
                lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return lines


@dataclass
class WebConsole:
    process: subprocess.Popen[str]
    url: str
    port: int
    key: str
    output: list[str]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def environment(served: Served, role: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(MLOPS_LITE_HOME=str(served.home), MLOPS_LITE_URL=served.url, MLOPS_LITE_TOKEN=served.tokens[role])
    return env


@contextmanager
def web_console(env: dict[str, str]) -> Iterator[WebConsole]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlops_lite", "tui", "--web", "--port", str(port), "--refresh", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if URL_LINE.search(line):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert seen.wait(30), "no URL printed:\n" + "".join(output)
        found = next(m for m in map(URL_LINE.search, output) if m)
        assert int(found.group(2)) == port
        yield WebConsole(process, found.group(1), port, found.group(3), output)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        finally:
            if group_alive(process.pid):
                os.killpg(process.pid, signal.SIGKILL)
        reader.join(5)


async def first_frame(web: WebConsole, client: httpx.Client, wanted: tuple[bytes, ...]) -> bytes:
    """Open the app's websocket with the page's cookie, as the page's script does, and read
    the terminal output until every ``wanted`` piece has been drawn."""
    cookies = {name: value for name, value in client.cookies.items()}
    screen = b""
    async with aiohttp.ClientSession(cookies=cookies) as session, session.ws_connect(
            f"ws://127.0.0.1:{web.port}/ws?width=80&height=24", headers={"Origin": web.base}) as ws:
        await ws.send_json(["resize", {"width": 80, "height": 24}])
        deadline = time.monotonic() + 45
        while not all(piece in screen for piece in wanted):
            left = deadline - time.monotonic()
            assert left > 0, f"the app's first frame never showed {wanted}; got {screen[-2000:]!r}"
            try:
                message = await ws.receive(timeout=left)
            except TimeoutError:
                missing = [piece for piece in wanted if piece not in screen]
                text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", screen).decode(errors="replace")
                raise AssertionError(f"the app's first frame never showed {missing}; it drew {text[:3000]!r}") \
                    from None
            if message.type == aiohttp.WSMsgType.BINARY:
                screen += message.data
            elif message.type == aiohttp.WSMsgType.TEXT:
                screen += message.data.encode()
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                raise AssertionError(f"the websocket closed before the first frame: {screen[-2000:]!r}")
        await ws.send_json(["stdin", "q"])
    return screen


async def test_the_console_is_served_on_loopback_and_stops_clean(served: Served) -> None:
    with web_console(environment(served, "viewer")) as web:
        assert listening(web.port) == ["0100007F"]  # 127.0.0.1, and nothing else
        with httpx.Client(timeout=10) as client:
            assert client.get(f"{web.base}/").status_code == 403
            assert client.get(f"{web.base}/?key=wrong").status_code == 403
            page = client.get(web.url, follow_redirects=True)
            assert page.status_code == 200 and str(page.url) == f"{web.base}/"  # the key left the address
            assert "textual.js" in page.text and f'data-session-websocket-url="ws://127.0.0.1:{web.port}/ws"' \
                in page.text
            screen = await first_frame(web, client, (b"Pulse", b"loans", b"console-viewer"))
            assert b"remote: " + served.url.encode() in screen
            # The token reached the console through the environment, on no command line.
            assert not any(served.tokens["viewer"] in line for line in command_lines(web.process.pid))
        web.process.send_signal(signal.SIGTERM)
        assert web.process.wait(20) == 0
        deadline = time.monotonic() + 10
        while group_alive(web.process.pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not group_alive(web.process.pid), command_lines(web.process.pid)
        assert listening(web.port) == []
    assert served.tokens["viewer"] not in "".join(web.output)


async def test_the_websocket_answers_its_own_page_only(served: Served) -> None:
    with web_console(environment(served, "viewer")) as web, httpx.Client(timeout=10) as client:
        client.get(web.url)
        cookies = {name: value for name, value in client.cookies.items()}
        async with aiohttp.ClientSession(cookies=cookies) as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"ws://127.0.0.1:{web.port}/ws",
                                         headers={"Origin": "http://evil.example"})
            assert refused.value.status == 403
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(f"ws://127.0.0.1:{web.port}/ws", headers={"Origin": web.base})
            assert refused.value.status == 403


def test_a_port_in_use_is_refused_naming_it(served: Served) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "mlops_lite", "tui", "--web", "--port", str(port)],
                              env=environment(served, "viewer"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr and "--port" in done.stderr


def test_nothing_is_served_for_a_home_not_made(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_LITE_URL", "MLOPS_LITE_TOKEN")}
    env["MLOPS_LITE_HOME"] = str(tmp_path / "none")
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "mlops_lite", "tui", "--web", "--port", str(port)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "run `mlops-lite init`" in done.stderr
    assert not (tmp_path / "none").exists() and listening(port) == []


def test_a_local_home_is_served_from_its_environment(tmp_path: Path) -> None:
    """No daemon, no URL: each tab's console opens the home named by MLOPS_LITE_HOME."""
    from tests.conftest import build_loop

    home = tmp_path / "home"
    platform: Any
    platform, _, _ = build_loop(home)
    platform.close()
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_LITE_URL", "MLOPS_LITE_TOKEN")}
    env["MLOPS_LITE_HOME"] = str(home)
    with web_console(env) as web, httpx.Client(timeout=10) as client:
        client.get(web.url)
        screen = asyncio.run(first_frame(web, client, (b"Pulse", b"loans", b"local:")))
        assert b"remote:" not in screen
