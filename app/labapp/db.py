"""Connections to MariaDB through the db load balancers' write and read ports.

Connections are pooled per worker thread and per path: a request borrows
its thread's connection (checked with a ping first, so a connection that a
failover or an idle timeout closed is replaced before a query is sent on
it) instead of opening one. A new MySQL connection per request cost a
TCP and MySQL handshake through HAProxy on every page, and under load the
connection churn was what overwhelmed the db LBs' checks.
"""
import contextlib
import itertools
import threading
import time

import pymysql
from flask import current_app, g

from . import metrics


class DatabaseUnavailable(Exception):
    """The database could not be reached or did not answer in time.

    IN_DOUBT: the connection broke while COMMIT was under way, so the
    transaction may have committed. Otherwise it certainly did not.
    """

    def __init__(self, message, in_doubt=False):
        super().__init__(message)
        self.in_doubt = in_doubt


def request_in_doubt(exc):
    """Tell whether the request that met EXC may have changed anything: the failed transaction was
    committing, or an earlier transaction of the same request committed a change."""
    return exc.in_doubt or bool(g.get("lab_db_changed"))


# Errors that mean "the path to the database is broken", as opposed to a
# bug in a query: the caller answers 503 and the client may retry.
_UNAVAILABLE = (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError)
IntegrityError = pymysql.err.IntegrityError

_PATHS = {"write": ("db_writer", "DB_WRITE_HOST", "DB_WRITE_PORT"),
          "read": ("db_reader", "DB_READ_HOST", "DB_READ_PORT")}


def _connect(path, timeout_s=None):
    """A new connection to PATH; TIMEOUT_S (connect, read and write) instead of the configured ones."""
    cfg = current_app.config
    _, host_key, port_key = _PATHS[path]
    host, port = cfg[host_key], cfg[port_key]
    try:
        return pymysql.connect(
            host=host, port=port, user=cfg["DB_USER"], password=cfg["DB_PASSWORD"],
            database=cfg["DB_NAME"], charset="utf8mb4", autocommit=False,
            connect_timeout=timeout_s or cfg["DB_CONNECT_TIMEOUT_S"],
            read_timeout=timeout_s or cfg["DB_IO_TIMEOUT_S"], write_timeout=timeout_s or cfg["DB_IO_TIMEOUT_S"],
            cursorclass=pymysql.cursors.DictCursor,
            # The db network is internal and its servers offer no TLS.
            # Without this, pymysql 1.2 builds a TLS context (loading the
            # system CA store, about 25 ms) on every connect, only to fall
            # back to plain TCP: that was most of a cache miss's latency.
            ssl_disabled=True,
        )
    except _UNAVAILABLE as exc:
        metrics.db_error(path)
        raise DatabaseUnavailable(f"cannot connect to the {path} path {host}:{port}: {exc}") from exc


def _pool():
    """Return this app's per-thread pool: {path: (connection, opened at)}."""
    app = current_app._get_current_object()
    local = app.extensions.setdefault("lab_db_pool", threading.local())
    if not hasattr(local, "conns"):
        local.conns = {}
    return local.conns


def _checkout(path):
    """Return this thread's live connection to PATH, replacing a dead or old one."""
    pool = _pool()
    conn, opened = pool.pop(path, (None, 0.0))
    if conn is not None and time.monotonic() - opened > current_app.config["DB_POOL_MAX_AGE_S"]:
        # Now and then start afresh, so the read port's balancing and a
        # recovered replica see the connections again.
        _close(conn)
        conn = None
    if conn is not None:
        try:
            conn.ping(reconnect=False)
        except (pymysql.err.Error, OSError):  # closed, killed by a fence, reset by the LB
            _close(conn)
            conn = None
    if conn is None:
        conn, opened = _connect(path), time.monotonic()
    pool[path] = (conn, opened)
    return conn


def _close(conn):
    with contextlib.suppress(Exception):
        conn.close()


def _conn(path):
    name = _PATHS[path][0]
    if name not in g:
        setattr(g, name, _checkout(path))
    return getattr(g, name)


def writer():
    """Return this request's connection to the write port (opened on first use)."""
    return _conn("write")


def reader():
    """Return this request's connection to the read port (opened on first use)."""
    return _conn("read")


def _drop(path):
    """Close PATH's connection after a failure, so the next request opens a new one."""
    conn = g.pop(_PATHS[path][0], None)
    if conn is not None:
        _pool().pop(path, None)
        _close(conn)


# pymysql's "server has gone away" and "lost connection during query".
_CR_SERVER_GONE, _CR_SERVER_LOST = 2006, 2013
# MariaDB's "running with the --read-only option": the writer was fenced
# (its lease lapsed, or a failover or switchover is under way).
_ER_READ_ONLY = 1290


def _broken(exc):
    """True if EXC says the connection broke (reset, closed), not that the server was slow or refused."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    if isinstance(exc, pymysql.err.OperationalError):
        return bool(exc.args) and exc.args[0] in (_CR_SERVER_GONE, _CR_SERVER_LOST) \
            and not isinstance(exc.__context__, TimeoutError)
    return isinstance(exc, ConnectionError)


def _refused_read_only(exc):
    """True if the server refused a write because it is read-only (nothing of it was done)."""
    return isinstance(exc, pymysql.err.OperationalError) and bool(exc.args) and exc.args[0] == _ER_READ_ONLY


def run(body, path="write", read_only=False):
    """Run BODY(cursor) in one transaction on PATH, commit, and return what it returned.

    BODY runs again, from the start and on a new connection, while the
    transaction certainly did not commit and the retry window
    (DB_RETRY_WINDOW_S, 1 s) lasts: the connection broke before COMMIT was
    sent (a db LB that lost the VIP resets it; a fence kills it: the server
    rolls the transaction back when the session dies), no connection could
    be made (no writer is up behind the write port), or the server refused
    the write because it is read-only (the writer was fenced). The first
    retry is at once, the next after 50, 100, 200 ms... So a db LB's VIP
    move, a fence that lasts a moment and the end of a failover cost users
    latency, not an error (as vtgate buffers queries during a Vitess
    failover). A break during COMMIT leaves the outcome in doubt and is
    never retried; nor is a timeout (a slow server is not asked twice) or
    any other error the server answered. BODY may run several times, so it
    reads what it changes inside the transaction and has no effect outside
    it. READ_ONLY says BODY changes nothing (see request_in_doubt).
    """
    window_ends = time.monotonic() + current_app.config["DB_RETRY_WINDOW_S"]
    pause = 0.0
    for attempt in itertools.count(1):
        try:
            return _attempt(body, path, read_only)
        except _Retryable as exc:
            left = window_ends - time.monotonic()
            if left <= pause:
                raise DatabaseUnavailable(f"{path} path: {exc.cause}") from exc.cause
            current_app.logger.warning("%s path: %s; running the transaction again (attempt %d)",
                                       path, exc.cause, attempt + 1)
            time.sleep(pause)
            pause = min(0.2, max(0.05, pause * 2))


class _Retryable(Exception):
    """The transaction certainly did not commit, and may be run again."""

    def __init__(self, cause):
        super().__init__(str(cause))
        self.cause = cause


def _attempt(body, path, read_only):
    try:
        conn = _conn(path)
    except DatabaseUnavailable as exc:   # nothing was sent
        raise _Retryable(exc) from exc
    try:
        with conn.cursor() as cur:
            result = body(cur)
    except _UNAVAILABLE as exc:
        metrics.db_error(path)
        _drop(path)    # after a refusal too: the next connection may reach the new writer
        if _broken(exc) or _refused_read_only(exc):
            raise _Retryable(exc) from exc
        raise DatabaseUnavailable(f"{path} path: {exc}") from exc
    except BaseException:
        with contextlib.suppress(Exception):
            conn.rollback()
        raise
    try:
        conn.commit()
    except _UNAVAILABLE as exc:   # in doubt: it may have committed
        metrics.db_error(path)
        _drop(path)
        raise DatabaseUnavailable(f"{path} path, during the commit: {exc}", in_doubt=True) from exc
    if not read_only:
        g.lab_db_changed = True
    return result


def query(sql, args=None, *, path="write", fetch="all"):
    """Execute one statement in its own transaction on PATH; return rows, one row, or rowcount."""
    def statement(cur):
        cur.execute(sql, args)
        if fetch == "all":
            return cur.fetchall()
        if fetch == "one":
            return cur.fetchone()
        return cur.rowcount
    return run(statement, path, read_only=sql.lstrip()[:6].upper() == "SELECT")


def read(sql, args=None, *, fetch="all"):
    """Run a catalogue read on the read port; retry once on the write port if that fails.

    The read port already falls back to the masters inside HAProxy, but a
    broken read listener or dblb would still fail the read: the write port
    is a second, independent way to the same data.
    """
    try:
        return query(sql, args, path="read", fetch=fetch)
    except DatabaseUnavailable:
        current_app.logger.warning("read path failed; retrying on the write path")
        return query(sql, args, path="write", fetch=fetch)


def ping(path):
    """Return None if PATH answers SELECT 1, else the error as text."""
    try:
        query("SELECT 1", path=path, fetch="one")
        return None
    except DatabaseUnavailable as exc:
        return str(exc)


class Pinger:
    """A connection of its own to PATH, for probes: each one a round trip bounded by TIMEOUT_S.

    Not the request threads' pool, nor their timeouts: a probe must say within
    TIMEOUT_S whether the path answers, and a connection that went silent (its
    LB lost the VIP, a lossy link in the middle of a backoff) is given up and
    replaced by a new one on the next probe, instead of being waited for.
    """

    def __init__(self, path, timeout_s):
        self.path, self.timeout_s, self.conn = path, timeout_s, None

    def ping(self):
        """Return None if PATH answered (a new connection, or a COM_PING on this one), else the error as text."""
        try:
            if self.conn is None:
                self.conn = _connect(self.path, self.timeout_s)
            else:
                self.conn.ping(reconnect=False)
            return None
        except DatabaseUnavailable as exc:
            return str(exc)
        except _UNAVAILABLE as exc:
            self.close()
            return f"the {self.path} path: {exc}"

    def close(self):
        if self.conn is not None:
            _close(self.conn)
            self.conn = None


def _release(_exc=None):
    """Give the request's connections back to the thread's pool (rolled back if a transaction was left open)."""
    for path in _PATHS:
        conn = g.pop(_PATHS[path][0], None)
        if conn is not None and _exc is not None:
            with contextlib.suppress(Exception):
                conn.rollback()


def init_app(app):
    """Return the request's connections to the pool when it ends."""
    app.teardown_appcontext(_release)
