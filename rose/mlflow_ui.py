"""The MLflow UI as rose's users open it: an experiment's address, a local ``mlflow server`` on a store, and headless
Chromium to load (and photograph) its pages.

MLflow 3.17's UI chooses an experiment's first page by its "GenAI / Model training" switch (remembered by the
browser, GenAI when it has none), not by the experiment's ``mlflow.experimentKind`` tag: the address rose prints
carries ``workflowType=machine_learning``, so the experiment opens on its training runs in any browser.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from rose.errors import RoseError

WORKFLOW = "workflowType=machine_learning"
TABS = ("runs", "models")


def experiment_url(base: str, experiment_id: str, tab: str = "runs") -> str:
    """The address of an experiment's training runs (``tab="runs"``) or logged models (``"models"``)."""
    if tab not in TABS:
        raise ValueError(f"unknown tab {tab!r}: use one of {', '.join(TABS)}")
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/{tab}?{WORKFLOW}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(store_uri: str, port: int | None = None, timeout: float = 180.0) -> Iterator[str]:
    """A real ``mlflow server`` on ``store_uri`` at 127.0.0.1 (this Python's MLflow), stopped on exit; yields its
    base URL."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store_uri, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,  # its uvicorn workers go with it
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2).close()
                break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None:
                    raise RoseError(
                        f"mlflow server on {store_uri} stopped: {proc.stderr.read().decode()[-500:]}"
                    ) from None
                if time.monotonic() > deadline:
                    raise RoseError(f"mlflow server on {store_uri} did not answer within {timeout:.0f} s") from None
                time.sleep(0.5)
        yield base
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session and everything it started."""
    import signal

    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def chromium() -> str | None:
    """The headless-capable Chromium on PATH (``chromium``, ``chromium-browser``, ``google-chrome``), or None."""
    return next((path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))),
                None)  # fmt: skip


def _browser(args: list[str], budget_ms: int, timeout: float) -> subprocess.CompletedProcess:
    binary = chromium()
    if binary is None:
        raise RoseError("no Chromium found: install it (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="rose-chromium-") as profile:
        flags = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--hide-scrollbars", f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}"]  # fmt: skip
        env = {**os.environ, "HOME": profile}  # Chromium writes its crash and config folders under HOME
        return subprocess.run([*flags, *args], capture_output=True, text=True, timeout=timeout, env=env)


def dump_dom(url: str, budget_ms: int = 20000, timeout: float = 180.0) -> str:
    """The page's DOM once its scripts ran (``budget_ms`` of virtual time for the React app to fetch and render)."""
    done = _browser(["--dump-dom", "--window-size=3840,2160", url], budget_ms, timeout)  # wide: every column
    if done.returncode != 0 or not done.stdout:
        raise RoseError(f"Chromium could not load {url}: {done.stderr.strip()[-300:]}")
    return done.stdout


def screenshot(url: str, path: Path, size: tuple[int, int] = (1600, 900), *, script: str = "", settle_s: float = 3.0,
               timeout: float = 180.0) -> Path:  # fmt: skip
    """A PNG of the page at ``size`` (width, height) once it rendered, after running ``script`` (JavaScript) in it:
    headless Chromium driven over the DevTools protocol."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with DevTools(size, timeout) as page:
        page.load(url, settle_s)
        page.wait_for(READY, timeout)
        time.sleep(2.0)
        if script:
            page.call("Runtime.evaluate", expression=script, awaitPromise=True)
            time.sleep(2.0)
        path.write_bytes(page.png())
    return path


READY = "document.querySelectorAll('.ag-row').length > 0"  # the table's rows are there (runs, models)
# What the README's screenshots hide: the assistant panel (closed), and on the Models page the columns between the
# classifiers' names and their scores (scrolled past; the name, status and creation time stay pinned on the left).
CLOSE_ASSISTANT = """(async () => {
  const close = [...document.querySelectorAll('button[aria-label="Close"]')].find(
    b => b.closest('div') && document.body.innerText.includes('MLflow Assistant'));
  if (close) close.click();
})()"""
SHOW_SCORES = CLOSE_ASSISTANT.replace(
    "if (close) close.click();",
    """if (close) close.click();
  await new Promise(r => setTimeout(r, 1500));
  const first = document.querySelector('.ag-header-cell[col-id^="metrics."]');
  const scroller = document.querySelector('.ag-body-horizontal-scroll-viewport');
  if (first && scroller) scroller.scrollLeft = first.offsetLeft;""",
)


class DevTools:
    """One page of a headless Chromium, driven over the DevTools protocol with a minimal websocket client (the
    standard library only: one connection, text frames)."""

    def __init__(self, size: tuple[int, int], timeout: float = 180.0):
        self.size, self.timeout, self._id = size, timeout, 0

    def __enter__(self) -> DevTools:
        import json

        binary = chromium()
        if binary is None:
            raise RoseError("no Chromium found: install it (Debian: apt-get install -y chromium)")
        self._profile = tempfile.TemporaryDirectory(prefix="rose-chromium-")
        profile = self._profile.name
        self._proc = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", f"--window-size={self.size[0]},{self.size[1]}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HOME": profile},
            start_new_session=True,
        )  # fmt: skip
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.__exit__(None, None, None)
                raise RoseError("Chromium did not open its DevTools port")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as reply:
            page = next(t for t in json.loads(reply.read()) if t.get("type") == "page")
        self._sock = _websocket(page["webSocketDebuggerUrl"], self.timeout)
        self.call("Emulation.setDeviceMetricsOverride", width=self.size[0], height=self.size[1],
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        return self

    def __exit__(self, *exc) -> None:
        if getattr(self, "_sock", None) is not None:
            self._sock.close()
        _stop_group(self._proc)
        self._profile.cleanup()

    def call(self, method: str, **params) -> dict:
        """Send a command and return its result (events in between are skipped)."""
        import json

        self._id += 1
        _send(self._sock, json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(_receive(self._sock))
            if message.get("id") == self._id:
                if "error" in message:
                    raise RoseError(f"Chromium: {method}: {message['error'].get('message')}")
                return message.get("result", {})

    def load(self, url: str, settle_s: float) -> None:
        """Open ``url`` and give its scripts ``settle_s`` seconds to fetch and render."""
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        time.sleep(settle_s)

    def wait_for(self, condition: str, timeout: float) -> None:
        """Wait until the JavaScript expression ``condition`` is true in the page."""
        deadline = time.monotonic() + timeout
        while not self.call("Runtime.evaluate", expression=condition, returnByValue=True)["result"].get("value"):
            if time.monotonic() > deadline:
                raise RoseError(f"the page did not render within {timeout:.0f} s ({condition})")
            time.sleep(1.0)

    def png(self) -> bytes:
        import base64

        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])


def _websocket(url: str, timeout: float) -> socket.socket:
    """A connected websocket (RFC 6455 client handshake) to a ``ws://host:port/path`` address."""
    import base64
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())  # fmt: skip
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise RoseError("Chromium closed the DevTools connection")
        head += chunk
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise RoseError(f"Chromium refused the DevTools connection: {head.splitlines()[0]!r}")
    return sock


def _send(sock: socket.socket, text: str) -> None:
    import struct

    payload = text.encode()
    n = len(payload)
    header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
                              if n < 1 << 16 else bytes([0x80 | 127]) + struct.pack(">Q", n))  # fmt: skip
    mask = os.urandom(4)
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def _exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise RoseError("Chromium closed the DevTools connection")
        out += chunk
    return bytes(out)


def _receive(sock: socket.socket) -> str:
    """One text message (continuation frames joined; the server's frames are not masked)."""
    import struct

    message = bytearray()
    while True:
        first, second = _exactly(sock, 2)
        n = second & 0x7F
        if n == 126:
            n = struct.unpack(">H", _exactly(sock, 2))[0]
        elif n == 127:
            n = struct.unpack(">Q", _exactly(sock, 8))[0]
        mask = _exactly(sock, 4) if second & 0x80 else b""
        data = _exactly(sock, n)
        if mask:
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        if first & 0x0F in (0x8,):
            raise RoseError("Chromium closed the DevTools connection")
        if first & 0x0F in (0x9, 0xA):  # ping, pong
            continue
        message += data
        if first & 0x80:
            return message.decode()


def visible_text(dom: str) -> str:
    """The text of a dumped DOM, without scripts, styles and tags (whitespace collapsed)."""
    import html
    import re

    text = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", text))).strip()
