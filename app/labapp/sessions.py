"""Server-side sessions in MariaDB, keyed by an opaque random cookie.

The cookie holds only the session id (256 random bits); the data lives in
the `sessions` table and is always read and written on the write path, so
any web node serves any user and no replica lag can show a user an old
session (or an old cart).
"""
import json
import random
import re
import secrets

from flask import current_app, g, request

from . import db

_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # fullmatch: "$" would let a trailing "\n" through


def _cookie_id():
    """Return the request's session id, or None when absent or malformed."""
    sid = request.cookies.get(current_app.config["SESSION_COOKIE"], "")
    return sid if _ID.fullmatch(sid) else None


def _new_id():
    return secrets.token_urlsafe(32)


def _loaded():
    """Return (id of a live session or None, its data) for this request, read once."""
    if "session" not in g:
        sid, row = _cookie_id(), None
        if sid is not None:
            row = db.query("SELECT data FROM sessions WHERE id = %s AND expires_at > NOW(6)",
                           (sid,), fetch="one")
        # An unknown, expired or forged id is not an error, and is never
        # adopted: the user simply gets a fresh anonymous session.
        g.session = (sid, json.loads(row["data"])) if row else (None, {})
    return g.session


def data():
    """Return this session's data (a dict; empty for a new session)."""
    return _loaded()[1]


def user():
    """Return the logged-in user as {"id", "username", "admin"}, or None."""
    return data().get("user")


def current_id():
    """Return the id of this request's stored session, or None before one is stored."""
    return _loaded()[0]


def short_id():
    """Return the start of the session id: enough to recognise it, too little to steal it."""
    return (current_id() or "")[:8]


def _keep(sid, values):
    g.session = (sid, values)
    g.session_cookie = "set"


def modify(change):
    """Apply CHANGE(data, cursor) to this session in one write transaction; return its result.

    The upsert comes first and locks the row until the commit, so
    concurrent requests of one session (two tabs, two web nodes) apply one
    after the other and no update is lost; there is no SELECT-then-INSERT
    race. CHANGE may run more statements on the cursor (checkout does) and
    may raise to roll everything back, the session included. CHANGE may
    run twice (db.run retries a transaction whose connection broke before
    its commit): it works on the values and cursor it is given, nothing else.
    """
    sid = _loaded()[0] or _new_id()
    ttl = current_app.config["SESSION_TTL_S"]

    def transaction(cur):   # may run twice (db.run): it reads the session afresh each time
        cur.execute("INSERT INTO sessions (id, data, expires_at)"
                    " VALUES (%s, '{}', NOW(6) + INTERVAL %s SECOND)"
                    " ON DUPLICATE KEY UPDATE"
                    "  data = IF(expires_at <= NOW(6), '{}', data),"
                    "  expires_at = VALUES(expires_at)", (sid, ttl))
        cur.execute("SELECT data FROM sessions WHERE id = %s FOR UPDATE", (sid,))
        values = json.loads(cur.fetchone()["data"])
        result = change(values, cur)
        cur.execute("UPDATE sessions SET data = %s WHERE id = %s", (json.dumps(values), sid))
        return values, result
    values, result = db.run(transaction)
    _keep(sid, values)
    _maybe_purge()
    return result


def login(user_info):
    """Start a new session for USER_INFO, replacing the current one.

    A new id at login means an id planted in a victim's browser before
    login (session fixation) is worth nothing afterwards.
    """
    old, sid = _loaded()[0], _new_id()
    values = {"user": user_info}

    def transaction(cur):
        cur.execute("INSERT INTO sessions (id, data, expires_at)"
                    " VALUES (%s, %s, NOW(6) + INTERVAL %s SECOND)",
                    (sid, json.dumps(values), current_app.config["SESSION_TTL_S"]))
        if old is not None:
            cur.execute("DELETE FROM sessions WHERE id = %s", (old,))
    db.run(transaction)
    _keep(sid, values)


def logout():
    """Delete this session server-side and tell the browser to forget the cookie."""
    sid = _cookie_id()
    if sid is not None:
        db.query("DELETE FROM sessions WHERE id = %s", (sid,), fetch="rowcount")
    g.session = (None, {})
    g.session_cookie = "delete"


def purge_expired(limit=1000):
    """Delete up to LIMIT expired sessions; return how many went."""
    return db.query("DELETE FROM sessions WHERE expires_at <= NOW(6) LIMIT %s", (limit,),
                    fetch="rowcount")


def _maybe_purge():
    if random.random() < current_app.config["SESSION_PURGE_PROBABILITY"]:
        try:
            purge_expired()
        except db.DatabaseUnavailable as exc:
            # Cleanup can wait for another request; this one succeeded.
            current_app.logger.warning("session cleanup failed: %s", exc)


def _set_cookie(response):
    action = g.get("session_cookie")
    name = current_app.config["SESSION_COOKIE"]
    if action == "set":
        response.set_cookie(name, g.session[0], max_age=current_app.config["SESSION_TTL_S"],
                            httponly=True, samesite="Lax", secure=request.is_secure)
    elif action == "delete":
        response.delete_cookie(name, httponly=True, samesite="Lax", secure=request.is_secure)
    return response


def init_app(app):
    """Send the session cookie on responses that created, renewed or ended a session."""
    app.after_request(_set_cookie)
