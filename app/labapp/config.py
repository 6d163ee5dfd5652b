"""Read the app's configuration from the environment, with defaults."""
import os
import socket


def _secret(name, default=None):
    """Return secret NAME from $NAME, or from the file named by $NAME_FILE."""
    if os.environ.get(name):
        return os.environ[name]
    path = os.environ.get(name + "_FILE")
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    return default


def _servers(spec):
    """Return [(host, port)] from "host:port,host:port"."""
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        host, _, port = item.rpartition(":")
        out.append((host, int(port)))
    return out


def load():
    """Return the configuration as a dict of Flask config keys."""
    env = os.environ.get
    return {
        "LAB_NODE": env("LAB_NODE") or socket.gethostname(),
        # Writes, and every read of data a user just wrote (session, cart,
        # orders): the db VIP's write port, one master at a time.
        "DB_WRITE_HOST": env("DB_WRITE_HOST", "127.0.0.1"),
        "DB_WRITE_PORT": int(env("DB_WRITE_PORT", "3306")),
        # Catalogue reads: the read port (slave1, falling back to masters).
        "DB_READ_HOST": env("DB_READ_HOST") or env("DB_WRITE_HOST", "127.0.0.1"),
        "DB_READ_PORT": int(env("DB_READ_PORT") or env("DB_WRITE_PORT", "3306")),
        "DB_NAME": env("DB_NAME", "lab"),
        "DB_USER": env("DB_USER", "lab_app"),
        "DB_PASSWORD": _secret("DB_PASSWORD", ""),
        # Short timeouts: a dead database must give a quick 503, not a hang.
        "DB_CONNECT_TIMEOUT_S": float(env("DB_CONNECT_TIMEOUT_S", "2")),
        "DB_IO_TIMEOUT_S": float(env("DB_IO_TIMEOUT_S", "5")),
        # A transaction that certainly did not commit (no connection, a broken
        # one, a fenced writer) runs again for this long (labapp.db.run).
        "DB_RETRY_WINDOW_S": float(env("DB_RETRY_WINDOW_S", "1.0")),
        # A worker thread's pooled connection is replaced after this long.
        "DB_POOL_MAX_AGE_S": float(env("DB_POOL_MAX_AGE_S", "30")),
        # The web LBs' check (labapp.reach): each process probes the db LBs
        # this often, and is not ready for users once no probe succeeded for
        # the grace (a node cut off from the db VIP leaves the rotation).
        # 0 probes on each check instead (tests).
        "DB_REACH_EVERY_S": float(env("DB_REACH_EVERY_S", "0.5")),
        "DB_REACH_GRACE_S": float(env("DB_REACH_GRACE_S", "3.0")),
        # Each probe's bound (connect, or a round trip): a probe that hangs is
        # given up and the next one, on another connection, tried.
        "DB_REACH_TIMEOUT_S": float(env("DB_REACH_TIMEOUT_S", "1.0")),
        # The web LBs' checks (labapp.checkport): their port, and how long a
        # worker may hold requests none of which finishes before it says "stalled".
        "CHECK_PORT": int(env("CHECK_PORT", "8001")),
        "CHECK_STALL_S": float(env("CHECK_STALL_S", "20")),
        # Password hashes at once per process, and how long a request waits for a turn (labapp.auth).
        "HASHES_AT_ONCE": int(env("HASHES_AT_ONCE", "2")),
        "HASH_WAIT_S": float(env("HASH_WAIT_S", "8")),
        "SESSION_COOKIE": env("SESSION_COOKIE", "lab_session"),
        "SESSION_TTL_S": int(env("SESSION_TTL_S", str(7 * 24 * 3600))),
        # Share of session writes that also delete expired rows: cleanup
        # without a cron job, spread over the web nodes.
        "SESSION_PURGE_PROBABILITY": float(env("SESSION_PURGE_PROBABILITY", "0.01")),
        "MAX_CONTENT_LENGTH": int(env("MAX_BODY_BYTES", str(64 * 1024))),
        # The admin user's password is generated with the other secrets.
        "ADMIN_USERNAME": env("ADMIN_USERNAME", "admin"),
        "ADMIN_PASSWORD": _secret("ADMIN_PASSWORD"),
        "MEMCACHED_SERVERS": _servers(env("MEMCACHED_SERVERS", "127.0.0.1:11211")),
        # A cache answers in well under a millisecond; anything slower is a
        # dead or frozen node, and waiting for it would stall every read.
        "CACHE_CONNECT_TIMEOUT_S": float(env("CACHE_CONNECT_TIMEOUT_S", "0.2")),
        "CACHE_IO_TIMEOUT_S": float(env("CACHE_IO_TIMEOUT_S", "0.2")),
        # A failed cache node leaves the hash ring at once (its keys move to
        # the other node) and is tried again after this long.
        "CACHE_DEAD_RETRY_S": float(env("CACHE_DEAD_RETRY_S", "10")),
        "CACHE_TTL_S": int(env("CACHE_TTL_S", "300")),
        # How long after a product write reads bypass the read replica; see
        # cache.py. Longer than the replica lag we tolerate.
        "CACHE_WRITE_LOCK_S": int(env("CACHE_WRITE_LOCK_S", "30")),
        # How often each web process replays the invalidation log (cache.py);
        # 0 replays nothing. The bound on a stale read after a write whose
        # tombstone missed a cache node.
        "CACHE_REPLAY_S": float(env("CACHE_REPLAY_S", "0.5")),
        # The job queue (labapp.jobs, labapp.worker): a worker polls an empty
        # queue this often, holds a job under a lease this long (a dead
        # worker's job is taken again once it ran out), and parks a job
        # after this many attempts, retrying JOB_RETRY_S apart, doubling.
        "JOB_POLL_S": float(env("JOB_POLL_S", "0.5")),
        "JOB_LEASE_S": int(env("JOB_LEASE_S", "10")),
        "JOB_MAX_ATTEMPTS": int(env("JOB_MAX_ATTEMPTS", "4")),
        "JOB_RETRY_S": float(env("JOB_RETRY_S", "1")),
        # An invoice's CPU: PBKDF2 rounds (a million is about 0.25 s of one
        # core here; a worker has half a core).
        "JOB_INVOICE_ROUNDS": int(env("JOB_INVOICE_ROUNDS", "400000")),
    }
