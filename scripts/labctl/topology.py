"""The lab's topology in one place: nodes, roles, addresses, VIPs, replication links.

Everything else reads it from here. Compose's web and DB node services are
rendered from it into compose/docker-compose.yml (between the `topology:`
markers; `make up` rewrites them when this file changed), the LBs get their
server lists through compose's environment (LB_WEB_NODES, DB_SOURCES,
DB_REPLICAS, rendered into HAProxy's config by haproxy/bin/lb-servers), and
labctl, `make bench` and the tests import the names below. So adding a web
node is the one line `WEB_NODE_COUNT`, and renaming a master one name in
`SOURCES` (tests/unit/test_one_topology.py renders both changes and checks that
compose, HAProxy and labctl agree).

The lecture's words and ours: the lectures say master and slave; the code
says source (a master: takes writes when promoted) and replica (a slave:
read-only, for reads). The node names keep the lecture's words.

The live state (who holds a VIP, who takes writes) is asked of the running
containers: `vip_holders()` and `writers()`.
"""
from dataclasses import dataclass, field

import docker

from . import containers, dbnodes, settings

# The web tier: web1..webN. The first STANDARD_WEB_NODES run after `make up`;
# the rest are started by `make scale WEB=n` (compose profile "scale").
WEB_NODE_COUNT = 8
STANDARD_WEB_NODES = 3

# The DB tier: two sources replicating from each other (master-master; one
# takes writes at a time, chosen by the db LBs), and read replicas that pull
# from both, so they keep receiving every write while either source is down.
SOURCES = ("master1", "master2")
REPLICAS = ("slave1",)

# The job queue's workers (app/labapp/worker.py): worker1..N, the first
# STANDARD_WORKERS after `make up`, the rest with `make scale WORKERS=n`.
WORKER_COUNT = 4
STANDARD_WORKERS = 2

MEMCACHED_NODES = ("memcached1", "memcached2")
# The consensus store of the write path: three etcd members (a majority
# survives one lost), holding each DB cluster's leader key (mysql/ha/).
DCS_MEMBERS = ("etcd1", "etcd2", "etcd3")
# The DB cluster's name in etcd (its keys live under /scalelab/clusters/<name>/).
DB_CLUSTER = "a-m"
# LB pairs: role -> (first, second); the first starts with the higher priority.
LB_PAIRS = {"lb": ("lb1", "lb2"), "dblb": ("dblb1", "dblb2")}


@dataclass(frozen=True)
class Topology:
    """The lab's shape; `LAB` below is the one the lab runs (tests render others)."""
    web_node_count: int = WEB_NODE_COUNT
    standard_web_nodes: int = STANDARD_WEB_NODES
    worker_count: int = WORKER_COUNT
    standard_workers: int = STANDARD_WORKERS
    sources: tuple = SOURCES
    replicas: tuple = REPLICAS
    dcs_members: tuple = DCS_MEMBERS
    db_cluster: str = DB_CLUSTER
    lb_pairs: dict = field(default_factory=lambda: dict(LB_PAIRS))

    @property
    def web_nodes(self):
        """Every web node the LBs know, in order: web1..webN."""
        return tuple(f"web{i}" for i in range(1, self.web_node_count + 1))

    @property
    def workers(self):
        """Every job worker, in order: worker1..N."""
        return tuple(f"worker{i}" for i in range(1, self.worker_count + 1))

    @property
    def db_nodes(self):
        """Every MariaDB node: the sources, then the replicas."""
        return self.sources + self.replicas

    @property
    def usual_writer(self):
        """The source that takes writes after `make up` and `make failback`."""
        return self.sources[0]

    @property
    def replication_links(self):
        """Replica -> the sources it pulls from (a source is the other source's replica)."""
        links = {s: tuple(o for o in self.sources if o != s) for s in self.sources}
        links.update({r: self.sources for r in self.replicas})
        return links

    @property
    def links(self):
        """Every (source, replica) replication link."""
        return [(s, r) for r, sources in self.replication_links.items() for s in sources]

    def server_id(self, node):
        """NODE's MariaDB server_id and GTID domain: its place among the DB nodes, from 1."""
        return self.db_nodes.index(node) + 1

    def db_address(self, node, lab_net="${LAB_NET:-172.28}"):
        """NODE's fixed address on the db network (HAProxy and the HA loops reach it without DNS)."""
        return f"{lab_net}.4.{20 + self.server_id(node)}"

    def dcs_address(self, member, lab_net="${LAB_NET:-172.28}"):
        """MEMBER's fixed address on the dcs network (etcd's peers and clients reach it without DNS)."""
        return f"{lab_net}.6.{31 + self.dcs_members.index(member)}"

    def db_nodes_spec(self, lab_net="${LAB_NET:-172.28}"):
        """Every DB node as name:server_id:address, comma-separated (what db-ha and lb-servers read)."""
        return ",".join(f"{n}:{self.server_id(n)}:{self.db_address(n, lab_net)}" for n in self.db_nodes)

    def dcs_endpoints(self, lab_net="${LAB_NET:-172.28}"):
        """Every etcd member's client address, comma-separated."""
        return ",".join(f"{self.dcs_address(m, lab_net)}:2379" for m in self.dcs_members)

    def dcs_peers(self, lab_net="${LAB_NET:-172.28}"):
        """etcd's --initial-cluster: every member's name and peer URL."""
        return ",".join(f"{m}=http://{self.dcs_address(m, lab_net)}:2380" for m in self.dcs_members)


LAB = Topology()
WEB_NODES = LAB.web_nodes
WORKERS = LAB.workers
DB_NODES = LAB.db_nodes
USUAL_WRITER = LAB.usual_writer
REPLICATION_LINKS = LAB.replication_links
LINKS = LAB.links
# The VIPs, after the first two octets (LAB_NET): the web VIP on the edge
# network, the db VIP on the app network.
VIP_SUFFIXES = {"lb": "1.100", "dblb": "3.100"}
VIPS = {role: f"{settings.LAB_NET}.{suffix}" for role, suffix in VIP_SUFFIXES.items()}


def vip_holders(role):
    """Return (vip, [nodes holding it]) for the LB pair of ROLE ('lb' or 'dblb')."""
    vip, holders = VIPS[role], []
    for c in containers.find(role=role):
        try:
            code, out = containers.sh(c, ["ip", "-o", "-4", "addr", "show"])
        except docker.errors.APIError:  # stopped since it was listed: holds nothing
            continue
        if code == 0 and f" {vip}/" in out:
            holders.append(containers.node_of(c))
    return vip, holders


# A source takes writes while read_only is off and its writer's lease (kept
# in ha.lease by its HA loop, mysql/ha/) is valid by its own clock: past the
# deadline its dead-man switch turns read_only on within milliseconds, and
# it can acknowledge no commit meanwhile.
WRITABLE_SQL = ("SELECT @@global.read_only = 0 AND IFNULL((SELECT deadline > UTC_TIMESTAMP(6) FROM ha.lease"
                " WHERE id = 1), 0)")


def writers():
    """Return the sources that take writes; normally exactly one."""
    out = []
    for node in SOURCES:
        try:
            if dbnodes.value(node, WRITABLE_SQL) == "1":
                out.append(node)
        except dbnodes.DbError:
            pass
    return out
