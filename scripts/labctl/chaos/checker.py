"""The checker: small named checks that judge a history against a snapshot of the DB nodes.

Like Jepsen's checkers, check() is a pure function (of the history, a
snapshot read afterwards by chaos.snapshot.read_db, samples taken during the
run, and a budget), so every check is tested on made-up histories. It runs
CHECKS, a list of functions `name(run) -> Finding(errors, extra)` where a
Run holds the inputs and what the checks share (the cart model), and
returns a Verdict.

API
  check(history, final_carts, snapshot, fault_start, fault_end, killed_web_nodes=(), *,
        writer_samples=(), order_samples=(), budget=None,
        in_flight_s=math.inf, max_states=MAX_STATES, judged_until=math.inf) -> Verdict
    history         list of workload.Op (every user, any order; "final-cart" ops are ignored
                    here: the final reads come in final_carts)
    final_carts     {user: Op of kind "final-cart"}, read after the heal
    snapshot        what chaos.snapshot.read_db returns:
                      {"user_ids": {username: id} (read on master1),
                       "orders": {node: {order_id: {"user_id", "username", "key", "items": {pid: qty}}}},
                       "checksums": {node: {table: checksum}}, for every table of CHECKSUM_TABLES,
                       "target": {gtid domain: seq}, "positions": {node: {domain: seq}},
                       "reached": {node: bool}, "read_at": unix time,
                       "invoices": {node: {order_id: {"order_total", "invoiced" (None: no invoice),
                                    "attempt"}}} for every order of the users,
                       "orphan_invoices": {node: [order ids of invoices without an order]},
                       "queue": {"drained": bool, "parked": [job rows], "left": {state: n}}}
    fault_start, fault_end   workload clock (seconds), like Op.start
    killed_web_nodes         web nodes the fault killed: their users may move to another node
    writer_samples  [{"t": workload clock, "writable": [nodes with read_only off and a valid lease],
                      "unreachable": [nodes that did not answer]}], one per observer tick
    writer_readings [{"node", "term", "t", "t_end"}]: every reading that found a node writable,
                    with its term (ha.lease) and when the reading was sent and answered
    sample_counts   {node: {"answered", "failed", "per_s"}} (None: not observed)
    order_samples   [{"t": workload clock, "node": "master1", "writable": bool,
                      "orders": set of order ids of the workload's users on that node}];
                    a node writable at t must hold every order acknowledged before t
                    (op.end < t) and every order an earlier writable sample held.
                    Empty sample lists mean "not sampled": their checks pass with sampled=0.
    budget          None, or any of {"failed_requests": n, "failure_span_s": s, "longest_outage_s": s,
                    "recovery_s": s};
                    the budget check fails when a measured figure exceeds its budget.
    judged_until    the availability figures (and the budget) count only work requests that
                    started before this (workload clock): the fault and its recovery, not
                    the planned failback that follows (which the safety checks still judge)
    in_flight_s     how long after its end an indeterminate write may still take effect
                    (default: for ever, as in Jepsen; a finite bound keeps the search small)
    max_states      bound of the cart model's search (see below)
    max_in_doubt_share  the share of writes that may end in doubt (few_writes_in_doubt)
    edits           list of workload.Op of kind "edit": the admin's price changes (their own
                    history; result["version"] is the product's version when acknowledged)
    freshness_s     how long after an edit was acknowledged a catalogue read may still show
                    an older version (catalogue_reads_fresh)

  Verdict.valid, Verdict.checks[name] = {"ok", "errors" (a count), "first_error", "examples"
  (the first five), plus what the check adds}, Verdict.counts. Check names are the function
  names in CHECKS:
    acknowledged_orders_present          every acknowledged order is on every node, as placed
    orders_hold_their_cart               an order holds a cart the model allows (+contents_unverifiable)
    no_unrequested_or_duplicate_orders   no order for a key no checkout sent, none twice
    orders_belong_to_their_user          the user who sent the key, with that user's id
    carts_follow_the_model               every acknowledged cart and the final read are reachable;
                                         an unreadable final cart is an anomaly (+unverifiable)
    failed_ops_had_no_effect             no order for a failed checkout, no trace of a failed write
    nodes_converged                      every node reached `target`; CHECKSUM_TABLES equal
    sessions_survive                     no logged-in user got a 401
    users_stay_on_their_node             sticky sessions hold, unless the node was killed
    at_most_one_writer                   never two writable masters in a sample (+sampled)
    writers_follow_the_terms             one node per term; no writer of an older term sampled after
                                         one of a newer term (+sampled)
    orders_came_from_their_terms         from the data: one origin server per term; no order of an
                                         older term started after one of a newer term was acknowledged
    every_node_sampled                   every DB node read at least MIN_RATE_PER_S times a second
    acknowledged_orders_never_disappear  a writer holds every order acknowledged before, or seen
                                         on a writer before (+sampled)
    service_recovered                    every kind of request served again after the fault
    few_writes_in_doubt                  at most MAX_IN_DOUBT_SHARE of the writes (or MIN_IN_DOUBT)
                                         ended in doubt (+in_doubt, +writes, +bound)
    within_availability_budget           no measured figure over its budget (+budget, +measured)
    catalogue_reads_fresh                no product view shows a version older than one acknowledged
                                         freshness_s before it started (+judged, +max_stale_s, +bound)
    orders_invoiced_once                 the job queue drained; every order has one invoice of its total on
                                         every node, none without an order, no job parked (+invoiced)
  Counts: operations, failed_requests, client_errors, indeterminate, acknowledged_writes,
  acknowledged_orders, lost_writes (acknowledged orders missing + cart anomalies),
  duplicate_writes (unrequested + duplicate orders), unverifiable_carts, unverifiable_orders,
  recovery_s, recovery_by_kind_s, failure_span_s, longest_outage_s, writer_samples, order_samples.

Availability figures (register, login and final-cart are not work and never count):
  a request FAILED when it was not served: outcome indeterminate, no answer, a 5xx or a 429.
  The app's refusals (400, 404, 409 for a stale request; 401 for a lost session, which
  sessions_survive judges) are answers, not failures; counts["client_errors"] counts them.
  failed_requests   failed work requests over the whole run
  failure_span_s    from the start of the first failed work request that started at or after
                    fault_start to the end of the last one; 0 when none failed
  longest_outage_s  the longest outage among those requests: failed requests that overlap or
                    are less than OUTAGE_GAP_S apart are one outage, from the first one's start
                    to the last one's end (a fault that moves a VIP twice, at the cut and at
                    the heal, is two outages; its span is the time between them)
  recovery_by_kind_s  per kind: from fault_start to the end of the first success that started
                    after the kind's last failure (0 if it never failed; inf if it never came back)
  recovery_s        the largest of those

The cart model. Each user runs one thread, so a user's ops are sequential.
A state is (cart, orders placed so far with their contents, writes still
pending). An acknowledged op takes effect between its start and end; an
indeterminate write becomes pending: it may take effect at any later
moment, in any order with other pending writes, or never (and no more once
in_flight_s have passed since it ended). Before each acknowledged op any
subset of the pending writes may take effect; the search follows only the
states from which the cart might still become what the op needs (judged
product by product, an over-estimate, so no possible state is missed). The
op must then be able to show what it showed: the cart, for cart, add,
remove and the final read; for a checkout, an order holding what the DB's
order with its key holds. The DB's orders are observations too: an
indeterminate checkout whose key is in no order on any node had no effect
(the order and the emptied cart commit together). When no state fits, that
is an anomaly, reported by
  - orders_hold_their_cart for a checkout the carts allow, whose order holds
    what no possible cart held;
  - failed_ops_had_no_effect when failed writes taking effect while they ran
    would explain it (the op is named when one alone does);
  - carts_follow_the_model otherwise (saying "given what the DB's orders
    hold" when, without them, a state would fit);
and the model trusts what the app showed and goes on. When the states
exceed max_states the model loses track: what it cannot judge is counted
as unverifiable, never as an anomaly, and the next acknowledged cart pins
the state again, with every write that may still be pending (even one that
may have taken effect already: a generous guess, never a false anomaly);
orders placed while it had lost track become unverifiable.
"""
import math
from collections import namedtuple
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

from labctl import topology

DB_NODES = topology.DB_NODES
# Every table the workload writes; carts live in `sessions`.
CHECKSUM_TABLES = ("users", "products", "orders", "order_items", "sessions", "cache_invalidations", "jobs",
                   "invoices")
MAX_STATES = 512
MAX_QTY, MAX_LINES = 99, 50          # the app's cart limits (app/labapp/cart.py)
WRITES = ("add", "remove", "checkout")
MODELLED = (*WRITES, "cart", "final-cart")
NOT_WORK = ("register", "login", "final-cart")
ANSWERS = (400, 401, 404, 409)       # the app's answers that refuse: served, certainly without effect
BUDGET_FIGURES = ("failed_requests", "failure_span_s", "longest_outage_s", "recovery_s")
# Failed requests less than this apart belong to one outage (longest_outage_s).
OUTAGE_GAP_S = 1.0
# Writes in doubt (an answer that cannot say whether it was applied): at most
# this share of a scenario's writes, or MIN_IN_DOUBT, whichever is more.
MAX_IN_DOUBT_SHARE = 0.05
# A product view may show an older version than the newest acknowledged
# for this long: the read replica's lag (a cache miss reads the replica) and
# the web nodes' invalidation log (app/labapp/cache.py) are well inside it.
FRESHNESS_S = 2.0
MIN_IN_DOUBT = 10
MAX_CULPRITS = 8                     # failed ops tried one by one to name the one an anomaly shows
SHOWN = 3                            # possible carts quoted in an error

State = namedtuple("State", "cart orders pending")      # cart, orders: sorted tuples
Pending = namedtuple("Pending", "kind pid qty key expires")
Anomaly = namedtuple("Anomaly", "index op expected seen before")
Finding = namedtuple("Finding", "errors extra")
Need = namedtuple("Need", "qtys key")   # what a cart must be: {pid: set of qtys, or POSITIVE}
POSITIVE = None                         # in a Need: any quantity above 0
IMPOSSIBLE = "impossible"                # a checkout that would contradict the DB's orders


@dataclass
class Verdict:
    """The checker's result for one scenario."""
    valid: bool = True
    checks: dict = field(default_factory=dict)     # name -> {"ok", "errors", "first_error", ...}
    counts: dict = field(default_factory=dict)

    def add(self, name, errors, **extra):
        """Record check NAME with its list of errors (empty: passed)."""
        self.checks[name] = {"ok": not errors, "errors": len(errors),
                             "first_error": errors[0] if errors else "", "examples": errors[:5], **extra}
        self.valid &= not errors


def found(errors, **extra):
    """Return a check's Finding: its errors (first the first bad example) and extra figures."""
    return Finding(list(errors), extra)


def _freeze(cart):
    """Return CART ({pid: qty}) as a sorted tuple of items, to put in a set."""
    return tuple(sorted(cart.items()))


def _show(cart):
    """Return a frozen CART as the dict a reader expects."""
    return "?" if cart is None else str(dict(cart))


def _shown(carts):
    """Return the first few of CARTS, for an error."""
    more = " ..." if len(carts) > SHOWN else ""
    return " or ".join(_show(c) for c in carts[:SHOWN]) + more


# --- The cart model -----------------------------------------------------------------------

def _write(op, expires=math.inf):
    """Return OP as a Pending write (also used to apply an acknowledged one)."""
    a = op.args
    return Pending(op.kind, a.get("product_id", 0), a.get("qty", 0), a.get("key", ""), expires)


def _with_order(orders, key, contents):
    """Return ORDERS with the order KEY holding CONTENTS."""
    return tuple(sorted(orders + ((key, contents),), key=lambda kc: kc[0]))


def _effect(w, cart, orders, placed=None):
    """Return (cart, orders) after write W; None when the app would refuse it (no effect).

    IMPOSSIBLE when W would place an order other than the one PLACED
    ({key: possible contents}, what the DB nodes hold) says it placed.
    """
    c = dict(cart)
    if w.kind == "add":
        total = c.get(w.pid, 0) + w.qty
        if total > MAX_QTY or (w.pid not in c and len(c) >= MAX_LINES):
            return None
        c[w.pid] = total
    elif w.kind == "remove":
        if c.pop(w.pid, None) is None:
            return None                 # 404: not in the cart
    elif any(k == w.key for k, _ in orders):
        return cart, orders             # a retried key: the app returns the first order
    elif not c:
        return None                     # 400: the cart is empty
    elif placed is not None and w.key in placed and cart not in placed[w.key]:
        return IMPOSSIBLE
    else:
        return (), _with_order(orders, w.key, cart)
    return _freeze(c), orders


def _prune(pending, orders):
    """Drop pending checkouts whose key already placed its order: they can change nothing now."""
    keys = {k for k, _ in orders}
    return tuple(p for p in pending if p.kind != "checkout" or p.key not in keys)


def _apply_pending(state, p, placed=None):
    """Return STATE after pending write P took effect now (a refused write changes nothing); None if it cannot."""
    pending = list(state.pending)
    pending.remove(p)
    changed = _effect(p, state.cart, state.orders, placed)
    if changed is IMPOSSIBLE:
        return None
    cart, orders = changed or (state.cart, state.orders)
    return State(cart, orders, _prune(tuple(pending), orders))


@lru_cache(maxsize=4096)
def _subset_sums(qtys):
    """Return every sum of a subset of QTYS."""
    sums = {0}
    for q in qtys:
        sums |= {x + q for x in sums}
    return frozenset(sums)


def _feasible(state, need, placed=None):
    """Tell whether pending writes might still bring STATE's cart to NEED (None: anything goes).

    Over-estimates, product by product: a pending remove of the product may
    reset it to 0, and so may a pending checkout (when the cart might first
    hold what its order holds: PLACED); any subset of its pending adds may
    then add up.
    """
    if need is None:
        return True
    adds, resets, checkouts = {}, set(), set()
    for p in state.pending:
        if p.kind == "add":
            adds.setdefault(p.pid, []).append(p.qty)
        elif p.kind == "remove":
            resets.add(p.pid)
        else:
            checkouts.add(p.key)
    if need.key is not None and (need.key in checkouts or any(k == need.key for k, _ in state.orders)):
        return True                     # a retried checkout: the cart may be anything
    cart = dict(state.cart)
    reset_all = placed is None or len(checkouts) > 1 or any(
        _reaches(cart, adds, resets, False, {pid: {q} for pid, q in contents})
        for key in checkouts for contents in placed.get(key, ()))
    return _reaches(cart, adds, resets, reset_all and bool(checkouts), need.qtys)


def _reaches(cart, adds, resets, reset_all, qtys):
    """Tell whether CART might become QTYS ({pid: set of qtys, or POSITIVE}) through ADDS and resets."""
    for pid in qtys.keys() | cart.keys() | adds.keys():
        sums, now = _subset_sums(tuple(sorted(adds.get(pid, ())))), cart.get(pid, 0)
        reset = reset_all or pid in resets
        want = qtys.get(pid, {0})
        if want is POSITIVE:
            if not (now > 0 or len(sums) > 1):
                return False
        elif not any(w - now in sums or (reset and w in sums) for w in want):
            return False
    return True


def _need(op, placed):
    """Return the Need of the cart just before acknowledged OP, or None when anything goes."""
    if op.kind == "checkout":
        contents = (placed or {}).get(op.args["key"])
        if not contents:
            return None
        pids = {pid for c in contents for pid, _ in c}
        return Need({pid: {dict(c).get(pid, 0) for c in contents} for pid in pids}, op.args["key"])
    if "cart" not in op.result:
        return None
    qtys = {pid: {qty} for pid, qty in op.result["cart"].items()}
    pid = op.args.get("product_id")
    if op.kind == "add":
        shown = dict(op.result["cart"]).get(pid, 0)
        qtys[pid] = {shown - op.args["qty"]} if shown >= op.args["qty"] else set()
    elif op.kind == "remove":
        qtys[pid] = set() if pid in qtys else POSITIVE
    return Need(qtys, None)


def _close(states, max_states, placed=None, need=None):
    """Return STATES and all they reach by pending writes taking effect; None past MAX_STATES.

    With NEED, only states from which the cart might still become what it
    needs are followed (the others cannot lead to what the app showed).
    """
    seen, todo = set(states), list(states)
    while todo:
        state = todo.pop()
        for p in set(state.pending):
            nxt = _apply_pending(state, p, placed)
            if nxt is not None and nxt not in seen and _feasible(nxt, need, placed):
                seen.add(nxt)
                todo.append(nxt)
                if len(seen) > max_states:
                    return None
    return seen


def _expire(states, t):
    """Forget pending writes that can no longer take effect at time T."""
    return {s._replace(pending=tuple(p for p in s.pending if p.expires >= t)) for s in states}


def _apply_acknowledged(states, op, placed=None):
    """Return the states after acknowledged OP; states where the app could not have done it drop out."""
    if op.kind not in WRITES:
        return set(states)
    w, out = _write(op), set()
    for s in states:
        changed = _effect(w, s.cart, s.orders, placed)
        if changed is not None and changed is not IMPOSSIBLE:
            out.add(State(*changed, _prune(s.pending, changed[1])))
    return out


class Model:
    """One user's cart as the model follows it: every state the history allows so far."""

    def __init__(self, placed=None, max_states=MAX_STATES):
        self.placed, self.max_states = placed, max_states
        self.states = {State((), (), ())}   # None: too many to follow
        self.maybe = []                     # writes that may still take effect (to pin again)
        self.keys_seen, self.acked_keys, self.lost_keys = set(), set(), set()
        self.settled = {}                   # key -> possible contents of an order placed before losing track
        self.anomalies, self.status, self.unverifiable = [], {}, 0
        self.orders = {}                    # key -> set of possible contents, or None: unverifiable

    def _saw_key(self, key):
        self.keys_seen.add(key)
        if self.states is None:
            self.lost_keys.add(key)

    def pend(self, p):
        """Add write P, which may take effect at any moment from now on, or never."""
        if p.kind == "checkout":
            self._saw_key(p.key)
        self.maybe.append(p)
        if self.states is not None:
            self.states = {s._replace(pending=_prune(tuple(sorted(s.pending + (p,))), s.orders))
                           for s in self.states}

    def settle(self, t, need=None):
        """Let pending writes take effect before time T, in any order (those that could lead to NEED)."""
        self.maybe = [p for p in self.maybe if p.expires >= t]
        if self.states is None:
            return
        closed = _close(self.states, self.max_states, self.placed, need)
        if closed is None:
            self._lose_track()
        else:
            self.states = _expire(closed, t)

    def _lose_track(self):
        """Stop following the states; keep the contents of orders every state had already placed."""
        if self.states is None:
            return
        for key in self.keys_seen - self.lost_keys - set(self.settled):
            contents = {dict(s.orders).get(key, "pending") for s in self.states}
            if "pending" in contents or None in contents:
                self.lost_keys.add(key)
            else:
                self.settled[key] = contents
        self.states = None

    def acknowledge(self, i, op):
        """Apply acknowledged OP (index I of the user's ops) and hold what it showed against the model."""
        if op.kind == "checkout":
            self._saw_key(op.args["key"])
            self.acked_keys.add(op.args["key"])
        seen = _freeze(op.result["cart"]) if "cart" in op.result else None
        if self.states is None:
            self._pin(i, seen)
            return
        after = _apply_acknowledged(self.states, op, self.placed)
        fits = {s for s in after if seen is None or s.cart == seen}
        if fits:
            self.states, self.status[i] = fits, "ok"
        elif op.kind == "checkout":
            self._checkout_mismatch(i, op)
        else:
            self._mismatch(i, op, after, seen)

    def _mismatch(self, i, op, after, seen):
        """Record an anomaly at acknowledged OP, then trust the cart it showed and go on."""
        before = sorted({s.cart for s in self.states})
        self.anomalies.append(Anomaly(i, op, sorted({s.cart for s in after}), seen, before))
        self.status[i] = "anomaly"
        self.states = {s._replace(cart=seen) for s in after or self.states}

    def _checkout_mismatch(self, i, op):
        """Record an acknowledged checkout no state allows; go on with its order's contents unknown."""
        key = op.args["key"]
        free = _apply_acknowledged(self.states, op)
        before = sorted({s.cart for s in self.states})
        # Allowed but for the order the DB holds: SEEN is that order; else the cart was empty.
        seen = min(self.placed[key]) if free else None
        self.anomalies.append(Anomaly(i, op, before, seen, before))
        self.status[i] = "anomaly"
        self.lost_keys.add(key)
        self.states = free or {State((), o, _prune(s.pending, o))
                               for s in self.states for o in [_with_order(s.orders, key, None)]}

    def _pin(self, i, seen):
        """Count acknowledged op I as unverifiable; a cart it showed pins the state again."""
        self.status[i] = "unverifiable"
        self.unverifiable += 1
        if seen is not None:
            orders = tuple(sorted((k, None) for k in self.acked_keys | set(self.settled)))
            self.states = {State(seen, orders, _prune(tuple(sorted(self.maybe)), orders))}

    def finish(self):
        """Let pending checkouts take effect after the last read; collect each order's possible contents."""
        for s in self.states or ():
            for key, contents in s.orders:
                self.orders.setdefault(key, set()).add(contents)
        for key in sorted({p.key for s in self.states or () for p in s.pending if p.kind == "checkout"}):
            contents = self._placeable(key)
            if contents is None:
                self.lost_keys.add(key)
            else:
                self.orders.setdefault(key, set()).update(contents)
        self.orders.update(self.settled)
        self.orders.update(dict.fromkeys(self.lost_keys))

    def _placeable(self, key):
        """Return what the pending checkout KEY may still place after the last read; None if unknown."""
        waiting = {s for s in self.states if any(p.key == key for p in s.pending)}
        if self.placed is None:
            closed = _close(waiting, self.max_states)
            return None if closed is None else {c for s in closed for k, c in s.orders if k == key}
        out = set()
        for contents in self.placed.get(key, ()):
            closed = _close(waiting, self.max_states, self.placed, Need({p: {q} for p, q in contents}, None))
            if closed is None:
                return None
            out |= {contents for s in closed if s.cart == contents and any(p.key == key for p in s.pending)}
        return out


def _may_take_effect(op, lenient, placed):
    """Tell whether unacknowledged OP may have taken effect (a failed op only when LENIENT)."""
    if op.kind not in WRITES or not (op.outcome == "indeterminate" or lenient):
        return False
    # The order and the emptied cart commit together: no order on any node, no effect.
    return op.kind != "checkout" or op.args["key"] in placed


def replay(ops, placed=None, lenient=frozenset(), constrained=True, in_flight_s=math.inf,
           max_states=MAX_STATES):
    """Replay one user's OPS (by start, the final read last) through the cart model; return the Model.

    PLACED: {idempotency key: set of contents (sorted item tuples)} of every
    order on any node; an indeterminate checkout whose key is not in it had no
    effect. CONSTRAINED: a checkout may only place what PLACED holds for its
    key (the DB's orders are observations too). LENIENT: indexes of failed ops
    to treat as indeterminate (only to explain an anomaly).
    """
    placed = {} if placed is None else placed
    model = Model(placed if constrained else None, max_states)
    for i, op in enumerate(ops):
        if op.kind not in MODELLED:
            continue
        if op.outcome == "ok":
            model.settle(op.start, _need(op, model.placed))
            model.acknowledge(i, op)
        elif _may_take_effect(op, i in lenient, placed):
            # A failed op that took effect after all (what LENIENT asks) did so while it ran.
            window = in_flight_s if op.outcome == "indeterminate" else 0.0
            model.pend(_write(op, op.end + window))
    model.finish()
    return model


# --- What the checks share ----------------------------------------------------------------

@dataclass
class Run:
    """Everything the checks judge (see the module docstring); derived facts are computed once."""
    history: list
    final_carts: dict
    snapshot: dict
    fault_start: float
    fault_end: float
    killed_web_nodes: frozenset = frozenset()
    writer_samples: list = ()
    order_samples: list = ()
    writer_readings: list = ()
    sample_counts: dict = None
    budget: dict = None
    in_flight_s: float = math.inf
    max_states: int = MAX_STATES
    judged_until: float = math.inf
    max_in_doubt_share: float = MAX_IN_DOUBT_SHARE
    edits: list = ()
    freshness_s: float = FRESHNESS_S
    _replays: dict = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def users(self):
        """Every user of the history, sorted."""
        return sorted({op.user for op in self.history} | set(self.final_carts))

    @cached_property
    def by_user(self):
        """{user: the user's ops by start time, without the final read}."""
        out = {u: [] for u in self.users}
        for op in sorted(self.history, key=lambda o: o.start):
            if op.kind != "final-cart":
                out[op.user].append(op)
        return out

    @cached_property
    def model_ops(self):
        """{user: the user's ops, then the final read}."""
        return {u: self.by_user[u] + ([self.final_carts[u]] if u in self.final_carts else []) for u in self.users}

    @cached_property
    def acked_orders(self):
        """{order id: the checkout op that was acknowledged with it}."""
        return {op.result["order_id"]: op for op in self.history
                if op.kind == "checkout" and op.outcome == "ok"}

    @cached_property
    def checkouts_by_key(self):
        """{idempotency key: every checkout op sent with it}."""
        out = {}
        for op in self.history:
            if op.kind == "checkout":
                out.setdefault(op.args["key"], []).append(op)
        return out

    @cached_property
    def rows(self):
        """[(node, order id, row)] for every order on every node."""
        return [(node, oid, row) for node in DB_NODES
                for oid, row in sorted(self.snapshot["orders"].get(node, {}).items())]

    @cached_property
    def orders_seen(self):
        """{(order id, key, username): [nodes that hold it]}, by order id."""
        out = {}
        for node, oid, row in self.rows:
            out.setdefault((oid, row["key"], row["username"]), []).append(node)
        return dict(sorted(out.items(), key=lambda kv: kv[0][0]))

    @cached_property
    def placed(self):
        """{idempotency key: set of contents (sorted item tuples)} of every order on any node."""
        out = {}
        for _, _, row in self.rows:
            out.setdefault(row["key"], set()).add(_freeze(row["items"]))
        return out

    @cached_property
    def models(self):
        """{user: the Model of the user's ops, with the DB's orders as observations}."""
        return {u: self.model_of(u) for u in self.users}

    def model_of(self, user, lenient=frozenset(), constrained=True):
        """Return the Model of USER's ops (memoised: the checks share it)."""
        key = (user, lenient, constrained)
        if key not in self._replays:
            self._replays[key] = replay(self.model_ops[user], self.placed, lenient, constrained,
                                        self.in_flight_s, self.max_states)
        return self._replays[key]

    @cached_property
    def blamed(self):
        """{user: {anomaly index: (the check that reports it, or None for the carts', a note)}}."""
        return {u: _blame(self, u) for u in self.users}

    @cached_property
    def availability(self):
        """The availability figures (see the module docstring)."""
        return availability(self.history, self.fault_start, self.judged_until)


def _blame(run, user):
    """Return {anomaly index: (the check that reports it, a note)} for USER's anomalies; None: the carts'.

    A checkout that the model without the DB's orders allows is the orders'
    anomaly; a cart that failed writes taking effect while they ran would
    explain is the failed op's (named when one alone explains it).
    """
    ops, model = run.model_ops[user], run.models[user]
    if not model.anomalies:
        return {}
    failed = frozenset(i for i, op in enumerate(ops) if op.kind in WRITES and op.outcome == "fail")
    free = run.model_of(user, constrained=False)
    lenient = run.model_of(user, failed) if failed else model
    out = {}
    for a in model.anomalies:
        fits_without_orders = free.status.get(a.index) == "ok"
        if fits_without_orders and a.op.kind == "checkout":
            out[a.index] = ("orders", "")
        elif fits_without_orders:
            out[a.index] = (None, ", given what the DB's orders hold")
        elif lenient.status.get(a.index) == "ok":
            culprit = _culprit(run, user, a.index, sorted(i for i in failed if i < a.index))
            out[a.index] = ("failed", f": only the failed {culprit.kind} {culprit.args} ({_outcome(culprit)}) "
                                      f"taking effect explains it" if culprit else
                                      ": only failed writes taking effect explain it")
        else:
            out[a.index] = (None, "")
    return out


def _culprit(run, user, index, candidates):
    """Return the latest failed op whose effect alone explains the anomaly at INDEX, or None."""
    for i in reversed(candidates[-MAX_CULPRITS:]):
        if run.model_of(user, frozenset({i})).status.get(index) == "ok":
            return run.model_ops[user][i]
    return None


def _anomalies(run, check):
    """Return [(time, description)] of every user's anomalies that CHECK reports (None: the carts')."""
    return [(a.op.start, _describe(u, a) + note) for u in run.users for a in run.models[u].anomalies
            for blamed, note in [run.blamed[u][a.index]] if blamed == check]


def _describe(user, a):
    """Say what anomaly A of USER was: who, which op, when, what was expected, what was seen."""
    if a.op.kind == "checkout":
        where = f"{user}: checkout {a.op.args['key']!r} (order {a.op.result.get('order_id')}) at t={a.op.start:.2f}s"
        if a.seen is None:
            return f"{where} was acknowledged, but the cart was empty in every possible state"
        return f"{where} placed an order holding {_show(a.seen)}, but the cart was {_shown(a.expected)}"
    where = f"{user}: {a.op.kind} at t={a.op.start:.2f}s"
    if not a.expected:
        return (f"{where} showed {_show(a.seen)}, but the app would have refused it in every "
                f"possible state (carts before: {_shown(a.before)})")
    return f"{where} showed {_show(a.seen)}, expected {_shown(a.expected)}"


def _outcome(op):
    """Say how OP ended, and when it started."""
    return f"{op.status or op.error or op.outcome} at t={op.start:.2f}s"


def _by_time(timed_errors):
    """Return the errors of [(time, error)], earliest first (the first error is the first bad example)."""
    return [e for _, e in sorted(timed_errors, key=lambda te: te[0])]


# --- The checks ---------------------------------------------------------------------------

def acknowledged_orders_present(run):
    """Check that every acknowledged order is on every node, under the key of its checkout."""
    errors, lost = [], set()
    for oid, op in sorted(run.acked_orders.items()):
        for node in DB_NODES:
            row = run.snapshot["orders"].get(node, {}).get(oid)
            if row is None:
                lost.add(oid)
                errors.append(f"order {oid} of {op.user} (checkout acknowledged at t={op.end:.2f}s) "
                              f"is missing on {node}")
            elif row["key"] != op.args["key"]:
                errors.append(f"order {oid} on {node} has key {row['key']!r}, but {op.user}'s checkout "
                              f"{op.args['key']!r} was acknowledged with it")
    return found(errors, lost=len(lost))


def orders_hold_their_cart(run):
    """Check that every order of a checkout that may have taken effect holds a cart the model allows."""
    errors, unverifiable = _anomalies(run, "orders"), set()
    for node, oid, row in run.rows:
        ops = run.checkouts_by_key.get(row["key"], [])
        if all(op.outcome == "fail" for op in ops):
            continue                    # unrequested, or a failed checkout's: other checks
        model = run.models[ops[0].user]
        if any(a.op in ops for a in model.anomalies):
            continue                    # its acknowledged checkout is an anomaly already
        allowed = model.orders.get(row["key"], set())
        if allowed is None:
            unverifiable.add(oid)
        elif _freeze(row["items"]) not in allowed:
            free = run.model_of(ops[0].user, constrained=False).orders.get(row["key"], set())
            want = "?" if free is None else _shown(sorted(free)) if free else "no order at all"
            errors.append((ops[-1].start, f"order {oid} of {ops[0].user} (checkout {row['key']!r}, "
                                          f"{ops[-1].outcome} at t={ops[-1].start:.2f}s) holds {row['items']} "
                                          f"on {node}, expected {want}"))
    return found(_by_time(errors), contents_unverifiable=len(unverifiable))


def no_unrequested_or_duplicate_orders(run):
    """Check that no order carries a key no checkout sent, and that no key placed two orders."""
    errors, ids_by_key = [], {}
    for (oid, key, user), nodes in run.orders_seen.items():
        if key not in run.checkouts_by_key:
            errors.append(f"order {oid} of {user} (on {', '.join(nodes)}) has key {key!r}, "
                          f"which no checkout sent")
        ids_by_key.setdefault(key, set()).add(oid)
    for key, ids in sorted(ids_by_key.items(), key=lambda kv: min(kv[1])):
        if len(ids) > 1 and key in run.checkouts_by_key:
            errors.append(f"orders {sorted(ids)} of {run.checkouts_by_key[key][0].user} all came from "
                          f"one checkout ({key!r})")
    return found(errors)


def orders_belong_to_their_user(run):
    """Check that every order belongs to the user who sent its key, under that user's id."""
    errors, user_ids = [], run.snapshot["user_ids"]
    for node, oid, row in run.rows:
        sender = run.checkouts_by_key.get(row["key"], [None])[0]
        if sender is not None and row["username"] != sender.user:
            errors.append(f"order {oid} on {node} belongs to {row['username']}, but {sender.user} "
                          f"sent its checkout ({row['key']!r})")
        elif row["user_id"] != user_ids.get(row["username"]):
            errors.append(f"order {oid} of {row['username']} on {node} has user id {row['user_id']}, "
                          f"but {row['username']} is user {user_ids.get(row['username'])}")
    return found(errors)


def carts_follow_the_model(run):
    """Check that every acknowledged cart, checkout and final read is reachable, and the final read worked."""
    errors = _anomalies(run, None)
    for u in run.users:
        final = run.final_carts.get(u)
        if final is None or final.outcome != "ok":
            when, detail = (final.start, f"{final.status} {final.error}".strip()) if final else (math.inf, "no read")
            errors.append((when, f"{u}: final-cart: the cart could not be read after the heal ({detail})"))
    return found(_by_time(errors), unverifiable=sum(m.unverifiable for m in run.models.values()))


def failed_ops_had_no_effect(run):
    """Check that no order comes from a failed checkout and no cart shows what only a failed write explains."""
    errors = _anomalies(run, "failed")
    for (oid, key, user), nodes in run.orders_seen.items():
        ops = run.checkouts_by_key.get(key, [])
        if ops and all(op.outcome == "fail" for op in ops):
            errors.append((ops[-1].start, f"order {oid} of {user} is on {', '.join(nodes)}, but its "
                                          f"checkout {key!r} failed ({_outcome(ops[-1])})"))
    return found(_by_time(errors))


def nodes_converged(run):
    """Check that every DB node applied all both masters had logged, and that they hold the same tables."""
    snap, errors = run.snapshot, []
    for node in DB_NODES:
        if not snap["reached"].get(node, False):
            errors.append(f"{node} did not reach {snap['target']} (it has {snap['positions'].get(node)})")
    for table in CHECKSUM_TABLES:
        sums = {node: snap["checksums"].get(node, {}).get(table) for node in DB_NODES}
        missing = [node for node, s in sums.items() if s is None]
        if missing:
            errors.append(f"table {table} was not checksummed on {', '.join(missing)}")
        elif len(set(sums.values())) != 1:
            errors.append(f"table {table} differs between nodes: {sums}")
    return found(errors)


def _after_login(run, user):
    """Return (USER's first successful login or None, the user's ops after it, the final read last)."""
    ops = run.model_ops[user]
    i = next((i for i, op in enumerate(ops) if op.kind == "login" and op.outcome == "ok"), None)
    return (None, []) if i is None else (ops[i], ops[i + 1:])


def sessions_survive(run):
    """Check that every user logged in, and that no request after the login got a 401."""
    errors = []
    for u in run.users:
        login, after = _after_login(run, u)
        out = next((op for op in after if op.status == 401), None)
        if login is None:
            errors.append(f"{u} never logged in")
        elif out:
            errors.append(f"{u} was logged out: {out.kind} at t={out.start:.2f}s got 401")
    return found(errors)


def users_stay_on_their_node(run):
    """Check that a logged-in user is served by one web node, unless the fault killed it."""
    errors = []
    for u in run.users:
        login, after = _after_login(run, u)
        if login is None or login.served_by in run.killed_web_nodes:
            continue
        stray = next((op for op in after if op.outcome == "ok" and op.served_by
                      and op.served_by != login.served_by), None)
        if stray:
            errors.append(f"{u} was on {login.served_by} but {stray.kind} at t={stray.start:.2f}s "
                          f"was served by {stray.served_by}")
    return found(errors)


def at_most_one_writer(run):
    """Check that no sample saw two writable masters."""
    errors = [f"at t={s['t']:.2f}s {', '.join(sorted(set(s['writable'])))} were all writable "
              f"(unreachable: {', '.join(s.get('unreachable', [])) or 'none'})"
              for s in sorted(run.writer_samples, key=lambda s: s["t"]) if len(set(s["writable"])) > 1]
    return found(errors, sampled=len(run.writer_samples))


def writers_follow_the_terms(run):
    """Check the sampled writers against their terms: one node per term, and no writer of an older term
    seen after a writer of a newer one was (a deposed writer taking writes: two writers)."""
    readings = sorted(run.writer_readings, key=lambda r: r["t"])
    errors, node_of = [], {}
    for r in readings:
        if r["term"] is None:
            errors.append(f"{r['node']} was writable at t={r['t']:.2f}s in no term (ha.lease empty)")
            continue
        other = node_of.setdefault(r["term"], r["node"])
        if other != r["node"]:
            errors.append(f"term {r['term']} had two writers: {other} and {r['node']} (t={r['t']:.2f}s)")
    by_end, j, newest = sorted((r for r in readings if r["term"] is not None), key=lambda r: r["t_end"]), 0, None
    for r in (r for r in readings if r["term"] is not None):
        while j < len(by_end) and by_end[j]["t_end"] <= r["t"]:
            if newest is None or by_end[j]["term"] > newest["term"]:
                newest = by_end[j]
            j += 1
        if newest is not None and newest["term"] > r["term"]:
            errors.append(f"{r['node']} was writable in term {r['term']} at t={r['t']:.2f}s, after "
                          f"{newest['node']} was writable in the newer term {newest['term']} "
                          f"(t={newest['t_end']:.2f}s)")
    return found(errors, sampled=len(readings))


def orders_came_from_their_terms(run):
    """Check from the data (each order's origin server and term) that one writer committed each term,
    and that no order acknowledged in an older term started after one of a newer term was acknowledged."""
    origin = {}
    for node in DB_NODES:
        for oid, row in run.snapshot["orders"].get(node, {}).items():
            origin.setdefault(oid, (row.get("origin_server"), row.get("origin_term")))
    acked = sorted(((op, *origin[oid], oid) for oid, op in run.acked_orders.items() if oid in origin),
                   key=lambda x: x[0].start)
    errors, servers = [], {}
    for op, server, term, oid in acked:
        if term is None:
            errors.append(f"order {oid} of {op.user} was committed in no term (on server {server})")
            continue
        servers.setdefault(term, set()).add(server)
    errors += [f"term {t} has orders from servers {sorted(ss)}: two writers in one term"
               for t, ss in sorted(servers.items()) if len(ss) > 1]
    timed = [x for x in acked if x[2] is not None]
    by_end, j, newest = sorted(timed, key=lambda x: x[0].end), 0, None
    for op, server, term, oid in timed:
        while j < len(by_end) and by_end[j][0].end < op.start:
            if newest is None or by_end[j][2] > newest[2]:
                newest = by_end[j]
            j += 1
        if newest is not None and newest[2] > term:
            errors.append(f"order {oid} of {op.user} (term {term}, server {server}) started at t={op.start:.2f}s, "
                          f"after order {newest[3]} of the newer term {newest[2]} was acknowledged "
                          f"(t={newest[0].end:.2f}s): a deposed writer acknowledged it")
    return found(errors, judged=len(timed))


def every_node_sampled(run):
    """Check that the observer read every DB node often enough for the safety checks to mean something."""
    if run.sample_counts is None:
        return found([], sampled="not observed")
    from .monitor import MIN_RATE_PER_S  # noqa: PLC0415 - the bound lives with the observer
    errors = [f"{node} was read {c['answered']} times ({c['per_s']}/s), under {MIN_RATE_PER_S}/s"
              for node, c in sorted(run.sample_counts.items()) if c["per_s"] < MIN_RATE_PER_S]
    return found(errors, counts=run.sample_counts)


def acknowledged_orders_never_disappear(run):
    """Check that a writable node holds every order acknowledged, or seen on a writer, before the sample."""
    errors, first_seen = [], {}
    for s in sorted((s for s in run.order_samples if s["writable"]), key=lambda s: s["t"]):
        expected = {oid: f"seen on {node} (writable) at t={t:.2f}s"
                    for oid, (node, t) in first_seen.items() if t < s["t"]}
        expected.update({oid: f"of {op.user}, acknowledged at t={op.end:.2f}s"
                         for oid, op in run.acked_orders.items() if op.end < s["t"]})
        errors += [f"order {oid} ({why}) is missing on {s['node']}, writable at t={s['t']:.2f}s"
                   for oid, why in sorted(expected.items()) if oid not in s["orders"]]
        for oid in s["orders"]:
            first_seen.setdefault(oid, (s["node"], s["t"]))
    return found(errors, sampled=len(run.order_samples))


def service_recovered(run):
    """Check that every kind of request that failed after the fault was served again before the end."""
    errors = []
    for kind, seconds in sorted(run.availability["recovery_by_kind_s"].items()):
        if math.isinf(seconds):
            last = max((op for op in run.history if op.kind == kind and _unserved(op)), key=lambda o: o.start)
            errors.append(f"{kind} never came back after the fault at t={run.fault_start:.2f}s: "
                          f"the last one failed ({_outcome(last)})")
    return found(errors)


def few_writes_in_doubt(run):
    """Check that at most max_in_doubt_share of the writes sent (or MIN_IN_DOUBT, if more) ended in doubt.

    Each write in doubt is one the checks can only bound, not verify: past
    the bound, a run that passes proves too little.
    """
    writes = [op for op in run.history if op.kind in WRITES]
    in_doubt = [op for op in writes if op.outcome == "indeterminate"]
    bound = max(MIN_IN_DOUBT, math.floor(run.max_in_doubt_share * len(writes)))
    errors = [] if len(in_doubt) <= bound else [
        f"{len(in_doubt)} of {len(writes)} writes ended in doubt, over the bound of {bound} "
        f"({run.max_in_doubt_share:.0%}); the first at t={min(op.start for op in in_doubt):.2f}s"]
    return found(errors, in_doubt=len(in_doubt), writes=len(writes), bound=bound)


def within_availability_budget(run):
    """Check that no measured availability figure exceeds the scenario's budget."""
    budget = dict(run.budget or {})
    measured = {name: run.availability[name] for name in BUDGET_FIGURES}
    errors = [f"unknown budget figure {name!r} (known: {', '.join(BUDGET_FIGURES)})"
              for name in budget if name not in measured]
    errors += [f"{name} was {measured[name]}, over the budget of {limit}"
               for name, limit in budget.items() if name in measured and measured[name] > limit]
    return found(errors, budget=budget, measured=measured)


def catalogue_reads_fresh(run):
    """Check that no product view showed a version older than one acknowledged freshness_s before the view."""
    acked = {}
    for op in run.edits:
        if op.kind == "edit" and op.outcome == "ok" and op.result.get("version") is not None:
            acked.setdefault(op.args["product_id"], []).append((op.end, op.result["version"]))
    errors, judged, max_stale = [], 0, 0.0
    for op in sorted(run.history, key=lambda o: o.start):
        versions = acked.get(op.args.get("product_id")) if op.kind == "view" else None
        if not versions or op.outcome != "ok" or op.result.get("version") is None:
            continue
        judged += 1
        seen = op.result["version"]
        newer = [end for end, v in versions if v > seen and end < op.start]
        if not newer:
            continue
        stale_s = op.start - min(newer)
        max_stale = max(max_stale, stale_s)
        if stale_s > run.freshness_s:
            newest = max(v for end, v in versions if end < op.start)
            errors.append((op.start, f"{op.user} read product {op.args['product_id']} at version {seen} "
                                     f"at t={op.start:.2f}s ({op.served_by}), {stale_s:.2f} s after a newer one "
                                     f"was acknowledged (newest then: {newest}; bound {run.freshness_s} s)"))
    return found(_by_time(errors), judged=judged, max_stale_s=round(max_stale, 3), bound=run.freshness_s)


def orders_invoiced_once(run):
    """Check that the queue drained and that every order got exactly one invoice, of its total, on every node.

    Every checkout queues an invoice job with its order (app/labapp/jobs.py);
    a worker killed or frozen mid-job must cost a retry, never a lost or a
    second invoice, and no job may end parked.
    """
    snap, errors = run.snapshot, []
    queue = snap["queue"]
    if not queue["drained"]:
        errors.append(f"the job queue did not drain: {queue['left']} left")
    for job in queue["parked"]:
        errors.append(f"job {job['id']} ({job['kind']} of order {job['order_id']}) was parked after "
                      f"{job['attempts']} attempts: {job['last_error']}")
    invoiced = 0
    for node in DB_NODES:
        invoices = snap["invoices"].get(node, {})
        for oid in sorted(set(snap["orders"].get(node, {})) | set(invoices)):
            inv = invoices.get(oid)
            if inv is None or inv["invoiced"] is None:
                errors.append(f"order {oid} has no invoice on {node}")
            elif inv["invoiced"] != inv["order_total"]:
                errors.append(f"order {oid}'s invoice on {node} is for {inv['invoiced']} cents, "
                              f"the order for {inv['order_total']}")
            else:
                invoiced += node == DB_NODES[0]
        for oid in snap["orphan_invoices"].get(node, []):
            errors.append(f"invoice for order {oid} on {node}, which holds no such order")
    return found(errors, invoiced=invoiced)


CHECKS = (
    acknowledged_orders_present,
    orders_hold_their_cart,
    no_unrequested_or_duplicate_orders,
    orders_belong_to_their_user,
    carts_follow_the_model,
    failed_ops_had_no_effect,
    nodes_converged,
    sessions_survive,
    users_stay_on_their_node,
    at_most_one_writer,
    writers_follow_the_terms,
    orders_came_from_their_terms,
    every_node_sampled,
    acknowledged_orders_never_disappear,
    service_recovered,
    few_writes_in_doubt,
    within_availability_budget,
    catalogue_reads_fresh,
    orders_invoiced_once,
)


# --- Availability -------------------------------------------------------------------------

def _unserved(op):
    """Tell whether OP failed for want of service (a refusal of a stale request is an answer)."""
    if op.outcome == "ok":
        return False
    return op.outcome == "indeterminate" or op.status not in ANSWERS


def recovery(history, fault_start, until=math.inf):
    """Return {kind: seconds from the fault to service back} for each kind of work after the fault.

    "Back" is the end of the first success that started after the kind's
    last failure at or after the fault (and before UNTIL); 0 when it never
    failed, inf when it never came back.
    """
    out = {}
    for kind in sorted({op.kind for op in history if op.kind not in NOT_WORK}):
        ops = [op for op in history if op.kind == kind and op.start >= fault_start]
        failures = [op for op in ops if _unserved(op) and op.start < until]
        if not failures:
            out[kind] = 0.0
            continue
        last_failure = max(op.start for op in failures)
        back = min((op.end for op in ops if op.outcome == "ok" and op.start > last_failure), default=None)
        out[kind] = round(back - fault_start, 3) if back is not None else math.inf
    return out


def longest_outage(failed):
    """The longest outage among the FAILED requests, in seconds (see longest_outage_s)."""
    longest, start, end = 0.0, None, None
    for op in sorted(failed, key=lambda o: o.start):
        if start is None or op.start > end + OUTAGE_GAP_S:
            start, end = op.start, op.end
        end = max(end, op.end)
        longest = max(longest, end - start)
    return round(longest, 3)


def availability(history, fault_start, until=math.inf):
    """Return the availability figures of HISTORY up to UNTIL (see the module docstring)."""
    work = [op for op in history if op.kind not in NOT_WORK and op.start < until]
    after = [op for op in work if op.start >= fault_start and _unserved(op)]
    by_kind = recovery(history, fault_start, until)
    return {
        "failed_requests": sum(map(_unserved, work)),
        "failure_span_s": round(max(op.end for op in after) - min(op.start for op in after), 3) if after else 0.0,
        "longest_outage_s": longest_outage(after),
        "recovery_by_kind_s": by_kind,
        "recovery_s": max(by_kind.values(), default=0.0),
    }


def _counts(run, checks):
    """Return the scenario's counts (see the module docstring)."""
    work = [op for op in run.history if op.kind not in NOT_WORK]
    return {
        "operations": len(work),
        "failed_requests": run.availability["failed_requests"],
        "client_errors": sum(op.outcome == "fail" and op.status in ANSWERS for op in work),
        "indeterminate": sum(op.outcome == "indeterminate" for op in work),
        "acknowledged_writes": sum(op.kind in WRITES and op.outcome == "ok" for op in work),
        "acknowledged_orders": len(run.acked_orders),
        "lost_writes": checks["acknowledged_orders_present"]["lost"] + checks["carts_follow_the_model"]["errors"],
        "duplicate_writes": checks["no_unrequested_or_duplicate_orders"]["errors"],
        "unverifiable_carts": checks["carts_follow_the_model"]["unverifiable"],
        "unverifiable_orders": checks["orders_hold_their_cart"]["contents_unverifiable"],
        "recovery_s": run.availability["recovery_s"],
        "recovery_by_kind_s": run.availability["recovery_by_kind_s"],
        "failure_span_s": run.availability["failure_span_s"],
        "longest_outage_s": run.availability["longest_outage_s"],
        "writer_samples": len(run.writer_samples),
        "order_samples": len(run.order_samples),
    }


def check(history, final_carts, snapshot, fault_start, fault_end, killed_web_nodes=(), *,
          writer_samples=(), order_samples=(), writer_readings=(), sample_counts=None, budget=None,
          in_flight_s=math.inf, max_states=MAX_STATES,
          judged_until=math.inf, max_in_doubt_share=MAX_IN_DOUBT_SHARE, edits=(), freshness_s=FRESHNESS_S):
    """Judge HISTORY and FINAL_CARTS against SNAPSHOT, SAMPLES and BUDGET with every check in CHECKS."""
    run = Run(list(history), dict(final_carts), snapshot, fault_start, fault_end, frozenset(killed_web_nodes),
              list(writer_samples), list(order_samples), list(writer_readings), sample_counts, budget,
              in_flight_s, max_states, judged_until, max_in_doubt_share, list(edits), freshness_s)
    verdict = Verdict()
    for chk in CHECKS:
        try:
            errors, extra = chk(run)
        except Exception as exc:  # noqa: BLE001 - one broken check must not lose the whole verdict
            errors, extra = [f"the check itself failed: {type(exc).__name__}: {exc}"], {}
        verdict.add(chk.__name__, errors, **extra)
    verdict.counts = _counts(run, verdict.checks)
    return verdict
