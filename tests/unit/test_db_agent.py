"""The DB agent (mysql/bin/db-agent) enforces the write path's safety rules, on a real MariaDB.

One container of the lab's MariaDB image, its agent published on
127.0.0.1, driven over HTTP as the db LBs' decider drives it.
"""
import ipaddress
import json
import time

import pymysql
import pytest
import requests

from labctl import containers, progress
from unitstack import APP_PASSWORD, Node

SECRET = "unit-agent-secret"
LEASE_S = 1.0


@pytest.fixture(scope="module")
def node():
    """A master with leases on, read-only at start like the lab's; actions allowed from the host."""
    # Traffic from 127.0.0.1 reaches the container from the bridge's gateway (Docker's port proxy).
    ipam = containers.client().networks.get("bridge").attrs["IPAM"]["Config"][0]
    bridge = ipam.get("Gateway") or str(ipaddress.ip_network(ipam["Subnet"])[1])
    n = Node("mariadb", 3306, MYSQL_APP_PASSWORD=APP_PASSWORD, MYSQL_REPL_PASSWORD="unit-repl",
             MYSQL_MONITOR_PASSWORD="unit-monitor", DB_AGENT_SECRET=SECRET, DB_LEASE_S=str(LEASE_S),
             DB_AGENT_CONTROL_FROM=bridge)
    n.container.ports["9200/tcp"] = ("127.0.0.1", None)
    n.container.with_command(["--rpl-semi-sync-master-enabled=OFF"])
    n.start()
    n.agent_url = f"http://127.0.0.1:{n.container.get_exposed_port(9200)}"
    yield n
    n.stop()


def status(node):
    """GET /status."""
    return requests.get(node.agent_url + "/status", timeout=5).json()


def act(node, path, secret=SECRET, **body):
    """POST an action; return (status code, JSON answer)."""
    r = requests.post(node.agent_url + path, data=json.dumps(body), timeout=20,
                      headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"})
    return r.status_code, r.json()


def next_epoch(node):
    """An epoch newer than any the agent has seen."""
    return status(node)["epoch"] + 1


def wait_read_only(node, value, timeout_s=5):
    """Wait until the agent's view shows read_only == VALUE."""
    progress.wait_until(lambda: (status(node).get("read_only") == value, status(node).get("read_only")),
                        timeout_s, interval_s=0.05)


def app_connection(node):
    """A connection as the app's user."""
    return pymysql.connect(host="127.0.0.1", port=node.port, user="lab_app", password=APP_PASSWORD,
                           database="lab", autocommit=True, connect_timeout=5, read_timeout=10)


@pytest.fixture
def promoted(node):
    """The node promoted to writer (read_only off); fenced again afterwards."""
    code, body = act(node, "/promote", epoch=next_epoch(node))
    assert code == 200, body
    yield node
    act(node, "/fence", epoch=status(node)["epoch"])


def test_health_answers_come_from_the_cached_view(node):
    s = status(node)
    assert s["alive"] and s["read_only"] == 1 and not s["writable"]
    assert requests.get(node.agent_url + "/alive", timeout=5).status_code == 200
    assert requests.get(node.agent_url + "/write", timeout=5).status_code == 503


def test_actions_need_the_secret(node):
    code, body = act(node, "/promote", secret="wrong", epoch=next_epoch(node))
    assert code == 403 and "secret" in body["error"]
    assert status(node)["read_only"] == 1


@pytest.mark.parametrize("body", [
    pytest.param({}, id="no-epoch"), pytest.param({"epoch": "x"}, id="epoch-not-a-number"),
    pytest.param({"epoch": 1, "min_peer_stamp": "soon"}, id="stamp-not-a-number"),
])
def test_a_malformed_action_is_a_400_and_changes_nothing(node, body):
    code, _ = act(node, "/promote", **body)
    assert code == 400
    assert status(node)["read_only"] == 1


def test_a_promoted_writer_takes_writes_and_says_so(promoted):
    assert requests.get(promoted.agent_url + "/write", timeout=5).status_code == 200
    with app_connection(promoted) as c, c.cursor() as cur:
        cur.execute("INSERT INTO replication_probe (origin, token) VALUES ('unit', 'promoted')")


def test_a_writer_whose_lease_is_not_renewed_fences_itself(promoted):
    started = time.monotonic()
    wait_read_only(promoted, 1, timeout_s=LEASE_S + 3)
    assert time.monotonic() - started >= LEASE_S * 0.5, "fenced long before its lease ran out"


def test_renewing_the_lease_keeps_the_writer(promoted):
    epoch = status(promoted)["epoch"]
    for _ in range(int(LEASE_S * 3 / 0.2)):
        assert act(promoted, "/lease", epoch=epoch)[0] == 200
        time.sleep(0.2)
    assert status(promoted)["read_only"] == 0


def test_fencing_cuts_the_apps_sessions_and_turns_read_only_on(promoted):
    conn = app_connection(promoted)
    code, body = act(promoted, "/fence", epoch=status(promoted)["epoch"])
    assert code == 200 and body["gtid_binlog_pos"]
    with pytest.raises(pymysql.err.OperationalError):
        with conn.cursor() as cur:  # this session was killed
            cur.execute("INSERT INTO replication_probe (origin, token) VALUES ('unit', 'after-fence')")
    with app_connection(promoted) as c, c.cursor() as cur, pytest.raises(pymysql.err.OperationalError) as exc:
        cur.execute("INSERT INTO replication_probe (origin, token) VALUES ('unit', 'after-fence')")
    assert exc.value.args[0] == 1290, "a new session must meet read_only"


def test_an_action_from_an_older_epoch_is_refused(node):
    newer = next_epoch(node) + 5
    assert act(node, "/register", key=[newer, 0], record={"writer": "unit"})[0] == 200
    code, body = act(node, "/promote", epoch=newer - 1)
    assert code == 409 and "older" in body["error"]
    assert status(node)["read_only"] == 1


def test_a_promotion_that_could_miss_an_acknowledged_write_is_refused(node):
    # No heartbeat from a peer is newer than "now + 60 s": the bound cannot hold.
    code, body = act(node, "/promote", epoch=next_epoch(node), min_peer_stamp=time.time() + 60)
    assert code == 409 and "acknowledged writes may be missing" in body["error"]
    assert status(node)["read_only"] == 1


def test_the_record_keeps_only_newer_keys(node):
    epoch = next_epoch(node)
    assert act(node, "/register", key=[epoch, 3], record={"writer": "a"})[1]["accepted"]
    answer = act(node, "/register", key=[epoch, 2], record={"writer": "b"})[1]
    assert not answer["accepted"] and answer["record"] == {"writer": "a"}
    assert status(node)["register"]["record"] == {"writer": "a"}
