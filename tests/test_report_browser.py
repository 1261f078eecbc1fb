"""`nnlab report` opened in a real browser: headless Chromium, every network request blocked, driven over
the DevTools protocol (websocket-client, the `dev` extra). Asserts no console error, every chart drew (its
SVG exists and has a size), the tables hold the run ids, and the first screen is not blank.

Skipped only where no Chromium exists, and never in CI (CI=true: .ci/run installs Debian's chromium).
NNLAB_REPORT_SCREENSHOT=docs/report.png keeps the first screen's screenshot (the README's picture)."""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nnlab.cli import app
from nnlab.runstore import list_runs
from report_store import HOSTILE_NOTE, report_store  # noqa: F401  (the session's store)

CHROMIUM = os.environ.get("NNLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--window-size=1280,900", "--hide-scrollbars"]
DEADLINE = 60.0  # seconds for any one wait: a bound, not a measurement


def _need_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"no Chromium at {CHROMIUM}: CI must install it (.ci/run: apt-get install -y chromium)")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium); the report's browser check needs one")


class Page:
    """One tab over the DevTools protocol: commands by id, events kept as they come."""

    def __init__(self, url: str):
        import websocket

        self.ws = websocket.create_connection(url, timeout=DEADLINE, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def send(self, method: str, **params) -> dict:
        key = next(self.ids)
        self.ws.send(json.dumps({"id": key, "method": method, "params": params}))
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            message = json.loads(self.ws.recv())
            if message.get("id") == key:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)
        raise AssertionError(f"{method}: no answer within {DEADLINE} s")

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression[:60]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str) -> None:
        end = time.monotonic() + DEADLINE
        while not self.evaluate(expression):
            if time.monotonic() > end:
                raise AssertionError(f"still false after {DEADLINE} s: {expression}")
            time.sleep(0.1)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    _need_browser()
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        end = time.monotonic() + DEADLINE
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if process.poll() is not None or time.monotonic() > end:
                pytest.fail(f"{CHROMIUM} did not start (exit {process.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=DEADLINE) as answer:
            target = next(t for t in json.load(answer) if t["type"] == "page")
        yield Page(target["webSocketDebuggerUrl"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def opened(browser, report_store, tmp_path_factory):
    """The report of every run in the store, loaded with the network blocked; returns (page, runs, screenshot)."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    result = CliRunner().invoke(app, ["report", "--runs-dir", str(report_store), "-o", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    page = browser
    for domain in ("Runtime", "Log", "Network", "Page"):
        page.send(f"{domain}.enable")
    page.send("Network.setBlockedURLs", urls=["http://*", "https://*", "ws://*", "wss://*", "ftp://*"])
    page.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
    page.send("Page.navigate", url=out.as_uri())
    page.wait_for("document.readyState === 'complete' && window.nnlabDrawn === window.nnlabCharts")
    shot = base64.b64decode(page.send("Page.captureScreenshot", format="png")["data"])
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true); true")
    page.wait_for("window.nnlabDrawn === window.nnlabCharts && document.querySelectorAll('div.chart[id]').length "
                  "=== window.nnlabCharts")
    runs = [run.folder for run in list_runs(report_store)[0]]
    return page, runs, shot


def test_no_console_error_and_no_network(opened):
    page, _, _ = opened
    errors = [e["params"] for e in page.events if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert errors == []
    asked = [e["params"]["request"]["url"] for e in page.events if e.get("method") == "Network.requestWillBeSent"]
    assert asked and all(url.startswith(("file:", "data:", "blob:", "about:")) for url in asked), asked
    # the hostile note is text on the page, not markup: no image, no script ran, the words shown as written
    assert page.evaluate("document.title") == "nnlab report"
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert HOSTILE_NOTE in page.evaluate("document.body.innerText")


def test_every_chart_drew(opened):
    page, _, _ = opened
    sizes = page.evaluate("""Array.from(document.querySelectorAll('div.chart[id]')).map(el => {
        const svg = el.querySelector('svg.main-svg'); const box = svg ? svg.getBoundingClientRect() : null;
        return [el.id, box ? box.width : 0, box ? box.height : 0, el.querySelectorAll('g.trace, g.hm').length]; })""")
    # loss and accuracy curves, the sweep's one setting, and per model: a confusion matrix, ROC, PR and
    # calibration where the run recorded them
    assert len(sizes) >= 3
    assert all(width > 100 and height > 100 and traces >= 1 for _, width, height, traces in sizes), sizes
    curves = page.evaluate("document.querySelectorAll('#curves div.chart').length")
    assert curves == 2  # loss, accuracy
    # every curve of every run's network: 1 plain + 1 repeated + 2 sweep points, one model each, in the legend
    legend = page.evaluate("Array.from(document.querySelectorAll('#curves div.chart')[0]"
                           ".querySelectorAll('g.legend text.legendtext')).map(t => t.textContent)")
    assert len(legend) == 4 and any("mean of 3" in name for name in legend), legend
    assert page.evaluate("document.querySelectorAll('#sweep div.chart').length") == 1


def test_tables_hold_the_run_ids(opened):
    page, runs, _ = opened
    for table in ("table.runs", "table.compare", "table.data"):
        text = page.evaluate(f"document.querySelector('{table}').innerText")
        assert all(run in text for run in runs), (table, runs)
    summaries = page.evaluate("Array.from(document.querySelectorAll('details.run summary b')).map(b => b.textContent)")
    assert sorted(summaries) == sorted(runs)


def test_first_screen_is_not_blank(opened):
    from PIL import Image

    _, _, shot = opened
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=float)
    assert pixels.shape == (900, 1280)
    assert pixels.std() > 10  # a blank page is one colour; text, tables and a chart are not
    assert (pixels < 128).mean() > 0.005  # and something dark is drawn on the white
    keep = os.environ.get("NNLAB_REPORT_SCREENSHOT")
    if keep:
        Image.open(io.BytesIO(shot)).convert("RGB").quantize(64).save(keep, optimize=True)
