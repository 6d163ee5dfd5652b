"""The checker: judges a history against what the databases hold afterwards.

check() is a pure function of the history and of a snapshot of the DB
nodes (read_db()), so it can be tested on made-up histories. Like Jepsen's
checkers it returns validity, counts, and for every failed check its first
bad example.

Indeterminate writes are not guessed at: for each user the checker keeps
the set of carts that the history allows (an indeterminate add may or may
not have happened), and an order placed by an indeterminate checkout may
exist once or not at all.
"""
import time
from dataclasses import dataclass, field

from labctl import dbnodes, progress

DB_NODES = ("master1", "master2", "slave1")
CHECKSUM_TABLES = ("users", "products", "orders", "order_items")
MAX_STATES = 256
WRITES = ("add", "remove", "checkout")


@dataclass
class Verdict:
    """The checker's result for one scenario."""
    valid: bool = True
    checks: dict = field(default_factory=dict)     # name -> {"ok": bool, "first_error": str, ...}
    counts: dict = field(default_factory=dict)

    def add(self, name, errors, **extra):
        """Record check NAME with its list of errors (empty: passed)."""
        self.checks[name] = {"ok": not errors, "errors": len(errors),
                             "first_error": errors[0] if errors else "", **extra}
        self.valid &= not errors


def _freeze(cart):
    return tuple(sorted(cart.items()))


def possible_states(ops):
    """Replay one user's ops; return (possible carts at the end, {order key: possible contents}).

    A set of possible carts is None when too many indeterminate operations
    made it too large to follow; an acknowledged cart read makes it known
    again. An order placed while it is None maps to None (contents unverifiable).
    """
    states = {_freeze({})}
    orders = {}
    for op in ops:
        if op.kind in ("cart", "add", "remove") and op.outcome == "ok" and "cart" in op.result:
            states = {_freeze(op.result["cart"])}
        elif states is None:
            if op.kind == "checkout" and op.outcome in ("ok", "indeterminate"):
                orders[op.args["key"]] = None
        elif op.kind == "add" and op.outcome == "indeterminate":
            pid, qty = op.args["product_id"], op.args["qty"]
            states |= {_freeze({**dict(s), pid: dict(s).get(pid, 0) + qty}) for s in states}
        elif op.kind == "remove" and op.outcome == "indeterminate":
            pid = op.args["product_id"]
            states |= {_freeze({k: v for k, v in s if k != pid}) for s in states}
        elif op.kind == "checkout" and op.outcome in ("ok", "indeterminate"):
            key = op.args["key"]
            if orders.get(key, set()) is not None:
                orders.setdefault(key, set()).update(s for s in states if s)
            states = {_freeze({})} if op.outcome == "ok" else states | {_freeze({})}
        if states is not None and len(states) > MAX_STATES:
            states = None
    return states, orders


def check(history, final_carts, db, fault_start, fault_end, killed_web_nodes=()):
    """Judge HISTORY (list of Op) and FINAL_CARTS ({user: Op}) against DB (see read_db)."""
    v = Verdict()
    users = sorted({op.user for op in history})
    by_user = {u: sorted((op for op in history if op.user == u), key=lambda o: o.start) for u in users}
    acked_orders = {op.result["order_id"]: op for op in history
                    if op.kind == "checkout" and op.outcome == "ok"}
    user_ids = db["user_ids"]

    # 1. Every acknowledged order exists, once, with what was in the cart, on every node.
    lost, errors, unverifiable_orders = set(), [], set()
    expected_contents = {}
    for u in users:
        _, orders = possible_states(by_user[u])
        expected_contents.update({(u, k): c for k, c in orders.items()})
    for order_id, op in sorted(acked_orders.items()):
        for node in DB_NODES:
            row = db["orders"][node].get(order_id)
            if row is None:
                lost.add(order_id)
                errors.append(f"order {order_id} of {op.user} (acknowledged at t={op.end:.2f}s) is missing on {node}")
                continue
            if row["user_id"] != user_ids.get(op.user):
                errors.append(f"order {order_id} on {node} belongs to user id {row['user_id']}, not {op.user}")
            allowed = expected_contents.get((op.user, op.args["key"]), set())
            if allowed is None:
                unverifiable_orders.add(order_id)
            elif _freeze(row["items"]) not in allowed:
                errors.append(f"order {order_id} on {node} holds {row['items']}, but the cart was one of "
                              f"{[dict(c) for c in allowed][:3]}")
    v.add("acknowledged orders on every node", errors, contents_unverifiable=len(unverifiable_orders))

    # 2. No order twice, and none the client never asked for.
    attempted = {(u, op.args["key"]) for u in users for op in by_user[u] if op.kind == "checkout"}
    seen, dup_errors, duplicates = {}, [], 0
    every_order = {oid: row for node in DB_NODES for oid, row in db["orders"][node].items()}
    for order_id, row in sorted(every_order.items()):
        key = (row["username"], row["key"])
        if key not in attempted:
            duplicates += 1
            dup_errors.append(f"order {order_id} of {row['username']} has key {row['key']!r}, which no checkout sent")
        elif key in seen:
            duplicates += 1
            dup_errors.append(f"orders {seen[key]} and {order_id} both came from checkout {row['key']!r}")
        seen.setdefault(key, order_id)
    v.add("no duplicate orders", dup_errors)

    # 3. Each user's cart is what the history allows.
    cart_errors, unverifiable = [], 0
    for u in users:
        states, _ = possible_states(by_user[u])
        final = final_carts.get(u)
        if final is None or final.outcome != "ok":
            cart_errors.append(f"{u}: the cart could not be read after the heal "
                               f"({final.status if final else 'no request'} {final.error if final else ''})")
        elif states is None:
            unverifiable += 1
        elif _freeze(final.result["cart"]) not in states:
            cart_errors.append(f"{u}: the app returns cart {final.result['cart']}, but the last acknowledged "
                               f"state allows only {[dict(s) for s in states][:3]}")
    v.add("carts are what was acknowledged", cart_errors, unverifiable=unverifiable)

    # 4. The DB nodes converged.
    conv_errors = [f"{node} did not reach {db['target']} (it has {pos})"
                   for node, pos in db["positions"].items() if not db["reached"][node]]
    for table in CHECKSUM_TABLES:
        sums = {node: db["checksums"][node].get(table) for node in DB_NODES}
        if len(set(sums.values())) != 1:
            conv_errors.append(f"table {table} differs between nodes: {sums}")
    v.add("DB nodes converged", conv_errors)

    # 5. Logged-in users stay logged in, and on their web node unless it died.
    session_errors, sticky_errors = [], []
    for u in users:
        ops = by_user[u]
        login = next((i for i, op in enumerate(ops) if op.kind == "login" and op.outcome == "ok"), None)
        if login is None:
            session_errors.append(f"{u} never logged in")
            continue
        after = ops[login + 1:]
        logged_out = next((op for op in after if op.status == 401), None)
        if logged_out:
            session_errors.append(f"{u} was logged out: {logged_out.kind} at t={logged_out.start:.2f}s got 401")
        served = [op.served_by for op in after if op.outcome == "ok" and op.served_by]
        home = ops[login].served_by
        if home not in killed_web_nodes:
            strays = sorted({n for n in served if n != home})
            if strays:
                sticky_errors.append(f"{u} was on {home} but was also served by {', '.join(strays)}")
    v.add("sessions survive", session_errors)
    v.add("users stay on their web node", sticky_errors)

    # Counts and recovery.
    work = [op for op in history if op.kind not in ("register", "login", "final-cart")]
    v.counts = {
        "operations": len(work),
        "failed_requests": sum(1 for op in work if op.outcome != "ok"),
        "indeterminate": sum(1 for op in work if op.outcome == "indeterminate"),
        "acknowledged_writes": sum(1 for op in work if op.kind in WRITES and op.outcome == "ok"),
        "acknowledged_orders": len(acked_orders),
        "lost_writes": len(lost) + len(cart_errors),
        "duplicate_writes": duplicates,
    }
    v.counts["recovery_by_kind_s"] = recovery(history, fault_start)
    v.counts["recovery_s"] = max(v.counts["recovery_by_kind_s"].values(), default=0.0)
    return v


def recovery(history, fault_start):
    """Return {kind: seconds from the fault to service back} for each kind that failed after it.

    "Back" is the first success that started after the kind's last failure
    following the fault (0 for a kind that never failed).
    """
    out = {}
    kinds = sorted({op.kind for op in history if op.kind not in ("register", "login", "final-cart")})
    for kind in kinds:
        ops = [op for op in history if op.kind == kind and op.start >= fault_start]
        failures = [op for op in ops if op.outcome != "ok"]
        if not failures:
            out[kind] = 0.0
            continue
        last_failure = max(op.start for op in failures)
        back = min((op.end for op in ops if op.outcome == "ok" and op.start > last_failure), default=None)
        out[kind] = round(back - fault_start, 3) if back is not None else float("inf")
    return out


def _positions(node):
    pos = dbnodes.value(node, "SELECT @@gtid_binlog_pos") or ""
    return {int(d): int(seq) for d, _, seq in (g.split("-") for g in pos.split(",") if g)}


def read_db(usernames, timeout_s=60):
    """Snapshot what the DB nodes hold for USERNAMES, after waiting (bounded) for convergence."""
    # Every node must have executed everything both masters had logged at
    # this moment (their own GTID domains 1 and 2).
    target = {1: _positions("master1").get(1, 0), 2: _positions("master2").get(2, 0)}
    positions, reached = {}, {}

    def converged():
        for node in DB_NODES:
            positions[node] = _positions(node)
            reached[node] = all(positions[node].get(d, 0) >= s for d, s in target.items())
        return all(reached.values()), dict(reached)

    try:
        progress.wait_until(converged, timeout_s, interval_s=0.2)
    except progress.Timeout:
        pass  # reported by the checker through `reached`
    names = ",".join(f"'{n}'" for n in usernames)
    user_ids = {r["username"]: int(r["id"]) for r in
                dbnodes.query("master1", f"SELECT id, username FROM lab.users WHERE username IN ({names})")}
    orders, checksums = {}, {}
    for node in DB_NODES:
        rows = dbnodes.query(node, f"""
            SELECT o.id, o.user_id, u.username, o.idempotency_key AS k,
                   GROUP_CONCAT(i.product_id, ':', i.qty ORDER BY i.product_id) AS items
            FROM lab.orders o JOIN lab.users u ON u.id = o.user_id
            LEFT JOIN lab.order_items i ON i.order_id = o.id
            WHERE u.username IN ({names}) GROUP BY o.id""")
        orders[node] = {int(r["id"]): {
            "user_id": int(r["user_id"]), "username": r["username"], "key": r["k"],
            "items": {int(p): int(q) for p, q in (x.split(":") for x in (r["items"] or "").split(",") if x)},
        } for r in rows}
        checksums[node] = {r["Table"].split(".")[-1]: r["Checksum"] for r in dbnodes.query(
            node, "CHECKSUM TABLE " + ", ".join(f"lab.{t}" for t in CHECKSUM_TABLES) + " EXTENDED")}
    return {"user_ids": user_ids, "orders": orders, "checksums": checksums,
            "target": target, "positions": positions, "reached": reached, "read_at": time.time()}
