"""Render the topology's parts of compose/docker-compose.yml from labctl/topology.py.

The compose file stays a readable, commented file; only the blocks between
`# <topology:NAME>` and `# </topology:NAME>` are generated: the node names
the LBs and the decider are given, the web and DB node services, and the
DB nodes' volumes. `make up` rewrites them when topology.py changed, and
tests/unit/test_one_topology.py fails when the committed file is stale.
"""
import re

from . import progress, settings, topology

# Compose substitutes it, so the file works for any LAB_NET.
NET = "${LAB_NET:-172.28}"
# A read replica's relay logs: a volume small enough for the chaos suite to fill.
RELAY_DIR = "/var/lib/mysql-relay"
RELAY_VOLUME = "64m"
BLOCK = re.compile(r"^(?P<indent>[ ]*)# <topology:(?P<name>[\w-]+)>.*?\n(?P<body>.*?)^[ ]*# </topology:(?P=name)>",
                   re.M | re.S)


def _names(t):
    return [
        "x-topology:",
        f'  web-nodes: &web-node-names "{",".join(t.web_nodes)}"',
        f'  db-sources: &db-sources "{",".join(t.sources)}"',
        f'  db-replicas: &db-replicas "{",".join(t.replicas)}"',
        f'  db-nodes: &db-nodes "{t.db_nodes_spec(NET)}"',
        f'  db-cluster: &db-cluster "{t.db_cluster}"',
        f'  dcs-endpoints: &dcs-endpoints "{t.dcs_endpoints(NET)}"',
        f'  dcs-peers: &dcs-peers "{t.dcs_peers(NET)}"',
        f'  web-vip: &web-vip "{NET}.{topology.VIP_SUFFIXES["lb"]}"',
        f'  db-vip: &db-vip "{NET}.{topology.VIP_SUFFIXES["dblb"]}"',
    ]


def _scaled(names, standard, anchor, role):
    """Services NAMES of ANCHOR; those past the first STANDARD start only with `make scale` (profile "scale")."""
    lines = []
    for i, node in enumerate(names):
        lines += [f"  {node}:", f"    <<: *{anchor}"]
        if i >= standard:
            lines.append("    profiles: [scale]")
        lines += [f"    labels: {{lab.role: {role}, lab.node: {node}}}",
                  f"    environment: {{<<: *web-env, LAB_NODE: {node}}}", ""]
    return lines[:-1]


def _web_nodes(t):
    return _scaled(t.web_nodes, t.standard_web_nodes, "web-node", "web")


def _workers(t):
    return _scaled(t.workers, t.standard_workers, "worker-node", "worker")


def _db_nodes(t):
    lines = []
    for node in t.db_nodes:
        source = node in t.sources
        env = f'<<: *db-env, LAB_NODE: {node}, DB_ROLE: {"source" if source else "replica"}, ' \
              f'DB_SERVER_ID: "{t.server_id(node)}"'
        if not source:   # a read replica's relay logs on a small volume of their own (chaos: fill-replica-relay-volume)
            env += f", DB_RELAY_DIR: {RELAY_DIR}"
        lines += [
            f"  {node}:",
            "    <<: *db-node",
            f"    labels: {{lab.role: {'db-source' if source else 'db-replica'}, lab.node: {node}}}",
            f"    environment: {{{env}}}",
            "    networks:",
            f'      db: {{ipv4_address: "{t.db_address(node, NET)}"}}',
            "      dcs: {}",
            f'    volumes: ["{node}-data:/var/lib/mysql"]',
        ]
        if not source:
            lines.append(f'    tmpfs: ["/run/lab", "{RELAY_DIR}:size={RELAY_VOLUME}"]')
        lines.append("")
    return lines[:-1]


def _dcs_members(t):
    lines = []
    for member in t.dcs_members:
        lines += [
            f"  {member}:",
            "    <<: *dcs-member",
            f"    labels: {{lab.role: etcd, lab.node: {member}}}",
            f'    environment: {{<<: *dcs-env, LAB_NODE: {member}, DCS_SELF: "{t.dcs_address(member, NET)}"}}',
            "    networks:",
            f'      dcs: {{ipv4_address: "{t.dcs_address(member, NET)}"}}',
            f'    volumes: ["{member}-data:/var/lib/etcd"]',
            "",
        ]
    return lines[:-1]


def _volumes(t):
    return [f"  {node}-data:" for node in t.db_nodes + t.dcs_members]


RENDERERS = {"names": _names, "web-nodes": _web_nodes, "workers": _workers, "dcs-members": _dcs_members, "db-nodes": _db_nodes,
             "volumes": _volumes}


def render(text, t=topology.LAB):
    """Return TEXT (a compose file) with every topology block rendered from T."""
    def block(m):
        body = "\n".join(RENDERERS[m.group("name")](t))
        start, end = m.group(0).split("\n", 1)[0], m.group(0).rsplit("\n", 1)[1]
        return f"{start}\n{body}\n{end}"
    rendered, count = BLOCK.subn(block, text)
    if count != len(RENDERERS):
        raise ValueError(f"{settings.COMPOSE_FILE} has {count} topology blocks, expected {len(RENDERERS)}")
    return rendered


def write():
    """Bring compose/docker-compose.yml in line with topology.py; return True when it changed."""
    current = settings.COMPOSE_FILE.read_text(encoding="utf-8")
    rendered = render(current)
    if rendered == current:
        return False
    settings.COMPOSE_FILE.write_text(rendered, encoding="utf-8")
    progress.ok(f"{settings.COMPOSE_FILE.relative_to(settings.ROOT)}: nodes rendered from scripts/labctl/topology.py")
    return True
