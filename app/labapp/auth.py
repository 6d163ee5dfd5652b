"""Users: register, log in, log out; the login_required and admin_required guards."""
import contextlib
import functools
import hmac
import re
import threading

from flask import Blueprint, abort, current_app, jsonify, render_template
from werkzeug.exceptions import ServiceUnavailable
from werkzeug.security import check_password_hash, generate_password_hash

from . import db, inputs, sessions

bp = Blueprint("auth", __name__)

USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")  # fullmatch: "$" would let "admin\n" through
PASSWORD_LEN = (8, 128)
# Checked when the user does not exist, so that a wrong username costs as
# much time as a wrong password and does not reveal which names exist.
_DUMMY_HASH = generate_password_hash("not a password")
# A password hash (scrypt) takes 32 MB while it runs: eight at once (a
# node's request threads) would be 256 MB beside the process's own ~60, past
# a web node's 256 MB. So each process hashes HASHES_AT_ONCE at a time; the
# other requests wait for a turn (up to HASH_WAIT_S, then 503 Retry-After).
@contextlib.contextmanager
def _hash_turn():
    app = current_app._get_current_object()
    turns = app.extensions.setdefault("hash_turns", threading.BoundedSemaphore(app.config["HASHES_AT_ONCE"]))
    if not turns.acquire(timeout=app.config["HASH_WAIT_S"]):
        raise ServiceUnavailable("too many sign-ups and logins at once; retry shortly", retry_after=2)
    try:
        yield
    finally:
        turns.release()


def _hash(password):
    with _hash_turn():
        return generate_password_hash(password)


def _check(stored, password):
    with _hash_turn():
        return check_password_hash(stored, password)


def _credentials():
    body = inputs.json_object(required=("username", "password"))
    username = inputs.text(body, "username", 3, 32)
    password = inputs.text(body, "password", *PASSWORD_LEN)
    return username, password


@bp.post("/register")
def register():
    """Create a user; 409 if the name is taken."""
    username, password = _credentials()
    if not USERNAME.fullmatch(username):
        abort(400, "username may use letters, digits, '.', '_' and '-' only")
    try:
        db.query("INSERT INTO users (username, password_hash) VALUES (%s, %s)",
                 (username, _hash(password)), fetch="rowcount")
    except db.IntegrityError:
        abort(409, "that username is taken")
    return jsonify(username=username), 201


@bp.get("/login")
def login_page():
    """Show the login form."""
    return render_template("login.html", user=sessions.user())


@bp.post("/login")
def login():
    """Check the credentials and start a new logged-in session."""
    username, password = _credentials()
    row = db.query("SELECT id, username, password_hash, is_admin FROM users WHERE username = %s",
                   (username,), fetch="one")
    if not _password_ok(row, password):
        abort(401, "wrong username or password")
    user = {"id": row["id"], "username": row["username"], "admin": bool(row["is_admin"])}
    sessions.login(user)
    return jsonify(user=user)


def _password_ok(row, password):
    # The admin's password is a generated deployment secret, not a row:
    # the schema is applied on every node without replication, so it
    # cannot carry a per-deployment hash, and the app may not run DDL.
    if row is not None and row["is_admin"]:
        secret = current_app.config["ADMIN_PASSWORD"]
        return bool(secret) and hmac.compare_digest(password.encode(), secret.encode())
    ok = _check(row["password_hash"] if row and row["password_hash"] else _DUMMY_HASH, password)
    return ok and row is not None


@bp.post("/logout")
def logout():
    """Delete this session server-side."""
    sessions.logout()
    return jsonify(status="logged out")


def login_required(view):
    """Answer 401 unless the session belongs to a logged-in user."""
    @functools.wraps(view)
    def guarded(*args, **kwargs):
        if sessions.user() is None:
            abort(401, "log in first")
        return view(*args, **kwargs)
    return guarded


def admin_required(view):
    """Answer 401 without a login and 403 for a user who is not the admin."""
    @functools.wraps(view)
    def guarded(*args, **kwargs):
        user = sessions.user()
        if user is None:
            abort(401, "log in first")
        if not user.get("admin"):
            abort(403, "only the admin may do this")
        return view(*args, **kwargs)
    return guarded
