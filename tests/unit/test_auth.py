"""Register, log in, log out, and the server-side session behind them."""
import concurrent.futures
import threading

import pytest

from unitstack import USER_PASSWORD


def session_id(client):
    """Return the session id in CLIENT's cookie jar, or None."""
    cookie = client.get_cookie("lab_session")
    return cookie.value if cookie else None


def test_register_creates_a_user_with_a_hashed_password(client, db):
    r = client.post("/register", json={"username": "alice", "password": USER_PASSWORD})
    assert r.status_code == 201 and r.get_json() == {"username": "alice"}
    stored = db.value("SELECT password_hash FROM users WHERE username = 'alice'")
    assert stored.startswith("scrypt:") and USER_PASSWORD not in stored


def test_register_twice_is_a_conflict(client):
    creds = {"username": "alice", "password": USER_PASSWORD}
    assert client.post("/register", json=creds).status_code == 201
    r = client.post("/register", json=creds)
    assert r.status_code == 409 and "taken" in r.get_json()["error"]


def test_login_sets_an_opaque_httponly_lax_cookie_for_a_session_row(auth, db):
    c = auth.user("alice")
    sid = session_id(c)
    assert len(sid) >= 22 and "alice" not in sid  # >= 128 random bits, base64
    header = next(h for h in c.post("/login", json={"username": "alice", "password": USER_PASSWORD})
                  .headers.getlist("Set-Cookie") if h.startswith("lab_session="))
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    assert db.value("SELECT COUNT(*) FROM sessions WHERE id = %s", (session_id(c),)) == 1


def test_cookie_is_secure_when_the_lb_says_https(client):
    client.post("/register", json={"username": "alice", "password": USER_PASSWORD})
    r = client.post("/login", json={"username": "alice", "password": USER_PASSWORD},
                    headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in r.headers["Set-Cookie"]


def test_login_replaces_the_anonymous_session(client, db):
    client.get("/")
    anonymous = session_id(client)
    client.post("/register", json={"username": "alice", "password": USER_PASSWORD})
    assert client.post("/login", json={"username": "alice", "password": USER_PASSWORD}).status_code == 200
    assert session_id(client) != anonymous
    assert db.value("SELECT COUNT(*) FROM sessions WHERE id = %s", (anonymous,)) == 0


@pytest.mark.parametrize("username,password", [
    pytest.param("alice", "wrong password", id="wrong-password"),
    pytest.param("nobody", USER_PASSWORD, id="unknown-user"),
])
def test_wrong_credentials_are_401_and_start_no_session(auth, app, db, username, password):
    auth.user("alice")
    sessions_before = db.value("SELECT COUNT(*) FROM sessions")
    c = app.test_client()
    r = c.post("/login", json={"username": username, "password": password})
    assert r.status_code == 401 and r.get_json() == {"error": "wrong username or password"}
    assert session_id(c) is None
    assert db.value("SELECT COUNT(*) FROM sessions") == sessions_before


def test_admin_logs_in_with_the_generated_secret(auth):
    r = auth.admin().get("/cart")
    assert r.status_code == 200


def test_logout_deletes_the_session_row(auth, db):
    c = auth.user("alice")
    sid = session_id(c)
    r = c.post("/logout", content_type="application/json")
    assert r.status_code == 200
    assert db.value("SELECT COUNT(*) FROM sessions WHERE id = %s", (sid,)) == 0
    assert c.get("/cart").status_code == 401


def test_a_stolen_cookie_is_useless_after_logout(auth, app):
    c = auth.user("alice")
    sid = session_id(c)
    c.post("/logout", content_type="application/json")
    thief = app.test_client()
    thief.set_cookie("lab_session", sid)
    assert thief.get("/cart").status_code == 401


def test_visits_count_in_mysql_atomically_under_concurrency(app, client):
    assert client.get("/").get_json()["visits"] == 1
    sid = session_id(client)

    def visit(_):
        c = app.test_client()
        c.set_cookie("lab_session", sid)
        r = c.get("/")
        assert r.status_code == 200
        return r.get_json()["visits"]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        seen = list(pool.map(visit, range(24)))
    # Every concurrent visit counted once: no lost update, no duplicate.
    assert sorted(seen) == list(range(2, 26))
    assert client.get("/").get_json()["visits"] == 26


def test_an_expired_session_is_anonymous_and_is_cleaned_up(auth, make_app, db):
    c = auth.user("alice")
    assert c.post("/cart/items", json={"product_id": 1, "qty": 1}).status_code == 200
    sid = session_id(c)
    db.rows("UPDATE sessions SET expires_at = NOW(6) - INTERVAL 1 SECOND WHERE id = %s", (sid,))
    assert c.get("/cart").status_code == 401
    # The next session write on any request deletes expired rows.
    purging = make_app(SESSION_PURGE_PROBABILITY=1.0)
    assert purging.test_client().get("/").status_code == 200
    assert db.value("SELECT COUNT(*) FROM sessions WHERE id = %s", (sid,)) == 0
    assert db.value("SELECT COUNT(*) FROM sessions") == 1  # the visit's own


def test_an_expired_session_id_is_not_revived(auth, db):
    c = auth.user("alice")
    sid = session_id(c)
    db.rows("UPDATE sessions SET expires_at = NOW(6) - INTERVAL 1 SECOND WHERE id = %s", (sid,))
    r = c.get("/")
    assert r.status_code == 200 and r.get_json()["visits"] == 1
    assert session_id(c) != sid


def test_password_hashes_wait_for_a_turn_and_a_request_that_gets_none_is_a_clear_503(make_app, db):
    """Each process hashes HASHES_AT_ONCE passwords at a time (a hash takes 32 MB); a sign-up that finds
    no turn within HASH_WAIT_S gets 503 with Retry-After, and no user is created."""
    from labapp import auth as auth_module
    app = make_app(HASHES_AT_ONCE=1, HASH_WAIT_S=0.2)
    with app.app_context(), auth_module._hash_turn():     # another request is hashing
        r = app.test_client().post("/register", json={"username": "carol", "password": USER_PASSWORD})
    assert r.status_code == 503 and r.headers["Retry-After"] == "2" and "retry" in r.get_json()["error"]
    assert db.value("SELECT COUNT(*) FROM users WHERE username = 'carol'") == 0
    # Its turn come, the same sign-up goes through.
    r = app.test_client().post("/register", json={"username": "carol", "password": USER_PASSWORD})
    assert r.status_code == 201


def test_concurrent_sign_ups_all_succeed_two_hashes_at_a_time(make_app, monkeypatch):
    from labapp import auth as auth_module
    app = make_app(HASHES_AT_ONCE=2, HASH_WAIT_S=30)
    lock, running, most = threading.Lock(), [0], [0]
    real = auth_module.generate_password_hash

    def counted(password):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return real(password)
        finally:
            with lock:
                running[0] -= 1
    monkeypatch.setattr(auth_module, "generate_password_hash", counted)

    def sign_up(i):
        return app.test_client().post("/register", json={"username": f"u{i}x", "password": USER_PASSWORD}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(sign_up, range(8))) == [201] * 8
    assert most[0] <= 2, f"{most[0]} hashes ran at once"
