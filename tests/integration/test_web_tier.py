"""The web tier through 127.0.0.1:8080: sticky sessions, failover, cache coherence, bad input."""
import concurrent.futures
import contextlib
import datetime
import secrets
import threading
import time

import pytest

from labctl import containers, dbnodes, haproxy, lifecycle, progress, spike, topology
from labctl.chaos.nemesis import Nemesis
from labctl import secrets as lab_secrets
from labtest import Client
from unit.bad_input import CASES

# The lab's sources (masters) and read replica (slave), from its topology.
FIRST, SECOND = topology.SOURCES
[REPLICA] = topology.REPLICAS

PASSWORD = "integration password"
RATE_LIMITED_TRIES = 5


class PatientClient(Client):
    """A Client that waits and tries again when the LB's rate limit answers 429.

    The limit counts every request from this host, other test runs
    included; a 429 comes from HAProxy and means the app never saw the
    request, so sending it again is safe.
    """

    def request(self, method, url, *args, **kwargs):  # noqa: D102 - requests' signature
        for _ in range(RATE_LIMITED_TRIES - 1):
            r = super().request(method, url, *args, **kwargs)
            if r.status_code != 429:
                return r
            time.sleep(float(r.headers.get("Retry-After", "1")))
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def client(lab):
    """A new user's browser, patient with the LB's rate limit."""
    with PatientClient(browser=True) as c:
        yield c


def web_nodes():
    """Return the web nodes running now (web1..web3, more after `make scale`)."""
    return {containers.node_of(c) for c in containers.find(role="web")}


def new_user(client):
    """Register and log in a fresh user on CLIENT; return the username."""
    username = "it_" + secrets.token_hex(6)
    creds = {"username": username, "password": PASSWORD}
    assert client.post("/register", json=creds).status_code == 201
    assert client.post("/login", json=creds).status_code == 200
    return username


def admin_client():
    """Return a client logged in as the admin (password from .secrets/)."""
    c = PatientClient()
    r = c.post("/login", json={"username": "admin", "password": lab_secrets.read("app_admin_password")})
    assert r.status_code == 200, r.text
    return c


@contextlib.contextmanager
def stopped(*nodes, kill=False):
    """Stop (or kill) NODES for the block; start them again and wait until healthy, whatever happens."""
    try:
        for node in nodes:
            c = containers.get(node)
            c.kill() if kill else c.stop(timeout=5)
        yield
    finally:
        for node in nodes:
            containers.get(node).start()
        lifecycle.wait_healthy(list(nodes))


def cart_items(client):
    """Return CLIENT's cart as [(product_id, qty)], and the node that served it."""
    r = client.get("/cart")
    assert r.status_code == 200, r.text
    return [(i["product_id"], i["qty"]) for i in r.json()["items"]], r.headers["X-Served-By"]


def test_a_user_stays_on_one_node_and_keeps_session_and_cart_when_it_dies(lab, client):
    new_user(client)
    assert client.post("/cart/items", json={"product_id": 3, "qty": 2}).status_code == 200
    served = {cart_items(client)[1] for _ in range(10)}
    assert len(served) == 1, f"a logged-in user moved between nodes: {served}"
    node = served.pop()
    others = web_nodes() - {node}
    with stopped(node, kill=True):
        items, now_on = cart_items(client)
        assert now_on in others
        assert items == [(3, 2)]
        # Still logged in, on the new node, and it sticks there.
        assert client.post("/cart/items", json={"product_id": 4, "qty": 1}).status_code == 200
        assert cart_items(client) == ([(3, 2), (4, 1)], now_on)


@contextlib.contextmanager
def cut_from_db_vip(*nodes):
    """Drop all traffic between NODES and the db VIP for the block; heal whatever happens."""
    nemesis = Nemesis(log=lambda _line: None)
    try:
        for node in nodes:
            nemesis.partition(node, [topology.VIPS["dblb"]])
        yield
    finally:
        for fault in nemesis.faults:
            fault.heal()


def web_lb_states(backend, nodes):
    """{lb/node: status} of NODES in BACKEND on both web LBs."""
    return {f"{lb}/{n}": haproxy.servers(lb, backend)[n]["status"] for lb in topology.LB_PAIRS["lb"] for n in nodes}


def wait_web_lb_state(backend, nodes, wanted, timeout_s=15):
    """Wait (bounded) until both web LBs report each of NODES in BACKEND as WANTED (UP, DOWN)."""
    progress.wait_until(lambda: (lambda states: (all(v == wanted for v in states.values()), states))(
        web_lb_states(backend, nodes)), timeout_s, interval_s=0.25)


def test_a_node_cut_off_from_the_database_leaves_the_rotation_and_its_user_keeps_the_session(lab, client):
    new_user(client)
    assert client.post("/cart/items", json={"product_id": 2, "qty": 1}).status_code == 200
    node = cart_items(client)[1]
    with cut_from_db_vip(node):
        # Out of the readiness rotation within the app's grace and two checks; alive all along.
        wait_web_lb_state("web", [node], "DOWN", timeout_s=10)
        assert set(web_lb_states("web_degraded", [node]).values()) == {"UP"}
        items, now_on = cart_items(client)
        assert now_on != node and items == [(2, 1)]
        assert client.post("/cart/items", json={"product_id": 5, "qty": 1}).status_code == 200
    # Back in the rotation once it reaches the database again.
    wait_web_lb_state("web", [node], "UP", timeout_s=15)
    assert cart_items(client)[0] == [(2, 1), (5, 1)]


def test_with_no_node_reaching_the_database_cached_pages_serve_and_the_rest_is_a_clear_503(lab, client):
    nodes = sorted(web_nodes())
    read_on_every_node("/products/6", lambda r: None)   # product 6 is in the cache
    with cut_from_db_vip(*nodes):
        wait_web_lb_state("web", nodes, "DOWN", timeout_s=10)
        # The nodes checked for liveness take over: the cached page is served...
        r = client.get("/products/6")
        assert r.status_code == 200 and r.headers["X-Cache"] == "hit", (r.status_code, r.text[:200])
        # ...and a page that needs the database is the app's 503, which says when to come back.
        r = client.get("/")
        assert r.status_code == 503 and r.headers["Retry-After"] == "2", (r.status_code, r.text[:200])
        assert r.headers["X-Served-By"] in nodes and "database is unavailable" in r.json()["error"]
    wait_web_lb_state("web", nodes, "UP", timeout_s=15)
    assert client.get("/").status_code == 200


def read_on_every_node(path, check, attempts=60):
    """GET PATH with fresh clients until every web node answered; CHECK each answer. Return nodes seen."""
    seen, everyone = set(), web_nodes()
    for _ in range(attempts):
        with PatientClient() as c:
            r = c.get(path)
        assert r.status_code == 200, r.text
        check(r)
        seen.add(r.headers["X-Served-By"])
        if seen >= everyone:
            break
    return seen


def test_an_update_shows_on_every_web_node_at_once(lab):
    admin = admin_client()
    original = admin.get("/products/12").json()
    # Warm every node's view (and the cache) with the old value first.
    read_on_every_node("/products/12", lambda r: None)
    new_name = "Idempotency key " + secrets.token_hex(3)
    try:
        assert admin.put("/products/12", json={"name": new_name}).status_code == 200

        def shows_new_name(r):
            assert r.json()["name"] == new_name, f"{r.headers['X-Served-By']} served {r.json()['name']!r}"

        def lists_new_name(r):
            assert {p["id"]: p["name"] for p in r.json()}[12] == new_name, r.headers["X-Served-By"]

        assert read_on_every_node("/products/12", shows_new_name) >= web_nodes()
        assert read_on_every_node("/products", lists_new_name) >= web_nodes()
    finally:
        admin.put("/products/12", json={"name": original["name"]})


def test_the_catalogue_is_served_with_both_memcached_nodes_stopped(lab):
    with stopped("memcached1", "memcached2"):
        for path in ("/products/1", "/products/2", "/products") * 4:
            with PatientClient(timeout=5) as c:
                r = c.get(path)
            assert r.status_code == 200, r.text
            assert r.headers["X-Cache"] == "miss"


@pytest.fixture(scope="module")
def senders():
    """Clients for each kind of sender, the user with 90 of product 1 in the cart."""
    user = PatientClient()
    new_user(user)
    assert user.post("/cart/items", json={"product_id": 1, "qty": 90}).status_code == 200
    out = {"anon": PatientClient(), "user": user, "admin": admin_client()}
    yield out
    for c in out.values():
        c.close()


def writer():
    """Return the master that takes writes now (the one not read-only)."""
    for node in (FIRST, SECOND):
        with contextlib.suppress(dbnodes.DbError):
            if dbnodes.value(node, "SELECT @@read_only") == "0":
                return node
    pytest.fail("no writable master: is the lab healthy (make status)?")


def snapshot(user_client):
    """Return what a bad request could have written, read on the writing master."""
    sid = user_client.cookies.get("lab_session")
    assert sid and sid.replace("-", "").replace("_", "").isalnum()
    return dbnodes.query(writer(), (
        "SELECT (SELECT COUNT(*) FROM lab.users) AS users,"
        " (SELECT COUNT(*) FROM lab.orders) AS orders,"
        f" (SELECT data FROM lab.sessions WHERE id = '{sid}') AS session,"
        " (SELECT SHA2(GROUP_CONCAT(CONCAT_WS('|', id, name, description, price_cents, version)"
        "  ORDER BY id SEPARATOR ';'), 256) FROM lab.products) AS products"))


@pytest.mark.parametrize("who,method,path,data,headers,status", CASES)
def test_bad_input_gets_a_4xx_and_writes_nothing(lab, senders, who, method, path, data, headers, status):
    before = snapshot(senders["user"])
    r = senders[who].request(method, path, data=data, headers=headers)
    assert r.status_code == status, r.text[:300]
    assert set(r.json()) == {"error"}
    assert r.headers["X-Served-By"] in web_nodes()
    # TODO(race): a user registered by someone else during this test
    # changes the users count; the lab is expected to be quiet.
    assert snapshot(senders["user"]) == before


DB_NODES = topology.DB_NODES
REPLICATION_TIMEOUT_S = 30


def test_an_order_is_identical_on_every_db_node(lab, client):
    new_user(client)
    for product_id, qty in ((2, 3), (9, 1)):
        assert client.post("/cart/items", json={"product_id": product_id, "qty": qty}).status_code == 200
    r = client.post("/orders", headers={"Idempotency-Key": secrets.token_hex(8)})
    assert r.status_code == 201
    order_id = int(r.json()["order_id"])
    sql = ("SELECT o.user_id, o.total_cents, o.created_at, i.product_id, i.qty, i.unit_price_cents"
           f" FROM lab.orders o JOIN lab.order_items i ON i.order_id = o.id WHERE o.id = {order_id}"
           " ORDER BY i.product_id")

    def identical():
        copies = {node: dbnodes.query(node, sql) for node in DB_NODES}
        return all(len(rows) == 2 and rows == copies[FIRST] for rows in copies.values()), copies

    copies = progress.wait_until(identical, REPLICATION_TIMEOUT_S, interval_s=0.5)
    assert [(row["product_id"], row["qty"]) for row in copies[REPLICA]] == [("2", "3"), ("9", "1")]


def test_the_home_page_tells_a_browser_its_node_lb_and_session(lab, client):
    r = client.get("/", headers={"Accept": "text/html"})
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert f"<strong>{r.headers['X-Served-By']}</strong>" in r.text
    assert any(f"<strong>{lb}</strong>" in r.text for lb in ("lb1", "lb2"))
    assert client.cookies["lab_session"][:8] in r.text


SIGN_UP_BURST = 24


def test_a_burst_of_sign_ups_queues_and_marks_no_node_down(lab):
    """24 sign-ups and logins at once: every password hash holds a request thread for ~0.5 s, all of
    them busy; the LBs' checks (on a port of their own) still pass, so no live node is marked down
    and every sign-up succeeds (README, "Troubleshooting" had it as a known limit)."""
    since = datetime.datetime.now(datetime.timezone.utc)
    barrier = threading.Barrier(SIGN_UP_BURST)

    def sign_up(i):
        with Client() as c:
            creds = {"username": f"burst_{secrets.token_hex(4)}_{i}", "password": PASSWORD}
            barrier.wait(timeout=30)
            return c.post("/register", json=creds).status_code, c.post("/login", json=creds).status_code

    with haproxy.rate_limit_lifted(), concurrent.futures.ThreadPoolExecutor(SIGN_UP_BURST) as pool:
        answers = list(pool.map(sign_up, range(SIGN_UP_BURST)))
    marks = [m for m in spike.down_marks(since) if "web" in m]
    assert not marks, f"live web nodes were marked down by a burst of sign-ups: {marks[:3]}"
    assert answers == [(201, 200)] * SIGN_UP_BURST, answers
