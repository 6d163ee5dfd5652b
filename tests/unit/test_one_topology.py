"""The lab's facts live in one place (scripts/labctl/topology.py): compose, HAProxy and labctl agree.

No lab needed: compose is read as YAML, HAProxy's server lists are rendered
by the LBs' own script (haproxy/bin/lb-servers) from compose's environment.
The last tests make the one-line changes a user would make (a ninth web
node; a renamed source) in a copy of the repository, and check that every
layer follows.
"""
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from labctl import composegen, haproxy, operations, replication, settings, topology
from labctl.__main__ import _parser

ROOT = settings.ROOT


def load_lb_servers(root=ROOT):
    """Import haproxy/bin/lb-servers (a script without .py) as a module."""
    path = str(root / "haproxy" / "bin" / "lb-servers")
    spec = importlib.util.spec_from_loader("lb_servers", importlib.machinery.SourceFileLoader("lb_servers", path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compose_of(root=ROOT):
    return yaml.safe_load((root / "compose" / "docker-compose.yml").read_text())


def by_role(compose, role):
    return [name for name, svc in compose["services"].items() if svc.get("labels", {}).get("lab.role") == role]


def expanded(value):
    """VALUE with compose's default for LAB_NET filled in, as compose passes it."""
    return str(value).replace("${LAB_NET:-172.28}", "172.28")


def servers(root, mode, env, monkeypatch):
    """The server names, per backend, that an LB of MODE gets from compose's environment ENV.

    Web nodes are reached through Docker's DNS by their own names; DB nodes
    by their fixed addresses (as the topology gives them).
    """
    for var in ("LB_WEB_NODES", "DB_SOURCES", "DB_REPLICAS", "DB_NODES"):
        monkeypatch.setenv(var, expanded(env.get(var, "")))
    text = load_lb_servers(root).render((root / "haproxy" / "conf" / f"{mode}.cfg").read_text())
    addresses = {item.split(":")[0]: item.split(":")[2] for item in expanded(env.get("DB_NODES", "")).split(",")
                 if item}
    found, backend = {}, None
    for line in text.splitlines():
        if line.startswith("backend "):
            backend = line.split()[1]
        m = re.match(r"\s+server (\S+) (\S+):(\d+)(.*)", line)
        if m and m.group(1) != "via-peer":
            assert m.group(2) == addresses.get(m.group(1), m.group(1)), line
            found.setdefault(backend, []).append((m.group(1), "backup" in m.group(4)))
    return found


def test_the_committed_compose_file_is_rendered_from_the_topology():
    text = settings.COMPOSE_FILE.read_text()
    assert composegen.render(text) == text, "compose is stale: run `make up` (or composegen.write())"


def test_compose_runs_the_topology_s_nodes_with_their_roles():
    compose = compose_of()
    assert by_role(compose, "web") == list(topology.WEB_NODES)
    standard = [n for n in topology.WEB_NODES if "profiles" not in compose["services"][n]]
    assert standard == list(topology.WEB_NODES[:topology.STANDARD_WEB_NODES])
    assert by_role(compose, "db-source") == list(topology.SOURCES)
    assert by_role(compose, "db-replica") == list(topology.REPLICAS)
    assert by_role(compose, "memcached") == list(topology.MEMCACHED_NODES)
    for role, pair in topology.LB_PAIRS.items():
        assert by_role(compose, role) == list(pair)
        for lb in pair:
            assert compose["services"][lb]["labels"]["lab.vip"].endswith(topology.VIP_SUFFIXES[role])
    assert by_role(compose, "etcd") == list(topology.DCS_MEMBERS)
    assert set(compose["volumes"]) == {f"{n}-data" for n in topology.DB_NODES + topology.DCS_MEMBERS}


def test_each_db_node_s_identity_address_and_cluster_come_from_the_topology():
    compose = compose_of()
    spec = expanded(compose["services"]["dblb1"]["environment"]["DB_NODES"])
    nodes = {name: (int(sid), address) for name, sid, address in (item.split(":") for item in spec.split(","))}
    assert list(nodes) == list(topology.DB_NODES)
    assert len({sid for sid, _ in nodes.values()}) == len(nodes), "server ids (and GTID domains) must differ"
    endpoints = {expanded(compose["services"][m]["networks"]["dcs"]["ipv4_address"]) + ":2379"
                 for m in topology.DCS_MEMBERS}
    for node in topology.DB_NODES:
        svc = compose["services"][node]
        env = svc["environment"]
        assert env["LAB_NODE"] == node and int(env["DB_SERVER_ID"]) == nodes[node][0]
        assert expanded(svc["networks"]["db"]["ipv4_address"]) == nodes[node][1]
        assert env["DB_ROLE"] == ("source" if node in topology.SOURCES else "replica")
        # The HA loop knows the same nodes, its cluster, and every etcd member.
        assert expanded(env["DB_NODES"]) == spec and env["DB_SOURCES"] == ",".join(topology.SOURCES)
        assert env["DB_CLUSTER"] == topology.DB_CLUSTER
        assert set(expanded(env["DCS_ENDPOINTS"]).split(",")) == endpoints
        assert "dcs" in svc["networks"], f"{node} must reach etcd"


def test_haproxy_balances_over_the_topology_s_nodes(monkeypatch):
    compose = compose_of()
    for lb in topology.LB_PAIRS["lb"]:
        got = servers(ROOT, "lb", compose["services"][lb]["environment"], monkeypatch)
        # The ready nodes' backend, and the same nodes checked for life only (served when none is ready).
        assert got == {b: [(n, False) for n in topology.WEB_NODES] for b in haproxy.WEB_BACKENDS}
    for dblb in topology.LB_PAIRS["dblb"]:
        got = servers(ROOT, "dblb", compose["services"][dblb]["environment"], monkeypatch)
        assert got["sources"] == [(n, False) for n in topology.SOURCES]
        assert got["replicas"] == [(n, False) for n in topology.REPLICAS] + [(n, True) for n in topology.SOURCES]


def test_lb_servers_refuses_a_missing_or_malformed_node_list(monkeypatch):
    lb_servers = load_lb_servers()
    monkeypatch.delenv("LB_WEB_NODES", raising=False)
    with pytest.raises(SystemExit, match="LB_WEB_NODES is empty"):
        lb_servers.render("    # lb-servers: web\n")
    monkeypatch.setenv("LB_WEB_NODES", "web1,web2 backup")
    with pytest.raises(SystemExit, match="bad node name"):
        lb_servers.render("    # lb-servers: web\n")


def test_labctl_uses_the_topology():
    assert operations.WEB_NODES == topology.WEB_NODES
    assert {(s, r) for r, ss in topology.REPLICATION_LINKS.items() for s in ss} == set(topology.LINKS)
    assert topology.REPLICATION_LINKS[topology.REPLICAS[0]] == topology.SOURCES
    assert replication.topology is topology
    args = _parser().parse_args(["promote", topology.SOURCES[1]])
    assert args.node == topology.SOURCES[1]
    with pytest.raises(SystemExit):
        _parser().parse_args(["promote", topology.REPLICAS[0]])  # a replica never takes writes


# The one-line changes, made in a copy of the repository's topology and
# configuration: compose, HAProxy and labctl must all follow.
PROBE = """
import json
from labctl import composegen, operations, topology
composegen.write()
print(json.dumps({"web": operations.WEB_NODES, "links": topology.LINKS, "writer": topology.USUAL_WRITER}))
"""


def changed_copy(tmp_path, old, new):
    """Copy what the topology drives into TMP_PATH, replace the line OLD by NEW in topology.py; return
    (root, what labctl says)."""
    root = tmp_path / "lab"
    for part in ("scripts/labctl", "compose", "haproxy"):
        shutil.copytree(ROOT / part, root / part)
    source = root / "scripts" / "labctl" / "topology.py"
    text = source.read_text()
    assert text.count(old) == 1, f"{old!r} should be one line of topology.py"
    source.write_text(text.replace(old, new))
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(root / "scripts")})
    assert out.returncode == 0, out.stderr
    return root, json.loads(out.stdout.splitlines()[-1])


def test_a_ninth_web_node_is_one_line(tmp_path, monkeypatch):
    root, said = changed_copy(tmp_path, "WEB_NODE_COUNT = 8\n", "WEB_NODE_COUNT = 9\n")
    nine = [f"web{i}" for i in range(1, 10)]
    compose = compose_of(root)
    assert by_role(compose, "web") == nine
    assert compose["services"]["web9"]["profiles"] == ["scale"]
    assert compose["services"]["web9"]["environment"]["LAB_NODE"] == "web9"
    assert servers(root, "lb", compose["services"]["lb1"]["environment"], monkeypatch) == {
        b: [(n, False) for n in nine] for b in haproxy.WEB_BACKENDS}
    assert said["web"] == nine


def test_renaming_a_source_is_one_line(tmp_path, monkeypatch):
    root, said = changed_copy(tmp_path, 'SOURCES = ("master1", "master2")\n', 'SOURCES = ("primary", "master2")\n')
    compose = compose_of(root)
    assert "master1" not in compose["services"] and "master1-data" not in compose["volumes"]
    assert by_role(compose, "db-source") == ["primary", "master2"]
    assert compose["services"]["master2"]["environment"]["DB_SOURCES"] == "primary,master2"
    assert compose["services"]["primary"]["volumes"] == ["primary-data:/var/lib/mysql"]
    dblb = compose["services"]["dblb1"]["environment"]
    assert dblb["DB_NODES"].startswith("primary:1:") and dblb["DB_SOURCES"] == "primary,master2"
    got = servers(root, "dblb", dblb, monkeypatch)
    assert got["sources"] == [("primary", False), ("master2", False)]
    assert ("primary", True) in got["replicas"]
    assert said["writer"] == "primary"
    assert ["primary", "slave1"] in said["links"] and ["master2", "primary"] in said["links"]
    config = [line for line in (root / "compose" / "docker-compose.yml").read_text().splitlines()
              if not line.lstrip().startswith("#")]
    assert not [line for line in config if "master1" in line]
