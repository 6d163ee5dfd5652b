"""Connections to MariaDB through the db load balancers' write and read ports."""
import pymysql
from flask import current_app, g


class DatabaseUnavailable(Exception):
    """The database could not be reached or did not answer in time."""


# Errors that mean "the path to the database is broken", as opposed to a
# bug in a query: the caller answers 503 and the client may retry.
_UNAVAILABLE = (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError)


def _connect(host, port):
    cfg = current_app.config
    try:
        return pymysql.connect(
            host=host, port=port, user=cfg["DB_USER"], password=cfg["DB_PASSWORD"],
            database=cfg["DB_NAME"], charset="utf8mb4", autocommit=False,
            connect_timeout=cfg["DB_CONNECT_TIMEOUT_S"],
            read_timeout=cfg["DB_IO_TIMEOUT_S"], write_timeout=cfg["DB_IO_TIMEOUT_S"],
            cursorclass=pymysql.cursors.DictCursor,
        )
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailable(f"cannot connect to {host}:{port}: {exc}") from exc


def writer():
    """Return this request's connection to the write port (opened on first use)."""
    if "db_writer" not in g:
        g.db_writer = _connect(current_app.config["DB_WRITE_HOST"], current_app.config["DB_WRITE_PORT"])
    return g.db_writer


def reader():
    """Return this request's connection to the read port (opened on first use)."""
    if "db_reader" not in g:
        g.db_reader = _connect(current_app.config["DB_READ_HOST"], current_app.config["DB_READ_PORT"])
    return g.db_reader


def run(conn, sql, args=None, *, fetch="all"):
    """Execute one statement in its own transaction; return rows, one row, or rowcount."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            result = {"all": cur.fetchall, "one": cur.fetchone}.get(fetch, lambda: cur.rowcount)()
        conn.commit()
        return result
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailable(str(exc)) from exc


def _close(_exc=None):
    for name in ("db_writer", "db_reader"):
        conn = g.pop(name, None)
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a dead connection is closed either way
                pass


def init_app(app):
    """Close the request's connections when it ends."""
    app.teardown_appcontext(_close)
