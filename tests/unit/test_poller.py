"""The availability poller (labctl.poller), against a stand-in site on loopback: no lab needed.

It is what `make failover-times`, `make bench` and the console measure
with, so its arithmetic is checked here: when the site came back after a
fault, how many requests failed, which node answered, and that a sticky
poller keeps its cookie like a browser.
"""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labctl import poller, progress


class Site(BaseHTTPRequestHandler):
    """200 from node "a" (or "b" once switched), 503 while down; echoes whether a cookie came back."""

    state = {"down": False, "node": "a"}

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        code = 503 if self.state["down"] else 200
        self.state.setdefault("cookies", []).append("jar=1" in self.headers.get("Cookie", ""))
        self.send_response(code)
        self.send_header("X-Served-By", self.state["node"])
        self.send_header("Set-Cookie", "jar=1")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def site(monkeypatch):
    Site.state = {"down": False, "node": "a"}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setattr(poller, "URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    yield Site.state
    httpd.shutdown()


def test_the_poller_times_an_outage_and_counts_its_failures(site):
    with poller.Poller([("page", "/")], interval_s=0.01) as p:
        time.sleep(0.2)
        site["down"] = True
        down_at = time.time()
        time.sleep(0.3)
        site.update(down=False, node="b")
        back = p.first_ok_after(down_at, timeout_s=5)
        failed = p.failures_after(down_at)
    assert 0.25 <= back <= 1.0, back
    assert failed >= 5, failed
    assert all(s["status"] == 503 and not s["ok"] for s in p.since(down_at) if not s["ok"])
    assert {s["node"] for s in p.since(down_at + back) if s["ok"]} == {"b"}


def test_first_ok_after_can_require_another_node(site):
    with poller.Poller([("page", "/")], interval_s=0.01) as p:
        start = time.time()
        time.sleep(0.2)
        site["node"] = "b"
        switched = time.time() - start
        back = p.first_ok_after(start, unless_served_by="a", timeout_s=5)
    assert back >= switched - 0.05


def test_a_sticky_poller_keeps_its_cookie_and_takes_its_paths_in_turn(site):
    with poller.Poller([("read", "/r"), ("write", "/w")], interval_s=0.01, sticky=True) as p:
        time.sleep(0.3)
    samples = p.since(0)
    assert [s["kind"] for s in samples[:4]] == ["read", "write", "read", "write"]
    assert len(samples) >= 4 and all(s["ok"] for s in samples)
    assert site["cookies"][0] is False and all(site["cookies"][1:]), "every request after the first sends the cookie"


def test_a_new_visitor_poller_sends_no_cookie(site):
    with poller.Poller([("page", "/")], interval_s=0.01) as p:
        time.sleep(0.1)
    assert p.since(0) and not any(site["cookies"])


def test_an_unreachable_site_is_a_failure_not_a_crash(monkeypatch):
    monkeypatch.setattr(poller, "URL", "http://127.0.0.1:9")  # discard port: nothing listens
    with poller.Poller([("page", "/")], interval_s=0.01, timeout_s=0.5) as p:
        time.sleep(0.2)
    samples = p.since(0)
    assert samples and not any(s["ok"] for s in samples)
    assert samples[0]["status"] == "ConnectionError"
    with pytest.raises(progress.Timeout):
        p.first_ok_after(0, timeout_s=0.3)
