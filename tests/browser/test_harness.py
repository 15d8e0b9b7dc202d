"""The harness itself: Chromium starts, loads the vendored scripts from a local server, runs
htmx and draws a Chart.js chart, and a screenshot is written."""

import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import ROOT, screenshot

VENDOR = ROOT / "bot" / "console" / "static" / "vendor"
HARNESS_PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>harness</title>
<script src="/vendor/htmx.min.js"></script>
<script src="/vendor/sse.min.js"></script>
<script src="/vendor/chart.umd.min.js"></script>
</head><body>
<button id="load" hx-get="/fragment" hx-target="#out">load</button>
<div id="out"></div>
<div style="width: 600px; height: 300px"><canvas id="chart"></canvas></div>
</body></html>"""
PAGES = {"/": HARNESS_PAGE, "/fragment": b"<p id='swapped'>swapped by htmx</p>"}
DRAW_BAR_CHART = """() => {
  const chart = new Chart(document.getElementById("chart"), {
    type: "bar",
    data: {labels: ["open", "late", "done"], datasets: [{label: "tasks", data: [3, 5, 2]}]},
    options: {animation: false, responsive: true, maintainAspectRatio: false},
  });
  return chart.getDatasetMeta(0).data.map(bar => bar.base - bar.y);
}"""


class HarnessHandler(SimpleHTTPRequestHandler):
    """The pages above by path; anything under /vendor/ from the vendored folder."""

    def do_GET(self) -> None:
        if self.path in PAGES:
            self._send_page(PAGES[self.path])
        elif self.path.startswith("/vendor/"):
            self.path = self.path.removeprefix("/vendor")
            super().do_GET()
        else:
            self.send_error(404)

    def _send_page(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output to failures


@pytest.fixture(scope="module")
def harness_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(HarnessHandler, directory=VENDOR))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_vendored_scripts_load_run_and_draw(page: Page, harness_url: str):
    errors, requests = [], []
    page.on("pageerror", lambda error: errors.append(error.message))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(harness_url + "/")

    assert page.evaluate("typeof window.htmx") == "object"
    assert page.evaluate("typeof window.Chart") == "function"
    page.click("#load")
    assert page.locator("#swapped").text_content() == "swapped by htmx"

    heights = page.evaluate(DRAW_BAR_CHART)
    assert heights[1] > heights[0] > heights[2] > 0
    path = screenshot(page, "browser-harness-bar-chart")

    assert path.read_bytes().startswith(b"\x89PNG")
    assert errors == []
    assert all(url.startswith(harness_url) for url in requests), requests
