"""Open a report in headless Chromium and collect what went wrong, over the DevTools protocol.

Chromium runs with a fresh profile, no network services, and a remote-debugging port on 127.0.0.1;
a small websocket client enables the Runtime/Log/Network domains, loads the file and gathers console
errors, uncaught exceptions and any non-file network request until the page is loaded and idle.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars"]


def require_chromium() -> str:
    """The Chromium binary; in CI a missing browser fails the test instead of skipping it."""
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if path:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run installs Debian's chromium before the tests")
    pytest.skip("chromium is not installed (apt-get install -y chromium)")


@dataclass
class PageReport:
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    network: list[str] = field(default_factory=list)
    evaluated: object = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_targets(port: int, deadline: float) -> list[dict]:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as resp:
                targets = json.load(resp)
            if any(t.get("type") == "page" for t in targets):
                return targets
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port")


def inspect_page(html: Path, expression: str, timeout: float = 40.0) -> PageReport:
    """Load `html`, wait for load and a quiet second, evaluate `expression` (a JS expression
    returning JSON-able data) and return everything collected."""
    import websocket  # websocket-client

    binary = require_chromium()
    port = _free_port()
    profile = tempfile.mkdtemp(prefix="crmflow-chromium-")
    proc = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
                             f"--remote-debugging-port={port}", "--remote-allow-origins=*", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report = PageReport()
    deadline = time.monotonic() + timeout
    try:
        target = next(t for t in _wait_for_targets(port, deadline) if t.get("type") == "page")
        ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        ids = iter(range(1, 100_000))

        def handle(message: dict) -> None:
            method, params = message.get("method"), message.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                report.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                      for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                report.exceptions.append(details.get("exception", {}).get("description") or details.get("text", ""))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                report.console_errors.append(params["entry"].get("text", ""))
            elif method == "Network.requestWillBeSent":
                url = params.get("request", {}).get("url", "")
                if not url.startswith(("file:", "data:", "blob:", "about:")):
                    report.network.append(url)

        def call(method: str, params: dict | None = None) -> dict:
            """Send a command and read (handling events) until its response arrives."""
            msg_id = next(ids)
            ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
            while time.monotonic() < deadline:
                message = json.loads(ws.recv())
                if message.get("id") == msg_id:
                    return message.get("result", {})
                handle(message)
            raise TimeoutError(f"no answer to {method} within {timeout:.0f}s")

        def evaluate(js: str) -> object:
            result = call("Runtime.evaluate", {"expression": f"JSON.stringify({js})", "returnByValue": True})
            value = result.get("result", {}).get("value")
            return json.loads(value) if isinstance(value, str) else value

        for domain in ("Runtime.enable", "Log.enable", "Network.enable", "Page.enable"):
            call(domain)
        call("Page.navigate", {"url": html.resolve().as_uri()})
        while evaluate("document.readyState") != "complete" or evaluate("location.protocol") != "file:":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{html} did not finish loading in {timeout:.0f}s")
            time.sleep(0.2)
        # Let late work (plotly's async layout, timers) run, still collecting events.
        settle = time.monotonic() + 1.5
        ws.settimeout(0.2)
        while time.monotonic() < settle:
            try:
                handle(json.loads(ws.recv()))
            except websocket.WebSocketTimeoutException:
                pass
        ws.settimeout(timeout)
        report.evaluated = evaluate(expression)
        ws.close()
        return report
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 2400) -> Path:
    """A full-width PNG of the report (chromium --screenshot), for looking at it."""
    binary = require_chromium()
    with tempfile.TemporaryDirectory(prefix="crmflow-chromium-") as profile:
        subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
                        "--virtual-time-budget=5000", f"--screenshot={png}", html.resolve().as_uri()],
                       check=True, timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return png
