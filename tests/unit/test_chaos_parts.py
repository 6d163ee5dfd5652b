"""The chaos library's parts that judge before the checker does: outcomes, samples, convergence, budgets.

The workload's classification decides what counts as applied, in doubt or
not applied; the monitor turns the observer's readings into the samples
the safety checks stand on; the snapshot decides when the nodes have
converged; the budgets are what each scenario may cost. Each is tested
here against what it is told (real HTTP answers from a server on
127.0.0.1, the observer's JSON lines), and tests/unit/test_checker_mutations.py
plants bugs in them that these tests must catch.
"""
import contextlib
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labctl import settings, topology
from labctl.chaos import report, scenarios, snapshot
from labctl.chaos.checker import BUDGET_FIGURES
from labctl.chaos.monitor import SafetySampler
from labctl.chaos.workload import User, _outcome
from labctl.client import Client

FIRST, SECOND = topology.SOURCES


# ---- the workload's outcomes ----------------------------------------------------------------

@pytest.mark.parametrize("status, served_by, body, outcome", [
    (200, "web1", {"items": []}, "ok"),
    (201, "web2", {"order_id": 7}, "ok"),
    (503, None, None, "fail"),                                      # HAProxy had no server
    (503, "web1", {"error": "no writer", "applied": False}, "fail"),  # the app did nothing
    (503, "web1", {"error": "commit in doubt", "applied": None}, "indeterminate"),
    (503, "web1", {"error": "overloaded"}, "indeterminate"),        # the app did not say
    (500, "web3", None, "indeterminate"),
    (502, None, None, "indeterminate"),
    (504, None, None, "indeterminate"),
    (429, None, None, "fail"),
    (400, "web1", {"error": "bad qty"}, "fail"),
    (409, "web2", {"error": "taken"}, "fail"),
])
def test_an_answer_is_classified_by_what_it_says_was_done(status, served_by, body, outcome):
    assert _outcome(status, served_by, body) == outcome


class _Site(BaseHTTPRequestHandler):
    """/ok answers, /close reads the request and hangs up, /slow answers after 2 s."""

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if self.path == "/slow":
            time.sleep(2)
        payload = json.dumps({"items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Served-By", "web9")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(base_url, path):
    history = []
    user = User("alice", history, time.monotonic)
    user.client = Client(base_url, timeout=0.5)
    op, _ = user.call("add", "POST", path, json={"product_id": 1, "qty": 1})
    user.close()
    assert history == [op]
    return op


def test_an_answered_request_is_ok_and_names_its_server(site):
    op = _call(site, "/ok")
    assert (op.outcome, op.status, op.served_by) == ("ok", 200, "web9")


def test_a_refused_connection_is_certainly_not_applied():
    op = _call(f"http://127.0.0.1:{_free_port()}", "/ok")
    assert op.outcome == "fail", op


def test_a_connection_closed_after_the_request_was_sent_is_in_doubt(site):
    op = _call(site, "/close")
    assert op.outcome == "indeterminate", op


def test_a_request_that_times_out_is_in_doubt(site):
    op = _call(site, "/slow")
    assert (op.outcome, op.error) == ("indeterminate", "ReadTimeout"), op


# ---- the monitor's samples ------------------------------------------------------------------

def _reading(node, tick, sent, ro=0, lease_ok=True, term=3, orders=(), error=None):
    r = {"node": node, "tick": tick, "sent": sent, "recv": sent + 0.01}
    if error:
        r["error"] = error
    else:
        r.update(ro=ro, lease_ok=lease_ok, term=term, orders=list(orders))
    return json.dumps(r).encode()


@pytest.fixture
def sampler():
    s = SafetySampler(["alice"], clock=lambda: 0.0, nodes=topology.DB_NODES)
    s.offset = 1000.0        # readings' wall-clock times minus the workload's clock
    return s


def test_a_source_is_writable_only_with_read_only_off_and_a_valid_lease(sampler):
    sampler._add(_reading(FIRST, 1, 1001.0), 1)
    sampler._add(_reading(SECOND, 1, 1001.0, ro=1), 1)
    sampler._add(_reading(FIRST, 2, 1001.1, lease_ok=False), 1)
    sampler._add(_reading(SECOND, 2, 1001.1, error="timed out"), 1)
    first, second = sampler.writer_samples
    assert first == {"t": pytest.approx(1.0), "writable": [FIRST], "unreachable": [], "terms": {FIRST: 3}}
    assert second == {"t": pytest.approx(1.1), "writable": [], "unreachable": [SECOND], "terms": {}}
    assert sampler.writer_readings == [{"node": FIRST, "term": 3, "t": pytest.approx(1.0), "t_end": pytest.approx(1.01)}]


def test_two_writable_sources_in_one_tick_are_both_seen(sampler):
    sampler._add(_reading(FIRST, 5, 1002.0, term=3), 1)
    sampler._add(_reading(SECOND, 5, 1002.0, term=4), 1)
    [tick] = sampler.writer_samples
    assert tick["writable"] == sorted([FIRST, SECOND]) and tick["terms"] == {FIRST: 3, SECOND: 4}


def test_ticks_of_different_observers_are_not_merged(sampler):
    """After a suspension a new observer counts its ticks from 1 again: its tick 1 is another moment."""
    sampler._add(_reading(FIRST, 1, 1001.0), 1)
    sampler._add(_reading(SECOND, 1, 1050.0), 2)
    assert [s["writable"] for s in sampler.writer_samples] == [[FIRST], [SECOND]]


def test_orders_are_sampled_from_the_sources_with_their_writability(sampler):
    sampler._add(_reading(FIRST, 1, 1001.0, orders=[11, 12]), 1)
    sampler._add(_reading(SECOND, 1, 1001.0, ro=1, orders=[11]), 1)
    [replica] = topology.REPLICAS
    sampler._add(_reading(replica, 1, 1001.0, ro=1, orders=[11, 12, 13]), 1)
    assert sorted(sampler.order_samples, key=lambda s: s["node"]) == sorted([
        {"t": pytest.approx(1.0), "node": FIRST, "writable": True, "orders": {11, 12}},
        {"t": pytest.approx(1.0), "node": SECOND, "writable": False, "orders": {11}}], key=lambda s: s["node"])


def test_counts_separate_answered_from_failed_readings_per_second_observed(sampler):
    for tick in range(1, 21):
        sampler._add(_reading(FIRST, tick, 1000.0 + tick / 10), 1)
        sampler._add(_reading(SECOND, tick, 1000.0 + tick / 10, error="lost" if tick % 2 else None), 1)
    sampler._add(b"not json: the observer's own complaint", 1)
    sampler.observed_s = 2.0
    counts = sampler.counts()
    assert counts[FIRST] == {"answered": 20, "failed": 0, "per_s": 10.0}
    assert counts[SECOND] == {"answered": 10, "failed": 10, "per_s": 5.0}
    assert all(counts[n]["answered"] == 0 for n in topology.REPLICAS)


# ---- the snapshot's convergence -------------------------------------------------------------

@pytest.mark.parametrize("have, want, holds", [
    ({1: (1, 10)}, (1, 10), True),     # the same transaction
    ({1: (1, 12)}, (1, 10), True),     # later
    ({1: (2, 12)}, (1, 10), True),     # later, after a failover changed the server
    ({1: (2, 10)}, (1, 10), False),    # another transaction under the same number
    ({1: (1, 9)}, (1, 10), False),     # behind
    ({}, (1, 10), False),              # nothing of that domain
])
def test_a_node_holds_a_position_only_with_that_transaction_or_a_later_one(have, want, holds):
    assert snapshot._holds(have, 1, want) is holds


# ---- the budgets ----------------------------------------------------------------------------

def test_every_scenario_has_a_budget_the_checker_can_measure():
    for s in scenarios.SCENARIOS:
        assert s.budget and set(s.budget) <= set(BUDGET_FIGURES), (s.name, s.budget)
        assert all(v >= 0 for v in s.budget.values()), (s.name, s.budget)


def test_readme_states_each_scenario_and_its_budget_as_the_code_has_them():
    """The README's table is what a user reads before `make chaos SCENARIO=`: the same names and budgets."""
    text = (settings.ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("| scenario (`SCENARIO=`) | budget | fault |\n", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| ([a-z0-9-]+) \| ([^|]+) \| [^|]+ \|$", table, flags=re.M)
    stated = {name: budget.strip() for name, budget in rows}
    assert stated == {s.name: report.budget_label(s.budget) for s in scenarios.SCENARIOS}


# ---- the report -----------------------------------------------------------------------------

def test_a_scenario_that_could_not_run_is_reported_as_failed_beside_the_others(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "REPORT_DIR", tmp_path)
    broken = report.error_entry("kill-gateway", "kill the gateway", {"failure_span_s": 11.0},
                                "ValueError: no gateway")
    summary = report.write([broken])
    assert (summary["scenarios"], summary["passed"], summary["failed"]) == (1, 0, ["kill-gateway"])
    assert summary["failed_requests"] == 0 and summary["lost_writes"] == 0
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| kill-gateway | **NO** | span ≤ 11.0 s |" in md and "ValueError: no gateway" in md
    assert json.loads((tmp_path / "report.json").read_text())["scenarios"][0]["passed"] is False
