"""The shared fake-server base: lifecycle, recording, scripted failures, waiting."""

import subprocess
import sys
import threading
import time

import httpx
import pytest

from sandbox.server import FakeServer, Recorded, Reply, parse_request


class EchoServer(FakeServer):
    """The smallest fake: answers every request with its parsed parameters."""

    def route(self, rec: Recorded) -> Reply:
        return Reply(200, {"params": rec.params, "files": sorted(rec.files)})

    def error_reply(self, status, retry_after, body):
        return Reply(status, body or {"error": status})


@pytest.fixture
def echo():
    with EchoServer() as server:
        yield server


def test_binds_loopback_on_a_free_port_and_stops_without_lingering_threads():
    before = set(threading.enumerate())
    server = EchoServer().start()
    assert server.url.startswith("http://127.0.0.1:")
    assert not server.url.endswith(":0")
    with httpx.Client() as client:  # keep-alive connection still open when we stop
        assert client.get(server.url + "/x").status_code == 200
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
    assert set(threading.enumerate()) - before == set()
    with pytest.raises(RuntimeError):
        _ = server.url


def test_two_servers_get_different_ports():
    with EchoServer() as one, EchoServer() as two:
        assert one.url != two.url


def test_records_json_form_query_and_multipart(echo):
    with httpx.Client(base_url=echo.url) as client:
        client.post("/a?x=1", json={"k": "v"}, headers={"X-Test": "yes"})
        client.post("/b", data={"f": "g"})
        client.post("/c", data={"field": "1"}, files={"doc": ("a.txt", b"bytes")})
    a, b, c = echo.requests
    assert (a.method, a.path, a.query, a.json, a.form) == (
        "POST",
        "/a",
        {"x": "1"},
        {"k": "v"},
        None,
    )
    assert a.headers["x-test"] == "yes"
    assert a.params == {"x": "1", "k": "v"}
    assert a.at.tzinfo is not None
    assert (b.form, b.json, b.body) == ({"f": "g"}, None, b"f=g")
    assert (c.form, c.files) == ({"field": "1"}, {"doc": b"bytes"})
    assert [r.status for r in echo.requests] == [200, 200, 200]


def test_fail_next_counts_down_and_respects_match(echo):
    echo.fail_next(2, status=503, match="/flaky")
    with httpx.Client(base_url=echo.url) as client:
        assert client.get("/steady").status_code == 200
        assert [client.get("/flaky").status_code for _ in range(3)] == [503, 503, 200]
    assert [r.status for r in echo.calls("flaky")] == [503, 503, 200]


def test_fail_next_body_overrides_the_error(echo):
    echo.fail_next(status=400, body={"custom": True})
    with httpx.Client(base_url=echo.url) as client:
        assert client.get("/x").json() == {"custom": True}


def test_delay_slows_every_answer(echo):
    echo.delay = 0.2
    started = time.monotonic()
    httpx.get(echo.url + "/slow")
    assert time.monotonic() - started >= 0.2


def test_wait_for_returns_the_predicate_value_and_times_out_with_a_summary(echo):
    threading.Timer(0.1, lambda: httpx.get(echo.url + "/later")).start()
    found = echo.wait_for(lambda reqs: [r for r in reqs if r.path == "/later"], timeout=5)
    assert found[0].path == "/later"
    with pytest.raises(TimeoutError, match="GET /later -> 200"):
        echo.wait_for(lambda reqs: len(reqs) > 5, timeout=0.1)


def test_reset_forgets_requests_and_failures(echo):
    echo.fail_next(status=500)
    httpx.get(echo.url + "/one")
    echo.fail_next(status=500)
    echo.reset()
    assert echo.requests == []
    assert httpx.get(echo.url + "/two").status_code == 200


def test_a_crashing_route_answers_500_instead_of_hanging():
    class Broken(EchoServer):
        def route(self, rec):
            raise ValueError("boom")

    with Broken() as server:
        response = httpx.get(server.url + "/x")
    assert response.status_code == 500
    assert "boom" in response.json()["error"]


def test_parse_request_keeps_unparseable_json_as_raw_bytes():
    rec = parse_request("POST", "/p", {"Content-Type": "application/json"}, b"{not json")
    assert (rec.json, rec.body) == (None, b"{not json")


def test_another_process_only_needs_the_url(echo):
    code = "import sys, httpx; httpx.post(sys.argv[1] + '/from-worker', json={'n': 1})"
    subprocess.run([sys.executable, "-c", code, echo.url], check=True, timeout=30)
    assert echo.wait_for(lambda reqs: [r.json for r in reqs if r.path == "/from-worker"]) == [
        {"n": 1}
    ]
