"""GTID positions (MariaDB's domain-server-seq lists), the one place they are parsed and compared.

A position is {domain: (server_id, seq)}: per replication domain, the last
transaction. Each DB node writes its app data in the domain numbered like
its server id, and its heartbeats in HEARTBEAT_DOMAIN_BASE + server id
(mysql/bin/db-heartbeat), so that a writer's cut-off at a promotion counts
app writes only.
"""

HEARTBEAT_DOMAIN_BASE = 100


def own_domains(server_id):
    """The GTID domains a node writes itself: its app domain and its heartbeat domain."""
    return (server_id, HEARTBEAT_DOMAIN_BASE + server_id)


def parse(text):
    """Return {domain: (server_id, seq)} from a GTID list such as '1-1-13,2-2-9'."""
    out = {}
    for item in filter(None, (text or "").replace("\n", "").split(",")):
        domain, server, seq = (int(x) for x in item.strip().split("-"))
        if domain not in out or seq > out[domain][1]:
            out[domain] = (server, seq)
    return out


def format(pos):  # noqa: A001 - the inverse of parse
    """Return the GTID list of POS, domains in order."""
    return ",".join(f"{d}-{s}-{q}" for d, (s, q) in sorted(pos.items()))


def seqs(pos):
    """Return {domain: seq} of POS."""
    return {d: q for d, (_, q) in pos.items()}


def covers(a, b, domains=None):
    """True when position A holds everything in B (in DOMAINS only, when given)."""
    return all(a.get(d, (0, 0))[1] >= q for d, (_, q) in b.items() if domains is None or d in domains)


def union(*positions):
    """Return the position that is the newest of POSITIONS in every domain."""
    out = {}
    for pos in positions:
        for d, (s, q) in (pos or {}).items():
            if d not in out or q > out[d][1]:
                out[d] = (s, q)
    return out


def app_domains(pos):
    """Return POS without the heartbeat domains."""
    return {d: v for d, v in pos.items() if d < HEARTBEAT_DOMAIN_BASE}


def without(pos, domains):
    """Return POS without DOMAINS."""
    return {d: v for d, v in pos.items() if d not in domains}
