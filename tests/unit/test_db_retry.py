"""db.run: a transaction that certainly did not commit runs again within the retry window; nothing else does.

The break is real: another session KILLs the transaction's connection on
the real MariaDB server, as a fence does, and as a db LB that lost the VIP
does by resetting it.
"""
import threading
import time

import pytest

from labapp import db as labdb


def _kill(db, conn):
    """Kill CONN's session from another connection (the app's user may kill its own sessions)."""
    db.rows("KILL %s", (conn.thread_id(),))


def _session_row(cur, sid):
    cur.execute("INSERT INTO sessions (id, data, expires_at) VALUES (%s, '{}', NOW(6) + INTERVAL 60 SECOND)",
                (sid,))


def test_a_connection_broken_before_the_commit_runs_the_transaction_again(app, db):
    runs = []

    def body(cur):
        runs.append(cur.connection.thread_id())
        _session_row(cur, "retry-me")
        if len(runs) == 1:
            _kill(db, cur.connection)
            cur.execute("SELECT 1")   # the broken connection fails here, before COMMIT
        return len(runs)

    with app.app_context():
        assert labdb.run(body) == 2
    assert len(runs) == 2 and runs[0] != runs[1], "the second run must use a new connection"
    # The first run's uncommitted row died with its session: exactly one row.
    assert db.value("SELECT COUNT(*) FROM sessions WHERE id = 'retry-me'") == 1


def test_a_connection_that_keeps_breaking_gives_up_with_database_unavailable_after_the_window(make_app, db):
    app = make_app(DB_RETRY_WINDOW_S=0.5)
    runs = []

    def body(cur):
        runs.append(1)
        _session_row(cur, f"never-{len(runs)}")
        _kill(db, cur.connection)
        cur.execute("SELECT 1")

    started = time.monotonic()
    with app.app_context(), pytest.raises(labdb.DatabaseUnavailable) as caught:
        labdb.run(body)
    took = time.monotonic() - started
    assert len(runs) >= 3, "retried within the window (at once, then with a pause)"
    assert 0.3 <= took < 1.5, f"gave up after {took:.2f} s, not at the end of the 0.5 s window"
    assert not caught.value.in_doubt, "no COMMIT was sent: certainly not applied"
    assert db.value("SELECT COUNT(*) FROM sessions WHERE id LIKE 'never-%'") == 0


@pytest.fixture
def fenced(stack):
    """Turn the write database read-only, as a fence does; the test may lift it; always lifted after."""
    primary = stack["primary"]
    primary.admin_sql("SET GLOBAL read_only = 1")
    yield primary
    primary.admin_sql("SET GLOBAL read_only = 0")


def test_a_write_refused_by_a_fenced_writer_runs_again_until_it_takes_writes(app, db, fenced):
    """A fence that lasts a moment (a lease renewal late while etcd elects a leader) costs latency, not an error."""
    runs = []
    lift = threading.Timer(0.3, fenced.admin_sql, ["SET GLOBAL read_only = 0"])

    def body(cur):
        runs.append(1)
        _session_row(cur, "after-the-fence")

    lift.start()
    try:
        with app.app_context():
            labdb.run(body)
    finally:
        lift.cancel()
        lift.join()
    assert len(runs) >= 2, "the first try met the read-only server"
    assert db.value("SELECT COUNT(*) FROM sessions WHERE id = 'after-the-fence'") == 1


def test_a_writer_fenced_past_the_window_answers_503_applied_false_and_changes_nothing(make_app, db, fenced):
    app = make_app(DB_RETRY_WINDOW_S=0.4)
    before = db.snapshot()
    started = time.monotonic()
    response = app.test_client().post("/register", json={"username": "fenced", "password": "correct horse battery"})
    took = time.monotonic() - started
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["applied"] is False, "the server refused the write: certainly not applied"
    assert response.headers["Retry-After"]
    assert 0.3 <= took < 3, f"answered after {took:.2f} s (window 0.4 s)"
    assert db.snapshot() == before


def test_a_break_at_the_commit_is_in_doubt_and_never_retried(app, db):
    runs = []

    def body(cur):
        runs.append(1)
        _session_row(cur, "in-doubt")
        _kill(db, cur.connection)   # the COMMIT that follows meets the broken connection

    with app.app_context(), pytest.raises(labdb.DatabaseUnavailable, match="during the commit") as caught:
        labdb.run(body)
    assert len(runs) == 1
    assert caught.value.in_doubt


def test_a_timeout_is_not_retried(make_app):
    app = make_app(DB_IO_TIMEOUT_S=0.5)
    runs = []

    def body(cur):
        runs.append(1)
        cur.execute("SELECT SLEEP(2)")

    with app.app_context(), pytest.raises(labdb.DatabaseUnavailable) as caught:
        labdb.run(body)
    assert len(runs) == 1, "a slow server is not asked twice"
    assert not caught.value.in_doubt, "the COMMIT was never sent"


def test_an_error_the_server_answered_is_not_retried(app, db):
    runs = []

    def body(cur):
        runs.append(1)
        cur.execute("SELECT * FROM no_such_table")

    with app.app_context(), pytest.raises(Exception) as caught:
        labdb.run(body)
    assert not isinstance(caught.value, labdb.DatabaseUnavailable)
    assert len(runs) == 1


def test_a_request_that_committed_a_change_is_in_doubt_when_a_later_transaction_fails(app, db):
    """What the 503 says (applied: false or null) covers the whole request, not its last transaction."""
    with app.test_request_context():
        labdb.run(lambda cur: cur.execute("SELECT 1"), read_only=True)
        assert not labdb.request_in_doubt(labdb.DatabaseUnavailable("later"))
        labdb.run(lambda cur: _session_row(cur, "changed"))
        assert labdb.request_in_doubt(labdb.DatabaseUnavailable("later"))
