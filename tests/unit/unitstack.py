"""The unit tier's stack: MariaDB and memcached containers from the lab's images, and helpers.

Import this module before anything imports testcontainers: it sets the
environment testcontainers reads at import time.
"""
import os

# testcontainers reads these when it is imported. Its reaper (Ryuk) needs a
# pulled image, and this machine looks like a container to it, so it would
# otherwise talk to the Docker bridge's gateway instead of loopback.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")
os.environ.setdefault("TC_HOST", "127.0.0.1")

import contextlib  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402

import pymysql  # noqa: E402
from pymemcache.client.base import Client as MemcacheClient  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402

from labctl import progress, settings  # noqa: E402

APP_PASSWORD = "unit-app-password"
ADMIN_PASSWORD = "unit-admin-password"
USER_PASSWORD = "correct horse battery"
START_TIMEOUT_S = 90


class Node:
    """One container of the unit stack, published on a random port of 127.0.0.1."""

    def __init__(self, image, port, **env):
        self.port_inside = port
        self.container = DockerContainer(settings.image(image)).with_envs(**env)
        # with_bind_ports() cannot choose the host address: bind to loopback only.
        self.container.ports[f"{port}/tcp"] = ("127.0.0.1", None)
        self.port = None

    def start(self):
        """Start the container and wait (bounded) until its health check passes."""
        self.container.start()
        docker_container = self.container.get_wrapped_container()

        def healthy():
            docker_container.reload()
            state = docker_container.attrs["State"]
            health = state.get("Health", {})
            probes = health.get("Log") or [{}]
            # What the health check said last, so that a node that never gets healthy says why.
            said = (probes[-1].get("Output") or "").strip()[-300:]
            return health.get("Status") == "healthy", f"{self.container.image}: {state.get('Status')}, " \
                f"health {health.get('Status')}: {said or 'no probe yet'}"

        progress.wait_until(healthy, START_TIMEOUT_S, interval_s=0.5)
        self.port = int(self.container.get_exposed_port(self.port_inside))
        return self

    @contextlib.contextmanager
    def paused(self):
        """Freeze the container for the block (it accepts connections, never answers); always thaw it."""
        self.container.get_wrapped_container().pause()
        try:
            yield
        finally:
            self.container.get_wrapped_container().unpause()

    def admin_sql(self, sql):
        """Run SQL as the server's root (over its socket, inside the container), as the HA loop's fence does."""
        code, out = self.container.get_wrapped_container().exec_run(["mariadb", "-e", sql])
        assert code == 0, f"{sql}: {out.decode(errors='replace')}"

    def stop(self):
        """Remove the container."""
        self.container.stop()


def db_node():
    """Return a MariaDB node of the lab's image, with throw-away credentials."""
    node = Node("mariadb", 3306, MYSQL_APP_PASSWORD=APP_PASSWORD, MYSQL_REPL_PASSWORD="unit-repl",
                MYSQL_MONITOR_PASSWORD="unit-monitor", MYSQL_HA_PASSWORD="unit-ha")
    node.container.with_command([
        # The lab's nodes start read-only until their HA loop takes the
        # leader key; here each server stands alone (no etcd: db-ha only
        # answers health checks), so it is writable from the start,
        # with no semi-sync peer to wait for.
        "--read-only=OFF", "--rpl-semi-sync-master-enabled=OFF",
        # Throw-away data: trade the lab's crash safety (an fsync per
        # commit) for speed, since every test empties the tables.
        "--sync-binlog=0", "--innodb-flush-log-at-trx-commit=0",
    ])
    return node


def cache_node():
    """Return a memcached node of the lab's image."""
    return Node("memcached", 11211)


def closed_port():
    """Return a port on 127.0.0.1 where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilencingProxy:
    """A TCP proxy on 127.0.0.1 to PORT whose connections can be made to go silent (a black hole) while new
    ones still pass: what a client sees of its connections when a VIP moves under them and the packets go
    to a node that drops them."""

    def __init__(self, port):
        self.port_to, self.pairs, self.accepted = port, [], 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.port_to))
            pair = {"silent": False, "socks": (client, server)}
            self.pairs.append(pair)
            self.accepted += 1
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(pair, a, b), daemon=True).start()

    @staticmethod
    def _pump(pair, src, dst):
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if not pair["silent"]:
                    dst.sendall(data)

    def silence(self):
        """From now on, drop whatever the connections open now carry (both ways); new ones pass."""
        for pair in self.pairs:
            pair["silent"] = True

    def close(self):
        self.listener.close()
        for pair in self.pairs:
            for s in pair["socks"]:
                with contextlib.suppress(OSError):
                    s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Database:
    """Direct access to a MariaDB node of the stack, as the app's user."""

    def __init__(self, port):
        self.port = port
        self._conn = None

    def rows(self, sql, args=None):
        """Run SQL (autocommit) and return its rows as dicts."""
        if self._conn is None:
            self._conn = pymysql.connect(
                host="127.0.0.1", port=self.port, user="lab_app", password=APP_PASSWORD, database="lab",
                autocommit=True, connect_timeout=5, read_timeout=10, cursorclass=pymysql.cursors.DictCursor)
        with self._conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def value(self, sql, args=None):
        """Return the first column of the first row of SQL."""
        rows = self.rows(sql, args)
        return next(iter(rows[0].values())) if rows else None

    def snapshot(self):
        """Return everything a request could write, to compare before and after it."""
        return {
            "users": self.rows("SELECT id, username, password_hash, is_admin FROM users ORDER BY id"),
            "products": self.rows("SELECT id, name, description, price_cents, version FROM products ORDER BY id"),
            "orders": self.rows("SELECT * FROM orders ORDER BY id"),
            "order_items": self.rows("SELECT * FROM order_items ORDER BY order_id, product_id"),
            "sessions": self.rows("SELECT id, data FROM sessions ORDER BY id"),
            "jobs": self.rows("SELECT * FROM jobs ORDER BY id"),
            "invoices": self.rows("SELECT * FROM invoices ORDER BY order_id"),
        }

    def close(self):
        """Close the connection, if one was opened."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def cache_client(stack, name):
    """Return a plain memcached client for node NAME of the stack."""
    return MemcacheClient(("127.0.0.1", stack[name].port), connect_timeout=2, timeout=2)


def reset(stack, pristine_products):
    """Leave no users but the admin, no sessions, orders or jobs, the seeded catalogue, empty caches."""
    db = Database(stack["primary"].port)
    for sql in ("DELETE FROM invoices", "DELETE FROM jobs", "DELETE FROM order_items", "DELETE FROM orders", "DELETE FROM sessions",
                "DELETE FROM users WHERE id <> 1", "DELETE FROM cache_invalidations"):
        db.rows(sql)
    columns = list(pristine_products[0])
    db.rows(f"REPLACE INTO products ({', '.join(columns)}) VALUES "
            + ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(pristine_products)),
            [row[c] for row in pristine_products for c in columns])
    db.close()
    for name in ("memcached1", "memcached2"):
        mc = cache_client(stack, name)
        mc.flush_all(noreply=False)
        mc.close()


class Auth:
    """Register and log in users through the app's own API."""

    def __init__(self, app):
        self.app = app

    def user(self, username="alice", password=USER_PASSWORD):
        """Return a test client logged in as a newly registered USERNAME."""
        c = self.app.test_client()
        assert c.post("/register", json={"username": username, "password": password}).status_code == 201
        assert c.post("/login", json={"username": username, "password": password}).status_code == 200
        return c

    def admin(self):
        """Return a test client logged in as the admin."""
        c = self.app.test_client()
        r = c.post("/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.get_json()
        return c
