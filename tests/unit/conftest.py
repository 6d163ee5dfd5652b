"""Fixtures for the unit tier: the app (Flask test client) against real MariaDB and memcached.

The containers come from the lab's own images and are started once per
test session; tables and caches are emptied before every test.
"""
import concurrent.futures
import contextlib

import pytest

from unitstack import ADMIN_PASSWORD, APP_PASSWORD, Auth, Database, cache_node, db_node, reset
from labapp import create_app


@pytest.fixture(scope="session")
def stack():
    """Start the write database, a read replica, and two memcached nodes, in parallel.

    The "replica" is a second server that never receives the writes: a
    replica lagging forever, the worst case the read path must survive.
    """
    nodes = {"primary": db_node(), "replica": db_node(),
             "memcached1": cache_node(), "memcached2": cache_node()}
    try:
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            for future in [pool.submit(n.start) for n in nodes.values()]:
                future.result()
        yield nodes
    finally:
        for node in nodes.values():
            with contextlib.suppress(Exception):
                node.stop()


@pytest.fixture(scope="session")
def app_config(stack):
    """Return the app's settings for the unit stack (tests change a copy, through make_app)."""
    return {
        "TESTING": True, "LAB_NODE": "unit",
        "DB_WRITE_HOST": "127.0.0.1", "DB_WRITE_PORT": stack["primary"].port,
        "DB_READ_HOST": "127.0.0.1", "DB_READ_PORT": stack["replica"].port,
        "DB_USER": "lab_app", "DB_PASSWORD": APP_PASSWORD,
        "DB_CONNECT_TIMEOUT_S": 1.0, "DB_IO_TIMEOUT_S": 2.0,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MEMCACHED_SERVERS": [("127.0.0.1", stack["memcached1"].port),
                              ("127.0.0.1", stack["memcached2"].port)],
        "SESSION_PURGE_PROBABILITY": 0.0,
        # No replaying thread per test app: the tests replay the log themselves (cache.Replayer).
        "CACHE_REPLAY_S": 0,
        # Nor a db reach probe: the LBs' check probes when asked (labapp.reach).
        "DB_REACH_EVERY_S": 0,
    }


@pytest.fixture
def make_app(app_config, clean):
    """Return a function that makes an app with APP_CONFIG plus the given overrides, on a clean stack."""
    return lambda **overrides: create_app({**app_config, **overrides})


@pytest.fixture
def app(make_app):
    """The app, wired to the unit stack."""
    return make_app()


@pytest.fixture
def client(app):
    """A browser for the app: the Flask test client, with its own cookie jar."""
    return app.test_client()


@pytest.fixture(scope="session")
def pristine_products(stack):
    """The seeded catalogue, as the schema left it."""
    db = Database(stack["primary"].port)
    yield db.rows("SELECT * FROM products ORDER BY id")
    db.close()


@pytest.fixture
def db(stack, clean):
    """The write database (the master)."""
    database = Database(stack["primary"].port)
    yield database
    database.close()


@pytest.fixture
def replica(stack, clean):
    """The read database (a replica that never catches up)."""
    database = Database(stack["replica"].port)
    yield database
    database.close()


# Not autouse: unit tests that need no containers (pure logic) start none.
@pytest.fixture
def clean(stack, pristine_products):
    """Start the test from a clean stack (see unitstack.reset)."""
    reset(stack, pristine_products)


@pytest.fixture
def auth(app):
    """Make logged-in clients: auth.user('bob'), auth.admin()."""
    return Auth(app)


@pytest.fixture
def shopper(auth):
    """Alice, logged in, with 2 of product 1 in her cart."""
    c = auth.user("alice")
    assert c.post("/cart/items", json={"product_id": 1, "qty": 2}).status_code == 200
    return c
