"""The web LBs' checks on their own port (labapp.checkport): answered beside the request threads, never behind them.

(Through the lab, a burst of sign-ups that holds every request thread marks
no node down: tests/integration/test_web_tier.py.)
"""
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from labapp import checkport


@pytest.fixture
def checks(app):
    """The app's check server on a free port; yield its base URL."""
    server = checkport.server(app, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_ready_while_the_database_answers(checks):
    status, body = get(checks + "/readyz?for=lb")
    assert status == 200 and body["ready"] is True and body["node"] == "unit"
    assert get(checks + "/healthz")[0] == 200


def test_every_request_thread_busy_is_not_a_failed_check(app, checks):
    progress = app.extensions["progress"]
    for _ in range(8):            # eight requests in hand, working
        progress.began()
    started = time.monotonic()
    status, body = get(checks + "/readyz?for=lb")
    assert status == 200 and body["ready"] is True
    assert time.monotonic() - started < 0.5, "a check must not wait for a request thread"


def test_a_stalled_worker_fails_both_checks(app, checks):
    progress = app.extensions["progress"]
    progress.began()
    progress.moved_at -= app.config["CHECK_STALL_S"] + 1   # nothing finished since
    for path in ("/readyz?for=lb", "/healthz"):
        status, body = get(checks + path)
        assert status == 503 and body["why"].startswith("stalled"), (path, body)
    progress.ended()               # one finishes: moving again
    assert get(checks + "/healthz")[0] == 200


def test_requests_are_counted_in_and_out(app, client):
    progress = app.extensions["progress"]
    assert client.get("/healthz").status_code == 200
    assert client.get("/no-such-page").status_code == 404
    assert progress.in_hand == 0 and progress.stalled_s() == 0


def test_the_database_unreachable_is_not_ready(make_app):
    app = make_app(DB_WRITE_PORT=1, DB_READ_PORT=1)
    status, body = checkport.answer(app, "/readyz?for=lb")
    assert status == 503 and body["ready"] is False
    assert checkport.answer(app, "/healthz")[0] == 200   # alive all the same


def test_any_other_path_is_a_clear_404(checks):
    status, body = get(checks + "/admin")
    assert status == 404 and "checks" in body["error"]


def test_a_check_reset_by_the_lb_logs_no_traceback(app, capsys):
    """HAProxy resets a check's connection once it has read the status: twice a second, no traceback."""
    server = checkport.server(app, 0)
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError:
            server.handle_error(None, ("127.0.0.1", 1))
        assert "Traceback" not in capsys.readouterr().err
    finally:
        server.server_close()
