"""The one rule for state-changing requests: JSON, a header a cross-site form cannot send, or the session's token."""
import re

import pytest

from bad_input import FORM
from unitstack import USER_PASSWORD

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
REFUSED = ("refused as a possible cross-site request: send Content-Type: application/json,"
           " an X-Requested-With header, or the page's CSRF token")
STALE = "the CSRF token does not match this session; reload the page"


def page_token(client, path="/checkout"):
    """Return the CSRF token a page served to CLIENT carries."""
    page = client.get(path, headers=BROWSER).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]*)">', page).group(1)


# What another site can make a logged-in browser send: a form (its three
# types), or a fetch() without custom headers (no Content-Type at all).
@pytest.mark.parametrize("method,path,headers,data", [
    pytest.param("POST", "/orders", FORM, b"", id="checkout-form-encoded"),
    pytest.param("POST", "/orders", {"Content-Type": "text/plain"}, b"{}", id="checkout-text-plain"),
    pytest.param("POST", "/orders", {"Content-Type": "multipart/form-data; boundary=x"}, b"--x--\r\n",
                 id="checkout-multipart"),
    pytest.param("POST", "/orders", {}, None, id="checkout-no-content-type"),
    pytest.param("POST", "/logout", FORM, b"", id="logout-form-encoded"),
    pytest.param("DELETE", "/cart/items/1", {}, None, id="remove-item-no-content-type"),
    pytest.param("POST", "/cart/items", FORM, b"product_id=1&qty=1", id="add-item-form-encoded"),
])
def test_a_cross_site_request_is_refused_and_changes_nothing(shopper, db, method, path, headers, data):
    before = db.snapshot()
    r = shopper.open(path, method=method, headers=headers, data=data)
    assert r.status_code == 403 and r.get_json() == {"error": REFUSED}
    assert db.snapshot() == before
    assert shopper.get("/cart").get_json()["items"][0]["qty"] == 2  # still logged in, cart intact


def test_an_admin_update_from_a_cross_site_form_is_refused(auth, db):
    admin = auth.admin()
    before = db.snapshot()
    r = admin.put("/products/1", headers=FORM, data=b"name=Hacked")
    assert r.status_code == 403 and r.get_json() == {"error": REFUSED}
    assert db.snapshot() == before


@pytest.mark.parametrize("headers", [
    pytest.param({"Content-Type": "application/json"}, id="json-without-a-body"),
    pytest.param({"Idempotency-Key": "chaos-1"}, id="idempotency-key-only"),
    pytest.param({"X-Requested-With": "XMLHttpRequest"}, id="x-requested-with"),
])
def test_checkout_works_with_what_a_cross_site_form_cannot_send(shopper, db, headers):
    r = shopper.post("/orders", headers=headers)
    assert r.status_code == 201
    assert db.value("SELECT COUNT(*) FROM orders") == 1


def test_logout_without_a_body_works_with_a_header_a_form_cannot_send(shopper, db):
    r = shopper.post("/logout", headers={"X-Requested-With": "XMLHttpRequest"})
    assert r.status_code == 200
    assert db.value("SELECT COUNT(*) FROM sessions") == 0


@pytest.mark.parametrize("path", ["/", "/products", "/cart", "/checkout", "/login"])
def test_every_page_carries_a_token_of_its_session(shopper, path):
    token = page_token(shopper, path)
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert token == page_token(shopper, "/checkout")


def test_the_token_differs_per_session_and_changes_at_login(auth):
    alice, bob = auth.user("alice"), auth.user("bob")
    before = page_token(alice)
    assert before != page_token(bob)
    alice.post("/login", json={"username": "alice", "password": USER_PASSWORD})
    assert page_token(alice) not in ("", before)


def test_a_page_without_a_session_has_no_token(client, db):
    assert page_token(client, "/login") == ""
    assert db.value("SELECT COUNT(*) FROM sessions") == 0


@pytest.mark.parametrize("send", [
    pytest.param(lambda c, t: c.post("/orders", headers=FORM, data={"csrf_token": t}), id="form-field"),
    pytest.param(lambda c, t: c.post("/orders", headers={"X-CSRF-Token": t}), id="header"),
])
def test_the_pages_token_lets_its_own_form_post(shopper, db, send):
    r = send(shopper, page_token(shopper))
    assert r.status_code == 201
    assert db.value("SELECT COUNT(*) FROM orders") == 1


def refused_as_stale(client, token):
    """Send TOKEN three ways (header with a form, header with JSON, form field); assert each is a 403."""
    for kw in ({"headers": {**FORM, "X-CSRF-Token": token}},
               {"headers": {"Content-Type": "application/json", "X-CSRF-Token": token}},
               {"headers": FORM, "data": {"csrf_token": token}}):
        for path in ("/orders", "/logout"):
            r = client.post(path, **kw)
            assert r.status_code == 403 and r.get_json() == {"error": STALE}, (path, kw)


def test_another_sessions_token_is_refused(auth, shopper, db):
    token = page_token(auth.user("bob"))
    before = db.snapshot()
    refused_as_stale(shopper, token)
    assert db.snapshot() == before


@pytest.mark.parametrize("token", [
    pytest.param("0" * 64, id="made-up"),
    pytest.param("", id="empty"),
    pytest.param("\u00e9t\u00e9", id="not-ascii"),
])
def test_a_made_up_token_is_refused_even_with_json(shopper, db, token):
    before = db.snapshot()
    refused_as_stale(shopper, token)
    assert db.snapshot() == before


def test_a_token_from_a_logged_out_session_is_refused(shopper, db):
    token = page_token(shopper)
    assert shopper.post("/logout", headers={"X-CSRF-Token": token}).status_code == 200
    before = db.snapshot()
    r = shopper.post("/orders", headers={"X-CSRF-Token": token})
    assert r.status_code == 403 and r.get_json() == {"error": STALE}
    assert db.snapshot() == before


def test_an_unknown_route_is_still_a_404_not_a_403(client):
    assert client.post("/nowhere", headers=FORM).status_code == 404
    assert client.post("/products", headers=FORM).status_code == 405
