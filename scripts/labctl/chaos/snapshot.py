"""Reading the DB nodes for the checker: one snapshot, taken once the lab has healed.

The checker (chaos.checker) never touches a database; read_db() is the
only place the chaos suite reads one, and its result is the `snapshot`
whose format the checker's docstring describes.
"""
import concurrent.futures
import time

from labctl import dbnodes, progress, topology
from labha import gtid
from .checker import CHECKSUM_TABLES, DB_NODES


def _positions(node):
    """Return NODE's binlog GTID position as {domain: (server id, seq)}."""
    return gtid.parse(dbnodes.value(node, "SELECT @@gtid_binlog_pos") or "")


def _holds(pos, domain, want):
    """True when POS holds WANT ((server id, seq)) in DOMAIN: a later seq, or the same GTID.

    The same seq from another server is a different transaction under the
    same number (what gtid_strict_mode exists to refuse): not converged.
    """
    have = pos.get(domain, (0, 0))
    return have[1] > want[1] or have == want


def _wait_for_convergence(timeout_s):
    """Wait (bounded) until every node executed what both masters had logged; return (target, positions, reached)."""
    # Every node must have executed everything the sources had logged at
    # this moment in their app domains (numbered like their server ids;
    # heartbeats, in domains of their own, never stop moving).
    target = {}
    for source in topology.SOURCES:
        domain = topology.LAB.server_id(source)
        for node in topology.SOURCES:
            got = _positions(node).get(domain)
            if got is not None and got[1] >= target.get(domain, (0, 0))[1]:
                target[domain] = got
    positions, reached = {}, {}

    def converged():
        for node in DB_NODES:
            positions[node] = _positions(node)
            reached[node] = all(_holds(positions[node], d, want) for d, want in target.items())
        return all(reached.values()), dict(reached)

    try:
        progress.wait_until(converged, timeout_s, interval_s=0.2)
    except progress.Timeout:
        pass  # reported by the checker (nodes_converged) through `reached`
    return target, positions, reached


def _orders(node, names):
    """Return {order id: {"user_id", "username", "key", "items"}} of the users NAMES on NODE."""
    rows = dbnodes.query(node, f"""
        SELECT o.id, o.user_id, u.username, o.idempotency_key AS k, o.origin_server, o.origin_term,
               GROUP_CONCAT(i.product_id, ':', i.qty ORDER BY i.product_id) AS items
        FROM lab.orders o JOIN lab.users u ON u.id = o.user_id
        LEFT JOIN lab.order_items i ON i.order_id = o.id
        WHERE u.username IN ({names}) GROUP BY o.id""")
    return {int(r["id"]): {
        "user_id": int(r["user_id"]), "username": r["username"], "key": r["k"],
        "origin_server": None if r["origin_server"] is None else int(r["origin_server"]),
        "origin_term": None if r["origin_term"] is None else int(r["origin_term"]),
        "items": {int(p): int(q) for p, q in (x.split(":") for x in (r["items"] or "").split(",") if x)},
    } for r in rows}


def _invoices(node, names):
    """Return {order id: {"order_total", "invoiced", "attempt"}} of the users NAMES' orders on NODE."""
    rows = dbnodes.query(node, f"""
        SELECT o.id, o.total_cents, i.total_cents AS invoiced, i.attempt
        FROM lab.orders o JOIN lab.users u ON u.id = o.user_id LEFT JOIN lab.invoices i ON i.order_id = o.id
        WHERE u.username IN ({names})""")
    return {int(r["id"]): {"order_total": int(r["total_cents"]),
                           "invoiced": None if r["invoiced"] is None else int(r["invoiced"]),
                           "attempt": None if r["attempt"] is None else int(r["attempt"])} for r in rows}


def _orphan_invoices(node):
    rows = dbnodes.query(node, "SELECT i.order_id FROM lab.invoices i LEFT JOIN lab.orders o ON o.id = i.order_id"
                               " WHERE o.id IS NULL")
    return [int(r["order_id"]) for r in rows]


def _queue_drained(timeout_s):
    """Wait (bounded) until the writer's job queue holds nothing queued or running; return what is left."""
    def drained():
        left = {r["state"]: int(r["n"]) for r in dbnodes.query(
            topology.USUAL_WRITER, "SELECT state, COUNT(*) AS n FROM lab.jobs"
                                   " WHERE state IN ('queued', 'running') GROUP BY state")}
        return not left, left

    try:
        progress.wait_until(drained, timeout_s, interval_s=0.2)
        left = {}
    except progress.Timeout as exc:
        left = exc.detail
    parked = dbnodes.query(topology.USUAL_WRITER, "SELECT id, kind, order_id, attempts, last_error FROM lab.jobs"
                                                  " WHERE state = 'parked'")
    return {"drained": not left, "left": left, "parked": parked}


def _checksums(node):
    """Return {table: checksum} of every table in CHECKSUM_TABLES on NODE."""
    rows = dbnodes.query(node, "CHECKSUM TABLE " + ", ".join(f"lab.{t}" for t in CHECKSUM_TABLES) + " EXTENDED")
    return {r["Table"].split(".")[-1]: r["Checksum"] for r in rows}


def _checksums_agreeing(timeout_s=10):
    """Every node's checksums, read at once; again (bounded) until they agree.

    Someone else may be writing meanwhile (the console's probe updates its
    session row twice a second): a round that straddles a write differs
    for a moment, a diverged node differs in every round. The last round
    is returned either way, and nodes_converged judges it.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(DB_NODES)) as pool:
        def agree():
            sums = dict(zip(DB_NODES, pool.map(_checksums, DB_NODES)))
            return len({tuple(sorted(c.items())) for c in sums.values()}) == 1, sums
        try:
            return progress.wait_until(agree, timeout_s, interval_s=0.2)
        except progress.Timeout as exc:
            return exc.detail


def read_db(usernames, timeout_s=60):
    """Snapshot what the DB nodes hold for USERNAMES, after waiting (bounded) for convergence."""
    # The workers finish the jobs of the run first: convergence then covers their writes too.
    queue = _queue_drained(timeout_s)
    target, positions, reached = _wait_for_convergence(timeout_s)
    names = ",".join(f"'{n}'" for n in usernames)
    user_ids = {r["username"]: int(r["id"]) for r in
                dbnodes.query(topology.USUAL_WRITER, f"SELECT id, username FROM lab.users WHERE username IN ({names})")}
    return {"user_ids": user_ids,
            "orders": {node: _orders(node, names) for node in DB_NODES},
            "invoices": {node: _invoices(node, names) for node in DB_NODES},
            "orphan_invoices": {node: _orphan_invoices(node) for node in DB_NODES},
            "queue": queue,
            "checksums": _checksums_agreeing(),
            "target": target, "positions": positions, "reached": reached, "read_at": time.time()}
