"""The lab stands up: the topology, its networks, its VIPs and its replication."""
import pytest

from labctl import containers, replication, status
from labtest import addresses, app_sql, can_connect, probe_count, wait_for_probe, write_probe

WEB_NODES = {"web1", "web2", "web3"}
DB_NODES = ("master1", "master2", "slave1")


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
    vip, holders = status.vip_holders(role)
    assert vip
    assert len(holders) == 1, f"{vip} held by {holders}"


@pytest.mark.parametrize("origin, others", [
    pytest.param("master1", ("master2", "slave1"), id="from-master1"),
    pytest.param("master2", ("master1", "slave1"), id="from-master2"),
])
def test_a_row_written_on_one_master_reaches_the_other_nodes(lab, probe_token, origin, others):
    write_probe(origin, probe_token)
    for node in others:
        wait_for_probe(node, probe_token)


def test_the_replica_refuses_writes_from_the_app_user(lab, probe_token):
    server_id, error = app_sql(
        3307, f"INSERT INTO replication_probe (origin, token) VALUES ('app', '{probe_token}')")
    assert server_id == 3, "the read port should lead to slave1 while it is healthy"
    assert error == 1290, "slave1 must refuse the app's write (read_only, ER_OPTION_PREVENTS_STATEMENT)"
    assert probe_count("slave1", probe_token) == 0


def test_the_write_port_leads_to_a_writable_master(lab, probe_token):
    server_id, error = app_sql(
        3306, f"INSERT INTO replication_probe (origin, token) VALUES ('app', '{probe_token}')")
    assert server_id in (1, 2)
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
        ("master1", 3306), ("master2", 3306), ("slave1", 3306), ("web1", 8000), ("memcached1", 11211),
        ("dblb1", 3306))],
    *[("admin", target, port) for target, port in (
        ("master1", 3306), ("slave1", 3306), ("web1", 8000), ("memcached1", 11211), ("dblb1", 3306),
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
    unhealthy = [(n, h) for n, _, h in status.nodes() if h != "healthy"]
    assert not unhealthy
    broken = [l for l in replication.links() if not l.running]
    assert not broken
