"""Health, readiness, metrics, failure answers and the HTML pages."""
import re
import socket
import time

import pytest

from unitstack import SilencingProxy, closed_port


def test_healthz_says_ok(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.get_json()["status"] == "ok"
    assert r.headers["X-Served-By"] == "unit"


def test_home_counts_visits_as_json_for_programs(client):
    r = client.get("/", headers={"X-Lab-LB": "lb2"})
    assert r.get_json() == {"node": "unit", "lb": "lb2", "visits": 1}
    assert client.get("/").get_json()["visits"] == 2


def test_a_visit_retried_by_the_lb_is_counted_once(client):
    # HAProxy retries a GET that timed out on another node, with the same X-Request-ID.
    assert client.get("/", headers={"X-Request-ID": "lb1-ab12"}).get_json()["visits"] == 1
    assert client.get("/", headers={"X-Request-ID": "lb1-ab12"}).get_json()["visits"] == 1
    assert client.get("/", headers={"X-Request-ID": "lb1-ab13"}).get_json()["visits"] == 2
    assert client.get("/").get_json()["visits"] == 3, "a request without an id counts as a new visit"


def test_readyz_reports_every_path(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    status = r.get_json()
    assert (status["ready"], status["write_path"], status["read_path"]) == (True, "ok", "ok")
    assert list(status["cache"].values()) == ["ok", "ok"]


def test_readyz_is_503_without_the_write_path(make_app):
    r = make_app(DB_WRITE_PORT=closed_port()).test_client().get("/readyz")
    assert r.status_code == 503 and r.get_json()["ready"] is False
    assert r.get_json()["write_path"] != "ok"


def test_readyz_stays_ready_without_the_read_path_and_cache(make_app):
    app = make_app(DB_READ_PORT=closed_port(), MEMCACHED_SERVERS=[("127.0.0.1", closed_port())])
    r = app.test_client().get("/readyz")
    assert r.status_code == 200
    assert r.get_json()["read_path"] != "ok" and list(r.get_json()["cache"].values()) != ["ok"]


@pytest.mark.parametrize("closed,status", [
    pytest.param((), 200, id="both-ports"),
    pytest.param(("DB_WRITE_PORT",), 200, id="read-port-only-during-a-writer-failover"),
    pytest.param(("DB_READ_PORT",), 200, id="write-port-only"),
    pytest.param(("DB_WRITE_PORT", "DB_READ_PORT"), 503, id="cut-off"),
])
def test_the_lbs_check_is_ready_while_either_database_port_answers(make_app, closed, status):
    r = make_app(**{port: closed_port() for port in closed}).test_client().get("/readyz?for=lb")
    assert r.status_code == status and r.get_json() == {"node": "unit", "ready": status == 200}


def test_the_lbs_check_answers_from_the_last_probe_and_gives_a_grace(make_app):
    """The process's probe runs beside the requests: a check never waits for the database."""
    app = make_app(DB_WRITE_PORT=closed_port(), DB_READ_PORT=closed_port(),
                   DB_REACH_EVERY_S=0.05, DB_REACH_GRACE_S=0.5)
    c = app.test_client()
    start = time.monotonic()
    assert c.get("/readyz?for=lb").status_code == 200, "a process just started is given the grace"
    assert time.monotonic() - start < 0.2
    deadline = time.monotonic() + 5
    while c.get("/readyz?for=lb").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert c.get("/readyz?for=lb").status_code == 503
    assert time.monotonic() - start >= 0.5, "unready before the grace ran out"
    app.extensions["db-reach"].stopping.set()


def test_a_hung_read_port_does_not_hold_back_the_write_ports_answer(make_app):
    """A replica killed under the read port's connection hangs its probe; the write port still answers."""
    with socket.socket() as hung:     # accepts connections, never says a word: a server that hangs
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        app = make_app(DB_READ_PORT=hung.getsockname()[1], DB_REACH_EVERY_S=0.05, DB_REACH_GRACE_S=0.5,
                       DB_CONNECT_TIMEOUT_S=5.0, DB_IO_TIMEOUT_S=5.0)
        c = app.test_client()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:      # three graces long
            assert c.get("/readyz?for=lb").status_code == 200
            time.sleep(0.1)
        app.extensions["db-reach"].stopping.set()


def test_probe_connections_gone_silent_do_not_make_a_node_unready(make_app, stack):
    """The db VIP moved under the probes' connections, or a lossy link stalls them: a new connection
    still gets through, so the node stays in the rotation (one connection waited on for the request
    path's 5 s timeout took the node out, and the LBs moved its users for nothing)."""
    with SilencingProxy(stack["primary"].port) as write, SilencingProxy(stack["replica"].port) as read:
        app = make_app(DB_WRITE_PORT=write.port, DB_READ_PORT=read.port, DB_REACH_EVERY_S=0.05,
                       DB_REACH_GRACE_S=0.5, DB_REACH_TIMEOUT_S=0.2, DB_CONNECT_TIMEOUT_S=5.0,
                       DB_IO_TIMEOUT_S=5.0)
        c = app.test_client()
        assert c.get("/readyz?for=lb").status_code == 200
        deadline = time.monotonic() + 2
        while min(write.accepted, read.accepted) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert min(write.accepted, read.accepted) >= 3, "the probes did not connect"
        write.silence()
        read.silence()
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:      # three graces long
            assert c.get("/readyz?for=lb").status_code == 200
            time.sleep(0.05)
        app.extensions["db-reach"].stopping.set()
    assert write.accepted > 3 and read.accepted > 3, "the silent connections were not replaced"


@pytest.mark.parametrize("method,path,body", [
    pytest.param("GET", "/", None, id="home"),
    pytest.param("POST", "/register", {"username": "alice", "password": "a good password"}, id="register"),
    pytest.param("POST", "/login", {"username": "alice", "password": "a good password"}, id="login"),
])
def test_a_dead_write_path_is_a_quick_503_with_retry_after(make_app, method, path, body):
    c = make_app(DB_WRITE_PORT=closed_port()).test_client()
    start = time.monotonic()
    r = c.open(path, method=method, json=body)
    assert time.monotonic() - start < 3
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "2" and r.headers["X-Served-By"] == "unit"
    # No database was reached: nothing was done, and the answer says so (safe to send again).
    assert r.get_json() == {"error": "the database is unavailable; retry shortly", "applied": False}


def test_a_frozen_master_is_a_bounded_503(client, stack):
    with stack["primary"].paused():
        start = time.monotonic()
        r = client.get("/")
        seconds = time.monotonic() - start
    assert r.status_code == 503 and "Retry-After" in r.headers
    assert seconds < 5  # the connect timeout (1 s in tests), not a hang


def test_metrics_count_requests_latency_cache_and_db_errors(client, make_app):
    client.get("/products/1")
    client.get("/products/1")
    make_app(DB_WRITE_PORT=closed_port()).test_client().get("/")
    text = client.get("/metrics").get_data(as_text=True)

    def value(name, **labels):
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        for line in text.splitlines():
            if line.startswith(name + "{") and all(w in line for w in wanted):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no {name} {labels} in /metrics")

    assert value("lab_http_requests_total", node="unit", route="/products/<int:product_id>",
                 method="GET", status="200") >= 2
    assert value("lab_http_request_duration_seconds_count", route="/products/<int:product_id>") >= 2
    assert value("lab_cache_requests_total", result="hit") >= 1
    assert value("lab_cache_requests_total", result="miss") >= 1
    assert value("lab_db_errors_total", path="write") >= 1
    assert re.search(r'lab_http_request_duration_seconds_bucket\{[^}]*le="\+Inf"\}', text)


def html(client, path):
    """GET PATH as a browser; return the response."""
    return client.get(path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})


def test_the_home_page_shows_node_lb_session_and_catalogue_source(client):
    r = html(client, "/")
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert "<strong>unit</strong>" in page and "1 visit(s)" in page
    assert "the database" in page
    assert "the cache (memcached)" in html(client, "/").get_data(as_text=True)


def test_the_shop_pages_render_for_a_user(auth):
    c = auth.user("alice")
    c.post("/cart/items", json={"product_id": 3, "qty": 2})
    assert "Memcached node" in html(c, "/products").get_data(as_text=True)
    assert "Memcached node" in html(c, "/cart").get_data(as_text=True)
    assert "place the order" in html(c, "/checkout").get_data(as_text=True)
    assert "<form" in html(c, "/login").get_data(as_text=True)


def test_a_browser_without_login_is_sent_to_the_login_page(client):
    r = html(client, "/cart")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")
