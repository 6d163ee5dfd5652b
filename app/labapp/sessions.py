"""Server-side sessions in MariaDB, keyed by an opaque random cookie.

The cookie holds only the session id (256 random bits); the data lives in
the `sessions` table on the write path, so any web node serves any user and
no replica lag can show a user an old session.
"""
import json
import re
import secrets

from flask import current_app, g, request

from . import db

_ID = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _cookie_id():
    """Return the request's session id, or None when absent or malformed."""
    sid = request.cookies.get(current_app.config["SESSION_COOKIE"], "")
    return sid if _ID.match(sid) else None


def current_id():
    """Return the session id for this request, making a new one if needed.

    An unknown, expired or forged id is not an error: the user simply gets
    a fresh anonymous session.
    """
    if "session_id" not in g:
        g.session_id = _cookie_id() or secrets.token_urlsafe(32)
    return g.session_id


def load():
    """Return this session's data (a dict; empty for a new session)."""
    sid = _cookie_id()
    if sid is None:
        return {}
    row = db.run(db.writer(), "SELECT data FROM sessions WHERE id = %s AND expires_at > NOW(6)",
                 (sid,), fetch="one")
    return json.loads(row["data"]) if row else {}


def increment(key):
    """Atomically add 1 to integer field KEY of this session; return the new value.

    One upsert, no SELECT-then-INSERT: two concurrent requests of one user
    on two web nodes both count. An expired row starts over.
    """
    sid = current_id()
    ttl = current_app.config["SESSION_TTL_S"]
    path = "$." + key
    conn = db.writer()
    db.run(conn,
           "INSERT INTO sessions (id, data, expires_at)"
           " VALUES (%s, JSON_OBJECT(%s, 1), NOW(6) + INTERVAL %s SECOND)"
           " ON DUPLICATE KEY UPDATE"
           "  data = IF(expires_at <= NOW(6), JSON_OBJECT(%s, 1),"
           "            JSON_SET(data, %s, COALESCE(JSON_VALUE(data, %s), 0) + 1)),"
           "  expires_at = VALUES(expires_at)",
           (sid, key, ttl, key, path, path), fetch="rowcount")
    g.session_touched = True
    row = db.run(conn, "SELECT JSON_VALUE(data, %s) AS v FROM sessions WHERE id = %s",
                 (path, sid), fetch="one")
    return int(row["v"])


def _set_cookie(response):
    if g.get("session_touched"):
        response.set_cookie(
            current_app.config["SESSION_COOKIE"], current_id(),
            max_age=current_app.config["SESSION_TTL_S"],
            httponly=True, samesite="Lax", secure=request.is_secure,
        )
    return response


def init_app(app):
    """Send the session cookie on responses that created or renewed a session."""
    app.after_request(_set_cookie)
