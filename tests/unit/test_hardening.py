"""Hardening: a bounded /burn, a /readyz that names no internal address, validation of whole values."""
import logging
import time

import pytest

from unitstack import closed_port
from labapp import db as labdb
from labapp import views


@pytest.mark.parametrize("rounds", [
    pytest.param("%C2%B2", id="superscript-two"),
    pytest.param("%EF%BC%91", id="fullwidth-one"),
    pytest.param("%D9%A3", id="arabic-indic-three"),
    pytest.param("9" * 5000, id="thousands-of-digits"),
    pytest.param(str(views.BURN_MAX + 1), id="over-the-cap"),
    pytest.param("500000", id="the-old-cap"),
    pytest.param("0", id="zero"),
    pytest.param("-1", id="negative"),
    pytest.param("+5", id="plus-sign"),
    pytest.param("%201", id="leading-space"),
    pytest.param("1%0A", id="trailing-newline"),
    pytest.param("1e4", id="exponent"),
    pytest.param("", id="empty"),
])
def test_burn_refuses_anything_but_ascii_digits_within_the_cap(client, rounds):
    r = client.get(f"/burn?rounds={rounds}")
    assert r.status_code == 400
    assert r.get_json() == {"error": f"rounds must be a whole number from 1 to {views.BURN_MAX}"}


def test_burn_serves_the_default_and_the_cap(client):
    assert client.get("/burn").get_json()["rounds"] == 20_000
    assert client.get(f"/burn?rounds={views.BURN_MAX}").get_json()["rounds"] == views.BURN_MAX


def test_the_costliest_burn_takes_tens_of_ms_of_cpu_not_more(client):
    client.get("/burn?rounds=1")  # warm up
    start = time.thread_time()
    assert client.get(f"/burn?rounds={views.BURN_MAX}").status_code == 200
    # 100000 rounds take about 23 ms here; leave room for a slower host.
    assert time.thread_time() - start < 0.1


def test_readyz_says_what_is_down_in_plain_words_and_logs_the_detail(make_app, caplog):
    write_port, read_port, cache_port = closed_port(), closed_port(), closed_port()
    app = make_app(DB_WRITE_PORT=write_port, DB_READ_PORT=read_port,
                   MEMCACHED_SERVERS=[("127.0.0.1", cache_port)])
    with caplog.at_level(logging.WARNING):
        r = app.test_client().get("/readyz")
    assert r.status_code == 503
    assert r.get_json() == {"node": "unit", "ready": False, "write_path": "unavailable",
                            "read_path": "unavailable", "cache": {"memcached 1": "unavailable"}}
    assert str(write_port) in caplog.text and str(cache_port) in caplog.text


def test_readyz_shows_no_internal_address_when_all_is_well(client, app_config):
    body = client.get("/readyz").get_data(as_text=True)
    assert "127.0.0.1" not in body
    assert all(str(port) not in body for _, port in app_config["MEMCACHED_SERVERS"])
    assert client.get("/readyz").get_json()["cache"] == {"memcached 1": "ok", "memcached 2": "ok"}


@pytest.mark.parametrize("username", ["admin\n", "eve\n"])
def test_a_username_with_a_trailing_newline_is_refused(client, db, username):
    before = db.snapshot()
    r = client.post("/register", json={"username": username, "password": "a good password"})
    assert r.status_code == 400
    assert r.get_json() == {"error": "username may use letters, digits, '.', '_' and '-' only"}
    assert db.snapshot() == before


def test_an_idempotency_key_with_a_trailing_newline_is_refused(shopper, db):
    before = db.snapshot()
    # No HTTP client library sends a newline in a header; a WSGI server might pass one on.
    r = shopper.post("/orders", environ_overrides={"HTTP_IDEMPOTENCY_KEY": "checkout-1\n"})
    assert r.status_code == 400
    assert r.get_json() == {"error": "Idempotency-Key must be 1 to 64 letters, digits, '_' or '-'"}
    assert db.snapshot() == before


def test_a_session_cookie_with_a_trailing_newline_is_ignored(shopper, app, db, monkeypatch):
    sid = shopper.get_cookie("lab_session").value
    sent, real_query = [], labdb.query

    def spying_query(sql, args=None, **kw):
        sent.append(args or ())
        return real_query(sql, args, **kw)

    monkeypatch.setattr(labdb, "query", spying_query)
    c = app.test_client(use_cookies=False)  # a client with a cookie jar replaces the Cookie header
    # A quoted cookie may carry an octal escape: \012 is a newline.
    r = c.get("/cart", headers={"Cookie": f'lab_session="{sid}\\012"'})
    assert r.status_code == 401 and r.get_json() == {"error": "log in first"}
    assert not any(f"{sid}\n" in args for args in sent), "a malformed id reached the database"
