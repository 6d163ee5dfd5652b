"""One DB node's HA loop (db-ha) on a real MariaDB and a real etcd: it leads, and it fences itself.

A one-source cluster: a container of the lab's MariaDB image whose db-ha
talks to one etcd member (the lab's etcd image) on a network of their
own. With no peer, the node takes the leader key at its first start and
becomes the writer. The tests then freeze db-ha itself (SIGSTOP, as a hung
helper or a swap storm would) and check that the server stops taking
writes anyway, by its own dead-man switch, before the lease could have
lapsed in etcd.
"""
import json
import socket
import time

import pymysql
import pytest
import requests
from testcontainers.core.network import Network

from labctl import containers, progress
from labha import dcs
from unitstack import APP_PASSWORD, Node, closed_port

TTL_S = 1


@pytest.fixture(scope="module")
def stack():
    """(etcd, node): one etcd member, and the source `unit1` of a one-node cluster, leading."""
    with Network() as net:
        etcd = Node("etcd", 2379, LAB_NODE="etcd", DCS_SELF="etcd", DCS_MEMBERS="etcd=http://etcd:2380")
        etcd.container.with_network(net).with_network_aliases("etcd")
        etcd.start()
        n = Node("mariadb", 3306, MYSQL_APP_PASSWORD=APP_PASSWORD, MYSQL_REPL_PASSWORD="unit-repl",
                 MYSQL_MONITOR_PASSWORD="unit-monitor", MYSQL_HA_PASSWORD="unit-ha", LAB_NODE="unit1",
                 DB_ROLE="source", DB_SERVER_ID="1", DB_NODES="unit1:1:127.0.0.1", DB_SOURCES="unit1",
                 DB_CLUSTER="unit", DCS_ENDPOINTS="etcd:2379")
        n.container.ports["9200/tcp"] = ("127.0.0.1", None)
        n.container.with_network(net)
        # No semi-sync peer: the lone source commits asynchronously.
        n.container.with_command(["--rpl-semi-sync-master-enabled=OFF"])
        n.start()
        n.agent_url = f"http://127.0.0.1:{n.container.get_exposed_port(9200)}"
        try:
            wait_primary(n, True, 30)
            yield etcd, n
        finally:
            n.stop()
            etcd.stop()


@pytest.fixture(scope="module")
def node(stack):
    """The lone source, its agent port published on 127.0.0.1."""
    return stack[1]


@pytest.fixture
def store(stack):
    """A client of the etcd member (published on 127.0.0.1), as db-ha's own, with a dead member first."""
    return dcs.Client([f"127.0.0.1:{closed_port()}", f"127.0.0.1:{stack[0].port}"], timeout_s=0.25)


def status(node):
    """The daemon's own view (GET /status)."""
    return requests.get(node.agent_url + "/status", timeout=5).json()


def wait_primary(node, wanted, timeout_s):
    """Wait (bounded) until /primary answers 200 (WANTED) or not."""
    def check():
        try:
            code = requests.get(node.agent_url + "/primary", timeout=1).status_code
        except requests.RequestException:
            code = None
        return (code == 200) == wanted, code
    progress.wait_until(check, timeout_s, interval_s=0.1)


def app_connection(node):
    """A connection as the app's user."""
    return pymysql.connect(host="127.0.0.1", port=node.port, user="lab_app", password=APP_PASSWORD,
                           database="lab", autocommit=True, connect_timeout=5, read_timeout=5)


def insert(conn, token):
    """Write one probe row."""
    with conn.cursor() as cur:
        cur.execute("INSERT INTO replication_probe (origin, token) VALUES ('unit', %s)", (token,))


def daemon_pid(node):
    """The pid of db-ha in the node's container."""
    pids = [pid for pid, argv in containers.processes(node.container.get_wrapped_container())
            if argv[1:3] == ["/usr/local/bin/db-ha", "run"]]
    assert len(pids) == 1, pids
    return pids[0]


def signal(node, sig):
    """Send SIG to db-ha in NODE's container."""
    code, out = node.container.get_wrapped_container().exec_run(["kill", f"-{sig}", str(daemon_pid(node))])
    assert code == 0, out


def test_the_lone_source_leads_and_takes_writes(node):
    s = status(node)
    assert s["state"] == "leader" and s["primary"] and s["term"]["token"] > 0, s
    with app_connection(node) as conn:
        insert(conn, "leading")


def test_its_deadline_is_kept_in_the_server_for_the_dead_man_switch(node):
    with app_connection(node) as conn, conn.cursor() as cur:
        cur.execute("SELECT token, TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), deadline) FROM ha.lease")
        token, left_us = cur.fetchone()
    assert token == status(node)["term"]["token"]
    assert 0 < left_us <= TTL_S * 1e6, "the deadline must lie within one lease from now"


def test_a_frozen_ha_loop_leaves_a_server_that_fences_itself_before_the_lease_can_lapse(node):
    conn = app_connection(node)
    insert(conn, "before-freeze")
    signal(node, "STOP")
    frozen_at = time.monotonic()
    try:
        def read_only():
            with app_connection(node) as c, c.cursor() as cur:
                cur.execute("SELECT @@global.read_only")
                return cur.fetchone()[0] == 1, None
        progress.wait_until(read_only, TTL_S + 1, interval_s=0.02)
        fenced_after = time.monotonic() - frozen_at
        # The session that was open when the lease ran out was killed; a new one meets read_only.
        with pytest.raises(pymysql.err.OperationalError):
            insert(conn, "after-deadline-old-session")
        with app_connection(node) as fresh, pytest.raises(pymysql.err.OperationalError) as refused:
            insert(fresh, "after-deadline-new-session")
        assert refused.value.args[0] == 1290, "a new session must meet read_only"
        assert fenced_after < TTL_S, f"fenced {fenced_after:.2f} s after the last renewal: the lease may have lapsed"
        code, out = node.container.get_wrapped_container().exec_run(
            ["mariadb", "-N", "-e", "SELECT why FROM ha.fenced ORDER BY at DESC LIMIT 1"])
        assert code == 0 and b"watchdog" in out, out
    finally:
        signal(node, "CONT")
    # Thawed, the loop renews its lease or, if etcd let it lapse, steps down and (the last leader)
    # takes the key again; either way it leads again. Its /primary may say yes for a moment before
    # it has looked, so: leading without a break for two leases.
    since = [None]

    def leads_again():
        s = status(node)
        since[0] = (since[0] or time.monotonic()) if s["primary"] else None
        return since[0] is not None and time.monotonic() - since[0] >= 2 * TTL_S, s
    progress.wait_until(leads_again, 15, interval_s=0.1)
    with app_connection(node) as c:
        insert(c, "after-thaw")


def test_a_renewal_late_while_etcd_is_away_fences_without_killing_a_session(stack, node):
    """etcd frozen past the writer's deadline (as a slow raft election): read_only goes on with no
    session killed, so nothing is left in doubt. A transaction open at the fence is refused at its
    COMMIT (1290: nothing of it was done, the app runs it again); an idle session lives on, and
    writes once etcd is back and the node leads again."""
    etcd = stack[0]
    wait_primary(node, True, 15)
    idle = app_connection(node)
    open_tx = app_connection(node)
    open_tx.autocommit(False)
    with open_tx.cursor() as cur:
        cur.execute("INSERT INTO replication_probe (origin, token) VALUES ('unit', 'open-at-the-fence')")
    try:
        with etcd.paused():
            def read_only():
                with app_connection(node) as c, c.cursor() as cur:
                    cur.execute("SELECT @@global.read_only")
                    return cur.fetchone()[0] == 1, None
            progress.wait_until(read_only, TTL_S + 1, interval_s=0.02)
            time.sleep(0.2)   # past the moment a fence that waits no longer would kill sessions
            with idle.cursor() as cur:
                cur.execute("SELECT 1")     # raises if the fence killed the session
            with pytest.raises(pymysql.err.OperationalError) as refused:
                open_tx.commit()
            assert refused.value.args[0] == 1290, refused.value.args
        wait_primary(node, True, 15)
        with idle.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM replication_probe WHERE token = 'open-at-the-fence'")
            assert cur.fetchone()[0] == 0, "a commit refused by read_only must leave nothing"
        progress.wait_until(lambda: (_insert_ok(idle, "after-etcd-is-back"), None), 10, interval_s=0.1)
    finally:
        idle.close()
        open_tx.close()


def _insert_ok(conn, token):
    """Insert a probe row on CONN; False if the server refused it as read-only (not leading yet)."""
    try:
        insert(conn, token)
        return True
    except pymysql.err.OperationalError as exc:
        if exc.args[0] != 1290:
            raise
        return False


def test_operator_requests_come_from_inside_the_node_only(node):
    wait_primary(node, True, 15)
    before = status(node)
    r = requests.post(node.agent_url + "/switchover", data=json.dumps({"force": True}), timeout=5)
    assert r.status_code == 403
    after = status(node)
    assert after["primary"] and after["term"]["token"] == before["term"]["token"], ("a refused request changes nothing", before, after)


def test_an_unknown_path_is_a_404(node):
    assert requests.get(node.agent_url + "/nope", timeout=5).status_code == 404


# ---- what db-ha relies on in etcd (labha.dcs against the real member) ---------------------

def test_a_member_that_does_not_answer_costs_at_most_its_timeout(store):
    started = time.monotonic()
    store.put("/unit/probe", {"ok": True})
    assert time.monotonic() - started < 1.0
    assert store.get("/unit/probe").value == {"ok": True}


def test_a_member_that_stopped_answering_is_asked_last_from_then_on(stack):
    """A killed raft leader's address swallows requests: after one timeout there, the next call
    goes to a live member first, with its whole timeout (a renewal has 0.3 s in all)."""
    with socket.socket() as silent:     # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        client = dcs.Client([f"127.0.0.1:{silent.getsockname()[1]}", f"127.0.0.1:{stack[0].port}"],
                            timeout_s=0.25)
        with pytest.raises(dcs.DcsError):
            client.get("/unit/probe", deadline=time.monotonic() + 0.25)   # all of it spent on the silent one
        started = time.monotonic()
        client.put("/unit/probe", {"ok": True}, deadline=started + 0.3)
        assert time.monotonic() - started < 0.2, "the live member must be asked first now"
        client.get("/unit/probe", deadline=time.monotonic() + 0.3)
        assert client.current == 1


def test_a_renewal_races_the_other_members_when_the_first_is_silent(stack, store):
    """As a follower does that forwards the renewal to a raft leader just killed: the renewer does not
    wait out its bound there, it asks the live member too and takes the first answer."""
    lease, _ = store.grant(TTL_S)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        racing = dcs.Racing([f"127.0.0.1:{silent.getsockname()[1]}", f"127.0.0.1:{stack[0].port}"],
                            timeout_s=0.25)
        for _ in range(3):   # the silent member, still being asked, is not asked twice at once
            started = time.monotonic()
            assert racing.keepalive(lease, deadline=started + 0.3) == TTL_S
            assert time.monotonic() - started < 0.2, "the live member must answer within the renewal's bound"
        assert racing.first == 1, "the member that answered is asked first from then on"
    store.revoke(lease)
    with pytest.raises(dcs.DcsError):
        dcs.Racing([f"127.0.0.1:{closed_port()}"], timeout_s=0.1).keepalive(lease, deadline=time.monotonic() + 0.3)


def test_a_key_created_only_if_absent_has_one_holder(store):
    key = f"/unit/leader-{time.monotonic_ns()}"
    won = [store.txn([dcs.Client.compare(key, "CREATE", 0)], [dcs.Client.put_op(key, {"node": n})])
           for n in ("a", "b")]
    assert [ok for ok, _ in won] == [True, False]
    kv = store.get(key)
    assert kv.value == {"node": "a"} and kv.create_revision == won[0][1], "the term is the key's create revision"


def test_a_lease_of_one_second_is_granted_and_its_keys_go_when_it_is_not_renewed(store):
    lease, ttl = store.grant(TTL_S)
    assert ttl == TTL_S, "etcd must grant the write path's 1 s lease (its election timeout allows it)"
    key = f"/unit/leased-{time.monotonic_ns()}"
    store.put(key, 1, lease=lease)
    renewed = time.monotonic()
    assert store.keepalive(lease) == TTL_S
    progress.wait_until(lambda: (store.get(key) is None, None), 3, interval_s=0.02)
    gone_after = time.monotonic() - renewed
    # Never before the TTL from the renewal: the writer's deadline (sent + TTL - margin) comes first.
    assert gone_after >= TTL_S - 0.05, gone_after
    assert store.keepalive(lease) == 0, "a renewal of an expired lease says it is gone"
