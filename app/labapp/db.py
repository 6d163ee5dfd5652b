"""Connections to MariaDB through the db load balancers' write and read ports."""
import contextlib

import pymysql
from flask import current_app, g

from . import metrics


class DatabaseUnavailable(Exception):
    """The database could not be reached or did not answer in time."""


# Errors that mean "the path to the database is broken", as opposed to a
# bug in a query: the caller answers 503 and the client may retry.
_UNAVAILABLE = (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError)
IntegrityError = pymysql.err.IntegrityError

_PATHS = {"write": ("db_writer", "DB_WRITE_HOST", "DB_WRITE_PORT"),
          "read": ("db_reader", "DB_READ_HOST", "DB_READ_PORT")}


def _connect(path):
    cfg = current_app.config
    _, host_key, port_key = _PATHS[path]
    host, port = cfg[host_key], cfg[port_key]
    try:
        return pymysql.connect(
            host=host, port=port, user=cfg["DB_USER"], password=cfg["DB_PASSWORD"],
            database=cfg["DB_NAME"], charset="utf8mb4", autocommit=False,
            connect_timeout=cfg["DB_CONNECT_TIMEOUT_S"],
            read_timeout=cfg["DB_IO_TIMEOUT_S"], write_timeout=cfg["DB_IO_TIMEOUT_S"],
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


def _conn(path):
    name = _PATHS[path][0]
    if name not in g:
        setattr(g, name, _connect(path))
    return getattr(g, name)


def writer():
    """Return this request's connection to the write port (opened on first use)."""
    return _conn("write")


def reader():
    """Return this request's connection to the read port (opened on first use)."""
    return _conn("read")


def _drop(path):
    """Forget PATH's connection after a failure, so a retry opens a new one."""
    conn = g.pop(_PATHS[path][0], None)
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


@contextlib.contextmanager
def transaction(path="write"):
    """Yield a cursor on PATH inside one transaction: commit at the end, roll back on error."""
    conn = _conn(path)
    try:
        with conn.cursor() as cur:
            yield cur
        conn.commit()
    except _UNAVAILABLE as exc:
        metrics.db_error(path)
        _drop(path)
        raise DatabaseUnavailable(f"{path} path: {exc}") from exc
    except BaseException:
        with contextlib.suppress(Exception):
            conn.rollback()
        raise


def query(sql, args=None, *, path="write", fetch="all"):
    """Execute one statement in its own transaction on PATH; return rows, one row, or rowcount."""
    with transaction(path) as cur:
        cur.execute(sql, args)
        if fetch == "all":
            return cur.fetchall()
        if fetch == "one":
            return cur.fetchone()
        return cur.rowcount


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


def _close(_exc=None):
    for path in _PATHS:
        _drop(path)


def init_app(app):
    """Close the request's connections when it ends."""
    app.teardown_appcontext(_close)
