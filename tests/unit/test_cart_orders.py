"""The cart in the session, and checkout into orders on the write path."""
import concurrent.futures
import threading

import pytest

from unitstack import USER_PASSWORD


def add(client, product_id, qty):
    """Add to CLIENT's cart; return the response."""
    return client.post("/cart/items", json={"product_id": product_id, "qty": qty})


def place_order(client):
    """Check out CLIENT's cart without a key, as a JSON client (no body) does; return the response."""
    return client.post("/orders", content_type="application/json")


@pytest.mark.parametrize("method,path", [
    pytest.param("GET", "/cart", id="get-cart"),
    pytest.param("POST", "/cart/items", id="add-item"),
    pytest.param("DELETE", "/cart/items/1", id="remove-item"),
    pytest.param("POST", "/orders", id="checkout"),
    pytest.param("GET", "/orders/1", id="get-order"),
])
def test_the_cart_and_orders_need_a_login(client, method, path):
    r = client.open(path, method=method, json={"product_id": 1, "qty": 1})
    assert r.status_code == 401 and r.get_json() == {"error": "log in first"}


def test_the_cart_adds_up_and_removes(auth):
    c = auth.user("alice")
    assert c.get("/cart").get_json() == {"items": [], "total_cents": 0}
    add(c, 1, 2)
    add(c, 3, 1)
    r = add(c, 1, 1)
    assert r.status_code == 200
    cart = r.get_json()
    assert [(i["product_id"], i["qty"]) for i in cart["items"]] == [(1, 3), (3, 1)]
    assert cart["total_cents"] == 3 * 4999 + 1999
    r = c.delete("/cart/items/1", content_type="application/json")
    assert r.status_code == 200
    assert [(i["product_id"], i["qty"]) for i in r.get_json()["items"]] == [(3, 1)]


def test_the_cart_lives_in_the_server_side_session(auth, app):
    c = auth.user("alice")
    add(c, 2, 4)
    # Another client with the same cookie (another web node, say) sees it.
    other = app.test_client()
    other.set_cookie("lab_session", c.get_cookie("lab_session").value)
    assert [(i["product_id"], i["qty"]) for i in other.get("/cart").get_json()["items"]] == [(2, 4)]


def test_checkout_writes_a_self_contained_order_and_empties_the_cart(auth, db):
    c = auth.user("alice")
    add(c, 1, 2)
    add(c, 5, 3)
    r = place_order(c)
    assert r.status_code == 201
    order_id = r.get_json()["order_id"]
    assert c.get("/cart").get_json()["items"] == []
    order = c.get(f"/orders/{order_id}").get_json()
    assert order["items"] == [{"product_id": 1, "qty": 2, "unit_price_cents": 4999},
                              {"product_id": 5, "qty": 3, "unit_price_cents": 999}]
    assert order["total_cents"] == 2 * 4999 + 3 * 999
    row = db.rows("SELECT o.user_id, u.username FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = %s",
                  (order_id,))
    assert row == [{"user_id": order["user_id"], "username": "alice"}]


def test_the_order_keeps_the_price_paid_after_a_price_change(auth):
    c, admin = auth.user("alice"), auth.admin()
    add(c, 2, 1)
    order_id = place_order(c).get_json()["order_id"]
    assert admin.put("/products/2", json={"price_cents": 1}).status_code == 200
    assert c.get(f"/orders/{order_id}").get_json()["items"][0]["unit_price_cents"] == 2999


def test_an_order_is_visible_to_its_owner_only(auth):
    alice, bob = auth.user("alice"), auth.user("bob")
    add(alice, 1, 1)
    order_id = place_order(alice).get_json()["order_id"]
    assert alice.get(f"/orders/{order_id}").status_code == 200
    r = bob.get(f"/orders/{order_id}")
    assert r.status_code == 404 and r.get_json() == {"error": "no such order"}


def test_checkout_of_an_empty_cart_is_refused(auth, db):
    c = auth.user("alice")
    r = place_order(c)
    assert r.status_code == 400 and "empty" in r.get_json()["error"]
    assert db.value("SELECT COUNT(*) FROM orders") == 0


def test_a_retried_checkout_with_the_same_key_orders_once(auth, db):
    c = auth.user("alice")
    add(c, 4, 2)
    first = c.post("/orders", headers={"Idempotency-Key": "checkout-1"})
    again = c.post("/orders", headers={"Idempotency-Key": "checkout-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.get_json() == again.get_json()
    assert db.value("SELECT COUNT(*) FROM orders") == 1
    assert db.value("SELECT COUNT(*) FROM order_items") == 1


def test_a_failed_checkout_writes_nothing(auth, db, stack):
    c = auth.user("alice")
    add(c, 1, 1)
    before = db.snapshot()
    # The master is frozen: the checkout cannot commit, and leaves nothing half-done.
    with stack["primary"].paused():
        r = place_order(c)
    assert r.status_code == 503 and r.get_json()["applied"] is False, r.get_json()
    assert db.snapshot() == before, "the answer said nothing was done"
    assert place_order(c).status_code == 201


def same_user_clients(app, auth, count):
    """Return COUNT clients sharing one logged-in session of a new user."""
    first = auth.user("alice")
    sid = first.get_cookie("lab_session").value
    clients = [first]
    for _ in range(count - 1):
        c = app.test_client()
        c.set_cookie("lab_session", sid)
        clients.append(c)
    return clients


def test_concurrent_cart_adds_are_all_counted(app, auth):
    clients = same_user_clients(app, auth, 8)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda c: add(c, 6, 2).status_code, clients * 3))
    assert statuses == [200] * 24
    assert clients[0].get("/cart").get_json()["items"][0]["qty"] == 48


def test_concurrent_checkouts_with_one_key_from_two_logins_order_once(app, auth, db):
    alice = auth.user("alice")
    other_login = app.test_client()
    assert other_login.post("/login", json={"username": "alice", "password": USER_PASSWORD}).status_code == 200
    for c in (alice, other_login):
        add(c, 7, 1)
    barrier = threading.Barrier(2)

    def checkout(c):
        barrier.wait(timeout=10)
        return c.post("/orders", headers={"Idempotency-Key": "same-click"})

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(checkout, (alice, other_login)))
    assert [r.status_code for r in answers] == [201, 201]
    assert answers[0].get_json() == answers[1].get_json()
    assert db.value("SELECT COUNT(*) FROM orders") == 1
