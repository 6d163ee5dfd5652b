"""Cache-aside over memcached1 and memcached2 (client-side hashing), safe against stale write-backs.

The pattern, so that no read puts an old value into the cache:

- A write commits to the database first, then *sets* each key it changed
  to a write-lock tombstone that lives CACHE_WRITE_LOCK_S, on every node.
- A read that finds no key at all loads from the read replica and stores
  with `add`, which succeeds only if the key is still absent: if a write's
  tombstone (or a newer value) arrived while the read was in the database,
  the read's possibly old copy is dropped, not written back.
- A read that finds a tombstone knows the replica may lag behind the
  write, so it loads from the write path (the master) and stores with
  `cas` against the tombstone it saw: if another write replaced the
  tombstone meanwhile, the cas fails and nothing old is stored.

- The write also records the keys it changed in the database, in its own
  transaction (table cache_invalidations), and every web process replays
  that log every CACHE_REPLAY_S: a tombstone the writing node could not
  deliver (it was cut off from a cache node that other web nodes still
  read) arrives from every other process within CACHE_REPLAY_S, and one
  that reached no process is tried again until CACHE_TTL_S.

So the cache only ever holds a value read after the latest write's
commit, give or take CACHE_REPLAY_S. TODO(race): a value evicted while the
replica still lags more than the write lock can still be refilled with an
old copy until CACHE_TTL_S.

Every cache failure is swallowed (ignore_exc): the caller then reads the
database. A node that fails leaves the hash ring at once (retry_attempts=0)
so its keys move to the other node, and is tried again after
CACHE_DEAD_RETRY_S.
"""
import concurrent.futures
import json
import socket
import threading
import time

from flask import current_app
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient

from . import background, db, metrics

_LOCK = {"lock": True}


class _JsonSerde:
    """Store values as JSON text."""

    @staticmethod
    def serialize(_key, value):
        return json.dumps(value, separators=(",", ":")).encode(), 1

    @staticmethod
    def deserialize(_key, value, flags):
        return json.loads(value) if flags == 1 else None


class _BoundedDnsSocket:
    """The socket module, but name lookups give up after a deadline.

    Docker's DNS takes about 10 s to fail for the name of a stopped
    container (it asks the upstream resolvers, which an internal network
    cannot reach), and pymemcache's connect timeout does not cover the
    lookup: without this, every read would stall while a cache node is down.
    """

    # Lookups that outlive their deadline finish here, in the background.
    _pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dns")

    def __init__(self, timeout_s):
        self.timeout_s = timeout_s

    def __getattr__(self, name):
        return getattr(socket, name)

    def getaddrinfo(self, *args, **kwargs):
        """Return socket.getaddrinfo(...), or raise socket.gaierror after the deadline."""
        future = self._pool.submit(socket.getaddrinfo, *args, **kwargs)
        try:
            return future.result(timeout=self.timeout_s)
        except concurrent.futures.TimeoutError:
            raise socket.gaierror(f"name lookup took over {self.timeout_s} s") from None


def client():
    """Return the app's memcached client (one per process and app, made on first use)."""
    app = current_app._get_current_object()
    found = app.extensions.get("lab_cache")
    if found is None:
        cfg = app.config
        found = app.extensions["lab_cache"] = HashClient(
            cfg["MEMCACHED_SERVERS"], serde=_JsonSerde(),
            connect_timeout=cfg["CACHE_CONNECT_TIMEOUT_S"], timeout=cfg["CACHE_IO_TIMEOUT_S"],
            socket_module=_BoundedDnsSocket(cfg["CACHE_CONNECT_TIMEOUT_S"]),
            retry_attempts=0, dead_timeout=cfg["CACHE_DEAD_RETRY_S"],
            use_pooling=True, ignore_exc=True, default_noreply=False)
    return found


def _quietly(call, *args, **kwargs):
    """Run a cache CALL; on any error, log it and return None (the cache is optional).

    ignore_exc does not cover everything: pymemcache's HashClient keeps its
    dead-node bookkeeping unlocked, and two threads that see one node fail
    at once make it raise ValueError ("No such node ... to remove").
    """
    try:
        return call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a cache failure must never fail the request
        current_app.logger.warning("cache error (%s): %s", type(exc).__name__, exc)
        return None


def fetch(key, load, fresh=False):
    """Return (value, hit) for KEY: the cached value, else LOAD(path) stored without racing a write.

    LOAD takes the database path to read from, "read" or "write". FRESH skips
    the cached copy (a client's Cache-Control: no-cache), as a miss would.
    """
    mc = client()
    cached, token = (None, None) if fresh else (_quietly(mc.gets, key) or (None, None))
    if isinstance(cached, dict) and "v" in cached:
        metrics.cache_result(True)
        return cached["v"], True
    metrics.cache_result(False)
    ttl = current_app.config["CACHE_TTL_S"]
    if cached == _LOCK:
        value = load("write")
        if token is not None:
            _quietly(mc.cas, key, {"v": value}, token, expire=ttl)
    else:
        value = load("read")
        _quietly(mc.add, key, {"v": value}, expire=ttl)
    return value, False


def invalidate(*keys, servers=None):
    """Mark KEYS as just written (call after the commit) on SERVERS (default: all); return those missed.

    The tombstone goes to every node, not only to the key's: each worker
    process decides on its own when a node is dead and its keys move, so
    two workers may look for one key on different nodes, and each must
    find the tombstone there. Writes are rare; the extra sets are cheap.
    """
    lock_s = current_app.config["CACHE_WRITE_LOCK_S"]
    missed = []
    for server, node in list(client().clients.items()):
        if servers is not None and server not in servers:
            continue
        try:
            for key in keys:
                node.set(key, _LOCK, expire=lock_s, noreply=False)
        except Exception as exc:  # noqa: BLE001 - a dead node holds nothing to invalidate
            current_app.logger.warning("cache node %s missed an invalidation: %s", server, exc)
            missed.append(server)
    return missed


def log_invalidation(cur, *keys):
    """Record KEYS as changed in the writing transaction CUR (see the module's docstring); purge old entries."""
    cur.executemany("INSERT INTO cache_invalidations (cache_key) VALUES (%s)", [(k,) for k in keys])
    cur.execute("DELETE FROM cache_invalidations WHERE created_at < NOW(3) - INTERVAL 1 HOUR LIMIT 100")


class Replayer:
    """Replays the invalidation log into the cache: each entry once on every node, until every node took it."""

    def __init__(self, app):
        self.app = app
        self.entries = {}   # log id -> [first seen (monotonic), key, servers still to reach or None: all]
        self.stopping = threading.Event()
        self._warned = 0.0

    def replay_once(self):
        """Read the log's recent entries (from the write path) and deliver what is new or was missed."""
        cfg = self.app.config
        with self.app.app_context():
            rows = db.query("SELECT id, cache_key FROM cache_invalidations "
                            "WHERE created_at >= NOW(3) - INTERVAL %s SECOND", (cfg["CACHE_WRITE_LOCK_S"],))
            now = time.monotonic()
            for row in rows:
                self.entries.setdefault(row["id"], [now, row["cache_key"], None])
            for log_id, entry in list(self.entries.items()):
                seen, key, pending = entry
                if pending is None or pending:
                    entry[2] = set(invalidate(key, servers=pending))
                if now - seen > cfg["CACHE_TTL_S"]:   # by then the cache has dropped what the key held
                    del self.entries[log_id]

    def run(self):
        """Replay every CACHE_REPLAY_S until stopped; a failure is logged (at most every 10 s) and retried."""
        while not self.stopping.wait(self.app.config["CACHE_REPLAY_S"]):
            try:
                self.replay_once()
            except Exception as exc:  # noqa: BLE001 - the database or cache may be away; try again
                if time.monotonic() - self._warned > 10:
                    self._warned = time.monotonic()
                    self.app.logger.warning("replaying cache invalidations failed: %s", exc)


def init_app(app):
    """Start this process's replayer on its first request (after gunicorn forked it), if CACHE_REPLAY_S."""
    @app.before_request
    def start_replayer():
        if app.config["CACHE_REPLAY_S"]:
            background.start_per_process(app, "cache-replay", Replayer)


def ping():
    """Return {server: None if it answers, else the error as text} for each memcached node."""
    cfg = current_app.config
    out = {}
    for host, port in cfg["MEMCACHED_SERVERS"]:
        c = Client((host, port), connect_timeout=cfg["CACHE_CONNECT_TIMEOUT_S"],
                   timeout=cfg["CACHE_IO_TIMEOUT_S"],
                   socket_module=_BoundedDnsSocket(cfg["CACHE_CONNECT_TIMEOUT_S"]))
        try:
            c.version()
            out[f"{host}:{port}"] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable"
            out[f"{host}:{port}"] = f"{type(exc).__name__}: {exc}"
        finally:
            c.close()
    return out
