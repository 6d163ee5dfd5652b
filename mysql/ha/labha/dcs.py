"""The write path's consensus store: etcd 3.4 through its v3 JSON gateway.

Why etcd's own gateway and not a client library: the HA loop needs a
bounded wait on every call (a member that is dead, frozen or cut off must
cost a known fraction of the lease, never a hang) and failover across the
three members within that bound. Debian's python3-etcd3gw talks to one
member only and would pull in requests, futurist and pbr; python3-etcd3
needs gRPC. The gateway is plain HTTP+JSON, so http.client from the
standard library does it in the few calls below, with one kept-alive
connection per member.

Keys and values are bytes in etcd; here keys are str and values JSON.
int64 fields come back as strings (the gateway's JSON mapping).
"""
import base64
import concurrent.futures
import http.client
import json
import time

PREFIX = "/scalelab/"
CONNECT_TIMEOUT_S = 0.1
HEDGE_S = 0.05    # Racing: ask the other members when the first has not answered this fast


class DcsError(Exception):
    """No member answered in time, or the answer was an error."""


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def _unb64(text):
    return base64.b64decode(text or "").decode()


def prefix_end(prefix):
    """Return the range_end that selects every key starting with PREFIX."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return bytes(raw).decode()


class Kv:
    """One key as read from etcd: its value (decoded JSON) and its revisions."""

    __slots__ = ("key", "value", "create_revision", "mod_revision", "lease")

    def __init__(self, raw):
        self.key = _unb64(raw["key"])
        text = _unb64(raw.get("value"))
        try:
            self.value = json.loads(text) if text else None
        except ValueError:
            self.value = text
        self.create_revision = int(raw.get("create_revision", 0))
        self.mod_revision = int(raw.get("mod_revision", 0))
        self.lease = int(raw.get("lease", 0))

    def __repr__(self):
        return f"Kv({self.key!r}, {self.value!r}, rev {self.create_revision}/{self.mod_revision})"


class Client:
    """A client of the etcd members ENDPOINTS ("host:port" each), trying each in turn.

    Every call is bounded by TIMEOUT_S per member tried, and by the
    caller's DEADLINE (monotonic) when given: past it, no further member
    is tried.
    """

    def __init__(self, endpoints, timeout_s=0.25):
        self.endpoints = list(endpoints)
        self.timeout_s = timeout_s
        self.conns = {}
        self.current = 0          # the member that answered last: asked first

    def _conn(self, endpoint):
        conn = self.conns.get(endpoint)
        if conn is None:
            host, _, port = endpoint.rpartition(":")
            conn = self.conns[endpoint] = http.client.HTTPConnection(host, int(port), timeout=self.timeout_s)
        return conn

    def _drop(self, endpoint):
        conn = self.conns.pop(endpoint, None)
        if conn is not None:
            conn.close()

    def _passed_over(self, i):
        """Member I failed: if it was the one asked first, the next call asks the next member first.

        Without this a dead member (the raft leader just killed: its address
        no longer answers, each try costs the whole timeout) stayed first,
        and a renewal bounded to 0.3 s left the live members 0.1 s: twice in
        a row, and the writer's lease lapsed while etcd was healthy.
        """
        if i == self.current:
            self.current = (i + 1) % len(self.endpoints)

    def call(self, path, body, deadline=None):
        """POST BODY to /v3/PATH on the first member that answers; return the decoded JSON."""
        errors = []
        n = len(self.endpoints)
        for i in [(self.current + k) % n for k in range(n)]:
            if deadline is not None and time.monotonic() >= deadline:
                break
            endpoint = self.endpoints[i]
            try:
                conn = self._conn(endpoint)
                left = self.timeout_s if deadline is None else max(0.01, min(self.timeout_s, deadline - time.monotonic()))
                if conn.sock is None:
                    # A live member accepts at once on this network; a dead one's
                    # address swallows the SYN: it costs CONNECT_TIMEOUT_S, not the call's timeout.
                    conn.timeout = min(left, CONNECT_TIMEOUT_S)
                    conn.connect()
                conn.timeout = left
                conn.sock.settimeout(left)
                conn.request("POST", "/v3/" + path, json.dumps(body), {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop(endpoint)
                errors.append(f"{endpoint}: {type(exc).__name__}: {exc}")
                self._passed_over(i)
                continue
            try:
                answer = json.loads(data or b"{}")
            except ValueError:
                answer = {"error": data[:200].decode(errors="replace")}
            if resp.status != 200 or "error" in answer:
                message = answer.get("error") or answer.get("message") or resp.status
                # No leader, or this member is cut off: another member may know better.
                errors.append(f"{endpoint}: {message}")
                self._passed_over(i)
                continue
            self.current = i
            # A streaming call (keepalive) wraps its one answer in "result".
            return answer.get("result", answer)
        raise DcsError("; ".join(errors) or "no member tried before the deadline")

    # ---- reads -----------------------------------------------------------

    def get_prefix(self, prefix, serializable=True, deadline=None):
        """Return ({key: Kv} under PREFIX, the store's revision); SERIALIZABLE reads the member's own copy."""
        answer = self.call("kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix)),
                                        "serializable": serializable}, deadline)
        kvs = {kv.key: kv for kv in (Kv(raw) for raw in answer.get("kvs", []))}
        return kvs, int(answer.get("header", {}).get("revision", 0))

    def get(self, key, deadline=None):
        """Return the Kv of KEY (linearizable), or None."""
        answer = self.call("kv/range", {"key": _b64(key)}, deadline)
        kvs = answer.get("kvs", [])
        return Kv(kvs[0]) if kvs else None

    # ---- writes ----------------------------------------------------------

    @staticmethod
    def put_op(key, value, lease=0):
        """A put, for txn()."""
        op = {"key": _b64(key), "value": _b64(json.dumps(value))}
        if lease:
            op["lease"] = str(lease)
        return {"request_put": op}

    @staticmethod
    def delete_op(key, prefix=False):
        """A delete, for txn()."""
        op = {"key": _b64(key)}
        if prefix:
            op["range_end"] = _b64(prefix_end(key))
        return {"request_delete_range": op}

    @staticmethod
    def compare(key, target, value, result="EQUAL"):
        """A comparison, for txn(): TARGET is CREATE, MOD, VERSION or LEASE; VALUE an int."""
        field = {"CREATE": "create_revision", "MOD": "mod_revision", "VERSION": "version", "LEASE": "lease"}[target]
        return {"key": _b64(key), "result": result, "target": target, field: str(value)}

    def txn(self, compares, success, failure=(), deadline=None):
        """Run a transaction; return (succeeded, the revision it ran at)."""
        answer = self.call("kv/txn", {"compare": list(compares), "success": list(success),
                                      "failure": list(failure)}, deadline)
        return bool(answer.get("succeeded")), int(answer.get("header", {}).get("revision", 0))

    def put(self, key, value, lease=0, deadline=None):
        """Put KEY unconditionally; return the revision."""
        op = self.put_op(key, value, lease)["request_put"]
        answer = self.call("kv/put", op, deadline)
        return int(answer.get("header", {}).get("revision", 0))

    def delete(self, key, prefix=False, deadline=None):
        """Delete KEY (or every key under it); return the number deleted."""
        op = self.delete_op(key, prefix)["request_delete_range"]
        return int(self.call("kv/deleterange", op, deadline).get("deleted", 0))

    # ---- leases ----------------------------------------------------------

    def grant(self, ttl_s, deadline=None):
        """Grant a lease of TTL_S seconds; return (its id, the TTL etcd granted)."""
        answer = self.call("lease/grant", {"TTL": str(int(ttl_s))}, deadline)
        return int(answer["ID"]), int(answer["TTL"])

    def keepalive(self, lease, deadline=None):
        """Renew LEASE; return the TTL left (0: the lease is gone)."""
        answer = self.call("lease/keepalive", {"ID": str(lease)}, deadline)
        return int(answer.get("TTL", 0))

    def revoke(self, lease, deadline=None):
        """Revoke LEASE (its keys go with it)."""
        self.call("lease/revoke", {"ID": str(lease)}, deadline)

    # ---- the cluster -------------------------------------------------------

    def member_status(self, endpoint, deadline=None):
        """Return ENDPOINT's own status (leader, raft term, revision), asking that member only."""
        saved = self.endpoints, self.current
        self.endpoints, self.current = [endpoint], 0
        try:
            return self.call("maintenance/status", {}, deadline)
        finally:
            self.endpoints, self.current = saved


class Racing:
    """Renews a lease through whichever member answers first: the writer's renewer.

    It asks the member that answered last; when that one has not answered
    within HEDGE_S (a healthy member answers in milliseconds), it asks every
    other member too, and the first answer wins. Asking in turn (Client)
    could spend the whole bound of a renewal on one member: when etcd's
    raft leader dies, a follower holds a renewal while it forwards it to
    the dead leader, until the election is over and past it, and a 1 s
    lease has room for little more than the election itself. A member is
    asked once at a time (its connection is its own).
    """

    def __init__(self, endpoints, timeout_s, hedge_s=HEDGE_S):
        self.clients = [Client([e], timeout_s) for e in endpoints]
        self.hedge_s = hedge_s
        # max(1, ...): a node without etcd (the unit tests' stand-alone servers) has no member to ask.
        self.pool = concurrent.futures.ThreadPoolExecutor(max(1, len(self.clients)), thread_name_prefix="dcs-racing")
        self.asking = {}    # member index -> its future, while it is being asked
        self.first = 0      # the member that answered last: asked first

    def keepalive(self, lease, deadline):
        """Renew LEASE before DEADLINE (monotonic); return the TTL left (0: the lease is gone)."""
        return self._race(lambda c: c.keepalive(lease, deadline=deadline), deadline)

    def _race(self, ask, deadline):
        n = len(self.clients)
        if n == 0:
            raise DcsError("no etcd member configured")
        order = [(self.first + k) % n for k in range(n)]
        asked = {}

        def start(i):
            busy = self.asking.get(i)
            if busy is None or busy.done():
                asked[i] = self.asking[i] = self.pool.submit(ask, self.clients[i])

        start(order[0])
        hedge_at, hedged = time.monotonic() + self.hedge_s, False
        while True:
            for i, f in asked.items():
                if f.done() and f.exception() is None:
                    self.first = i
                    return f.result()
            now = time.monotonic()
            if not hedged and (now >= hedge_at or all(f.done() for f in asked.values())):
                hedged = True
                for i in order[1:]:
                    start(i)
                continue
            running = [f for f in asked.values() if not f.done()]
            if now >= deadline or (hedged and not running):
                break
            until = deadline if hedged else min(deadline, hedge_at)
            concurrent.futures.wait(running, timeout=max(0.0, until - now),
                                    return_when=concurrent.futures.FIRST_COMPLETED)
        errors = [f"{f.exception()}" for f in asked.values() if f.done() and f.exception() is not None]
        raise DcsError("; ".join(errors) or "no member answered before the deadline")
