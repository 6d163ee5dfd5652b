"""The write path stays calm under load, has one writer at a time, and never hides an acknowledged write.

Each test drives real traffic through 127.0.0.1:8080 while a sampler reads
read_only on both masters every half second (through the Docker API), and
heals whatever it broke in a finaliser.
"""
import contextlib
import secrets
import time

import pytest
import requests

from labctl.chaos.monitor import SafetySampler
from labctl.chaos.nemesis import Nemesis
from labctl import dbnodes, ha, haproxy, lifecycle, operations, progress, replication, spike, topology
from labtest import Client

# The lab's sources (masters) and read replica (slave), from its topology.
FIRST, SECOND = topology.SOURCES
[REPLICA] = topology.REPLICAS

MASTERS = topology.SOURCES
DB_NODES = topology.DB_NODES
LOAD_CLIENTS = 32
LOAD_S = 20
# The bar for a load spike: at most 0.5 % of answers may be 5xx.
MAX_5XX_SHARE = 0.005


def writer_sampler(interval_s=0.5):
    """Read read_only on both masters every INTERVAL_S (the chaos suite's sampler)."""
    return SafetySampler([], time.monotonic, interval_s)


@pytest.fixture
def no_rate_limit(lab):
    """Lift the LBs' per-client rate limit (all host traffic is one client); restore it afterwards."""
    with haproxy.rate_limit_lifted():
        yield


@pytest.fixture
def nemesis(lab):
    """Faults healed afterwards whatever happens; writes end on master1, the usual state."""
    n = Nemesis()
    yield n
    n.heal_all()
    operations.failback()


def test_32_concurrent_visitors_cause_no_5xx_no_down_server_and_no_failover(no_rate_limit):
    with writer_sampler(1.0) as sampler:
        r = spike.run(clients=LOAD_CLIENTS, seconds=LOAD_S)
    assert r["answers"] > LOAD_S * 20, f"only {r['answers']} answers in {LOAD_S} s"
    assert r["errors_5xx"] <= MAX_5XX_SHARE * r["answers"], r
    assert not r["down_marks"], r["first_down_marks"]
    assert r["writer_after"] == r["writer_before"], "the writer changed under load with no fault"
    sampler.assert_one_writer_at_most()


class Shopper(progress.Background):
    """A logged-in user who keeps adding a product and checking out; records every answer.

    A checkout whose outcome is unknown (timeout, 5xx) is retried with the
    same Idempotency-Key, as a careful client does.
    """

    def __init__(self):
        super().__init__()
        self.client = Client(timeout=8)
        name = "wp_" + secrets.token_hex(5)
        creds = {"username": name, "password": "write path password"}
        assert self.client.post("/register", json=creds).status_code == 201
        assert self.client.post("/login", json=creds).status_code == 200
        self.orders = []        # (acknowledged at, order id, key)
        self.failures = []      # (time, status) of writes that did not succeed

    def run(self):
        while not self.stopping.is_set():
            key = secrets.token_hex(8)
            if self._call("POST", "/cart/items", json={"product_id": 1, "qty": 1}) is None:
                continue
            for _ in range(5):
                r = self._call("POST", "/orders", headers={"Idempotency-Key": key})
                if r is not None and r.status_code == 201:
                    self.orders.append((time.monotonic(), r.json()["order_id"], key))
                    break
                if r is not None and r.status_code < 500:
                    break
                if self.stopping.wait(0.2):
                    break

    def _call(self, method, path, **kw):
        try:
            r = self.client.request(method, path, **kw)
        except requests.RequestException:
            self.failures.append((time.monotonic(), 0))
            time.sleep(0.1)
            return None
        if r.status_code >= 300:
            self.failures.append((time.monotonic(), r.status_code))
            time.sleep(0.1)
            return r if r.status_code < 500 else None
        return r


def orders_on(node, ids):
    """Return {order id: count} of the orders IDS that NODE holds."""
    if not ids:
        return {}
    rows = dbnodes.query(node, "SELECT id, COUNT(*) AS n FROM lab.orders WHERE id IN ("
                         + ",".join(str(i) for i in ids) + ") GROUP BY id")
    return {int(r["id"]): int(r["n"]) for r in rows}


def assert_every_order_once_everywhere(shoppers):
    """Every acknowledged order exists exactly once on every DB node; no key ordered twice."""
    ids = [oid for s in shoppers for _, oid, _ in s.orders]
    keys = [key for s in shoppers for _, _, key in s.orders]
    assert len(set(keys)) == len(keys), "one checkout key acknowledged twice"
    for node in DB_NODES:
        def present(node=node):
            found = orders_on(node, ids)
            return len(found) == len(set(ids)), len(set(ids)) - len(found)
        progress.wait_until(present, 60, interval_s=1)
        assert set(orders_on(node, ids).values()) <= {1}
    keyed = dbnodes.query(FIRST, "SELECT user_id, idempotency_key, COUNT(*) AS n FROM lab.orders "
                          "WHERE idempotency_key IN (" + ",".join(f"'{k}'" for k in keys) + ") "
                          "GROUP BY user_id, idempotency_key HAVING n > 1") if keys else []
    assert not keyed, f"a checkout retried with its key made two orders: {keyed[:3]}"
    broken = [f"{l.source} -> {l.replica}: {l.last_error}" for l in replication.links() if l.state == "broken"]
    assert not broken, broken


def test_a_writer_cut_off_from_its_standby_then_killed_hides_no_acknowledged_order(nemesis):
    writer = topology.writers()[0]
    standby = next(m for m in MASTERS if m != writer)
    shoppers = [Shopper() for _ in range(3)]
    with writer_sampler() as sampler, contextlib.ExitStack() as stack:
        for s in shoppers:
            stack.enter_context(s)
        time.sleep(2)
        nemesis.partition(writer, [standby])
        time.sleep(6)
        during = [oid for s in shoppers for t, oid, _ in s.orders]
        assert during, "no checkout succeeded before the kill"
        nemesis.kill(writer)
        killed_at = time.monotonic()
        time.sleep(8)
        # (An answer the writer sent just before it died may arrive a few ms after the kill.)
        after_kill = sorted(t for s in shoppers for t, _, _ in s.orders if t > killed_at + 0.5)
        # The writer went on asynchronously after the cut (having recorded that
        # its standby was out of sync), so the standby may lack acknowledged
        # orders: writes must stay unavailable until the old writer is back,
        # and the standby must say why.
        assert not after_kill, (f"{standby} took writes {after_kill[0] - killed_at:.1f} s after the kill, "
                                "though it was not in sync")
        reason = ha.view(standby).get("reason", "")
        assert "waiting for it to return" in reason, reason
    nemesis.heal_all()
    assert_every_order_once_everywhere(shoppers)
    sampler.assert_one_writer_at_most()


def test_failback_during_a_master_partition_is_refused_and_writes_stay(nemesis):
    operations.promote(SECOND)
    assert topology.writers() == [SECOND]
    nemesis.partition(FIRST, [SECOND])
    time.sleep(2)  # master1's newest heartbeat from master2 grows old
    with pytest.raises(SystemExit, match="not keeping up"):
        operations.failback()
    assert topology.writers() == [SECOND], "a refused failback must leave the writer in place"
    with Client() as c:
        assert c.get("/").status_code == 200, "writes must still work on master2"


def test_a_killed_writer_is_replaced_and_the_lab_heals(nemesis):
    writer = topology.writers()[0]
    with writer_sampler() as sampler:
        nemesis.kill(writer)
        lifecycle.wait_writer(30)
        assert topology.writers() == [next(m for m in MASTERS if m != writer)]
        with Client() as c:
            assert c.get("/").status_code == 200
    sampler.assert_one_writer_at_most()
