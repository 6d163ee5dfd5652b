"""The lab stands up: the topology, its networks, its VIPs and its replication."""
import json
import os
import subprocess
import sys

import pytest

from labctl import containers, ha, settings, status, topology
from labctl.containers import addresses
from labtest import app_sql, can_connect, probe_count, wait_for_probe, write_probe

WEB_NODES = set(topology.WEB_NODES)
DB_NODES = topology.DB_NODES


def test_site_answers_through_the_gateway_with_the_serving_node(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.headers["X-Served-By"] in WEB_NODES


def test_session_counter_lives_in_mysql_and_survives_a_change_of_web_node(client):
    first = client.get("/")
    assert first.status_code == 200
    assert first.json()["visits"] == 1
    node = first.headers["X-Served-By"]
    # Forget the LB's sticky cookie until another web node serves us: the
    # count must go on, because the session is in MySQL, not in the node.
    visits, served = 1, {node}
    for _ in range(30):
        client.cookies.set("LABLB", None)
        r = client.get("/")
        assert r.status_code == 200
        visits += 1
        assert r.json()["visits"] == visits
        served.add(r.headers["X-Served-By"])
        if len(served) > 1:
            break
    assert len(served) > 1, f"every request went to {node}; round robin expected"


def test_the_lb_gives_every_request_its_own_id_whatever_the_client_sends(client):
    # The app counts a visit once per id (an LB retry keeps it): a client
    # must not be able to choose it, or to reuse one to freeze the counter.
    first = client.get("/", headers={"X-Request-ID": "chosen"}).json()["visits"]
    second = client.get("/", headers={"X-Request-ID": "chosen"}).json()["visits"]
    assert second == first + 1


def test_sticky_cookie_keeps_a_user_on_one_web_node(client):
    nodes = {client.get("/").headers["X-Served-By"] for _ in range(10)}
    assert len(nodes) == 1
    token = client.cookies.get("LABLB")
    assert token and not any(name in token for name in WEB_NODES) and "." not in token


@pytest.mark.parametrize("role", ["lb", "dblb"])
def test_exactly_one_node_of_each_lb_pair_holds_the_vip(lab, role):
    vip, holders = topology.vip_holders(role)
    # The pair's own labels (set by compose) name the same VIP the topology does.
    assert {c.labels["lab.vip"] for c in containers.find(role=role)} == {vip}
    assert len(holders) == 1, f"{vip} held by {holders}"


@pytest.mark.parametrize("origin, others", [
    pytest.param(source, tuple(n for n in topology.DB_NODES if n != source), id=f"from-{source}")
    for source in topology.SOURCES
])
def test_a_row_written_on_one_source_reaches_the_other_nodes(lab, probe_token, origin, others):
    write_probe(origin, probe_token)
    for node in others:
        wait_for_probe(node, probe_token)


def test_the_replica_refuses_writes_from_the_app_user(lab, probe_token):
    server_id, error = app_sql(
        3307, f"INSERT INTO replication_probe (origin, token) VALUES ('app', '{probe_token}')")
    [replica] = topology.REPLICAS
    assert server_id == topology.LAB.server_id(replica), f"the read port should lead to {replica} while it is healthy"
    assert error == 1290, f"{replica} must refuse the app's write (read_only, ER_OPTION_PREVENTS_STATEMENT)"
    assert probe_count(replica, probe_token) == 0


def test_the_write_port_leads_to_the_writable_source(lab, probe_token):
    server_id, error = app_sql(
        3306, f"INSERT INTO replication_probe (origin, token) VALUES ('app', '{probe_token}')")
    assert server_id == topology.LAB.server_id(topology.writers()[0])
    assert error is None
    for node in DB_NODES:
        wait_for_probe(node, probe_token)


@pytest.mark.parametrize("db_node", DB_NODES)
def test_a_web_node_cannot_reach_a_mariadb_node_directly(lab, db_node):
    for address in addresses(db_node):
        assert not can_connect("web1", address, 3306), f"web1 reached {db_node} at {address}"


@pytest.mark.parametrize("port", [3306, 3307])
def test_a_web_node_reaches_the_db_vip(lab, port):
    vip = containers.get("dblb1").labels["lab.vip"]
    assert can_connect("web1", vip, port)


# Who must not reach what: the gateway reaches only the web LBs; the
# operators' console (admin) only the LBs' stats ports.
UNREACHABLE = [
    *[("gateway", target, port) for target, port in (
        *[(n, 3306) for n in topology.DB_NODES], ("web1", 8000), ("memcached1", 11211), ("dblb1", 3306))],
    *[("admin", target, port) for target, port in (
        *[(n, 3306) for n in topology.DB_NODES], ("web1", 8000), ("memcached1", 11211), ("dblb1", 3306),
        ("lb1", 80))],
]


@pytest.mark.parametrize("source, target, port",
                         [pytest.param(*case, id=f"{case[0]}-{case[1]}-{case[2]}") for case in UNREACHABLE])
def test_a_node_cannot_reach_what_its_tier_must_not(lab, source, target, port):
    for address in addresses(target):
        assert not can_connect(source, address, port), f"{source} reached {target}:{port} at {address}"


def test_the_gateway_reaches_the_web_vip(lab):
    vip = containers.get("lb1").labels["lab.vip"]
    assert can_connect("gateway", vip, 80)


def test_only_loopback_ports_are_published(lab):
    for c in containers.find():
        for bindings in (c.attrs["NetworkSettings"]["Ports"] or {}).values():
            for binding in bindings or []:
                assert binding["HostIp"] == "127.0.0.1", f"{containers.node_of(c)} publishes {binding}"


def test_every_node_is_healthy_and_every_replication_link_runs(lab):
    state = status.collect()
    assert not [n for n in state["nodes"] if n["health"] != "healthy"]
    assert not [link for link in state["links"] if link["state"] != "running"]
    assert {(link["source"], link["replica"]) for link in state["links"]} == set(topology.LINKS)
    assert state["healthy"] and len(state["writers"]) == 1


def test_status_json_is_the_state_a_script_can_read(lab):
    out = subprocess.run([sys.executable, "-m", "labctl", "status", "--json"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(settings.ROOT / "scripts")}, timeout=60)
    assert out.returncode == 0, out.stderr
    state = json.loads(out.stdout)
    assert {n["node"] for n in state["nodes"]} >= set(topology.DB_NODES) | set(topology.WEB_NODES[:3])
    assert state["vips"]["lb"]["vip"] == topology.VIPS["lb"] and len(state["vips"]["lb"]["holders"]) == 1
    # The writer it names is the holder of the leader key in etcd, and what the db LBs route writes to.
    assert state["writers"] == [ha.cluster()["leader"]] == [state["write_path"]["leader"]]
    assert all(ha.routed(lb) == state["writers"] for lb in topology.LB_PAIRS["dblb"])
