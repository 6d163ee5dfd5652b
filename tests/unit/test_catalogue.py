"""Product reads through memcached (cache-aside) from the read path; admin updates invalidate."""
import time

import pytest

from unitstack import Auth, cache_client, closed_port
from labapp import cache, catalogue

# A read with every cache node frozen pays at most a few cache timeouts
# (0.2 s each), never a TCP timeout.
NO_STALL_S = 2.0


def name_of(client, product_id=1):
    """Return (name, X-Cache) of a product as CLIENT reads it."""
    r = client.get(f"/products/{product_id}")
    assert r.status_code == 200
    return r.get_json()["name"], r.headers["X-Cache"]


@pytest.mark.parametrize("path", ["/products/1", "/products"])
def test_a_read_is_a_miss_then_a_hit(client, path):
    first, second = client.get(path), client.get(path)
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("miss", "hit")
    assert first.get_json() == second.get_json()


def test_catalogue_reads_come_from_the_read_path(client, replica):
    replica.rows("UPDATE products SET name = 'Only on the replica' WHERE id = 2")
    assert name_of(client, 2) == ("Only on the replica", "miss")


def test_an_update_is_seen_at_once_although_the_replica_lags(auth, client, replica):
    assert name_of(client) == ("Load balancer", "miss")
    assert name_of(client) == ("Load balancer", "hit")
    r = auth.admin().put("/products/1", json={"name": "Big load balancer", "price_cents": 5999})
    assert r.status_code == 200
    assert (r.get_json()["name"], r.get_json()["price_cents"], r.get_json()["version"]) == \
        ("Big load balancer", 5999, 2)
    # The replica never sees the write (it lags forever), yet readers do:
    # after a write, reads go to the master until the cache holds the new value.
    assert replica.value("SELECT name FROM products WHERE id = 1") == "Load balancer"
    assert name_of(client) == ("Big load balancer", "miss")
    assert name_of(client) == ("Big load balancer", "hit")
    listed = {p["id"]: p["name"] for p in client.get("/products").get_json()}
    assert listed[1] == "Big load balancer"


def test_a_read_that_raced_a_write_does_not_cache_its_old_copy(app, auth, client):
    admin = auth.admin()

    def slow_read(path):
        # The read gets the old row, then the write commits and
        # invalidates before the read stores its copy.
        old = catalogue._one(1)(path)
        assert admin.put("/products/1", json={"name": "Renamed"}).status_code == 200
        return old

    with app.test_request_context():
        value, hit = cache.fetch("product:1", slow_read)
    assert (value["name"], hit) == ("Load balancer", False)
    assert name_of(client) == ("Renamed", "miss")
    assert name_of(client) == ("Renamed", "hit")


def test_a_refill_after_a_write_that_raced_a_second_write_is_dropped(app, auth, client):
    admin = auth.admin()
    assert admin.put("/products/1", json={"name": "First"}).status_code == 200

    def slow_fresh_read(path):
        # A reader saw the first write's lock and reads the master; a
        # second write lands before it stores what it read.
        assert path == "write"
        first = catalogue._one(1)(path)
        assert admin.put("/products/1", json={"name": "Second"}).status_code == 200
        return first

    with app.test_request_context():
        value, _ = cache.fetch("product:1", slow_fresh_read)
    assert value["name"] == "First"
    assert name_of(client) == ("Second", "miss")
    assert name_of(client) == ("Second", "hit")


def timed(fn):
    """Return (fn(), seconds it took)."""
    start = time.monotonic()
    return fn(), time.monotonic() - start


def test_no_cache_at_all_serves_from_the_database(make_app, auth):
    app = make_app(MEMCACHED_SERVERS=[("127.0.0.1", closed_port()), ("127.0.0.1", closed_port())])
    c = app.test_client()
    for path in ("/products/1", "/products/1", "/products"):
        r, seconds = timed(lambda: c.get(path))
        assert (r.status_code, r.headers["X-Cache"]) == (200, "miss")
        assert seconds < NO_STALL_S


def test_frozen_cache_nodes_do_not_stall_reads(stack, client):
    with stack["memcached1"].paused(), stack["memcached2"].paused():
        _, first_s = timed(lambda: name_of(client))
        results, rest_s = timed(lambda: [name_of(client, pid) for pid in range(1, 11)])
    assert first_s < NO_STALL_S
    assert rest_s < NO_STALL_S  # dead nodes left the ring: no more waiting
    assert {hit for _, hit in results} == {"miss"}


def test_one_cache_node_down_its_keys_move_to_the_other(stack, client):
    ids = range(1, 13)
    for pid in ids:
        name_of(client, pid)
    on_node1 = [pid for pid in ids if cache_client(stack, "memcached1").get(f"product:{pid}") is not None]
    assert on_node1 and len(on_node1) < len(ids), "rendezvous hashing should spread the keys"
    with stack["memcached1"].paused():
        for pid in ids:  # finds memcached1 dead, refills its keys on memcached2
            name_of(client, pid)
        assert {name_of(client, pid)[1] for pid in ids} == {"hit"}
    node2 = cache_client(stack, "memcached2")
    assert all(node2.get(f"product:{pid}") is not None for pid in on_node1)


def test_a_dead_read_path_falls_back_to_the_write_path(make_app):
    c = make_app(DB_READ_PORT=closed_port()).test_client()
    assert name_of(c) == ("Load balancer", "miss")
    assert c.get("/products").status_code == 200


def test_a_write_leaves_its_lock_on_every_cache_client(stack, auth):
    # Workers decide on their own that a node is dead, so a key may be
    # looked up on either node: both must hold the write lock.
    assert auth.admin().put("/products/1", json={"name": "Locked"}).status_code == 200
    for name in ("memcached1", "memcached2"):
        assert cache_client(stack, name).get("product:1") is not None, name


def _stale_after_a_write_that_missed_the_cache(make_app, reader):
    """A product cached by READER's app; the admin renames it through an app that reaches no cache node."""
    assert name_of(reader) == ("Load balancer", "miss")
    assert name_of(reader) == ("Load balancer", "hit")
    cut_off = make_app(MEMCACHED_SERVERS=[("127.0.0.1", closed_port())])
    assert Auth(cut_off).admin().put("/products/1", json={"name": "Renamed"}).status_code == 200
    # Its tombstone went nowhere: without the log, readers would see the old name until CACHE_TTL_S.
    assert name_of(reader) == ("Load balancer", "hit")


def test_a_tombstone_the_writer_could_not_deliver_arrives_through_the_log(make_app):
    app = make_app()
    reader = app.test_client()
    _stale_after_a_write_that_missed_the_cache(make_app, reader)
    cache.Replayer(app).replay_once()
    assert name_of(reader) == ("Renamed", "miss")
    assert name_of(reader) == ("Renamed", "hit")


def test_a_replay_that_missed_a_cache_node_tries_it_again(make_app, stack):
    app = make_app(MEMCACHED_SERVERS=[("127.0.0.1", stack["memcached1"].port), ("127.0.0.1", closed_port())])
    assert Auth(app).admin().put("/products/1", json={"name": "Renamed"}).status_code == 200
    replayer = cache.Replayer(app)
    replayer.replay_once()
    pending = {key: servers for _, key, servers in replayer.entries.values()}
    assert set(pending) == {"product:1", "products:all"}, replayer.entries
    [dead] = pending["product:1"]
    assert pending["products:all"] == {dead} and str(stack["memcached1"].port) not in dead
    replayer.replay_once()       # still unreachable: still pending; the node that took it is not asked again
    assert [servers for _, _, servers in replayer.entries.values()] == [{dead}, {dead}]


def test_every_web_process_replays_the_log_by_itself(make_app):
    app = make_app(CACHE_REPLAY_S=0.2)
    reader = app.test_client()
    try:
        _stale_after_a_write_that_missed_the_cache(make_app, reader)
        deadline = time.monotonic() + 3
        while name_of(reader)[0] != "Renamed":
            assert time.monotonic() < deadline, "the replaying thread did not deliver the tombstone within 3 s"
            time.sleep(0.1)
    finally:
        app.extensions["cache-replay"].stopping.set()
