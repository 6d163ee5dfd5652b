"""The chaos checker judges made-up histories correctly (no lab, no containers).

Each anomaly case feeds one made-up history and snapshot and asserts that
exactly the check that exists to catch it fails, with the example named in
its first error; each "may or may not" case asserts that every outcome the
history allows passes.
"""
import math
import random
import re

import pytest

from labctl.chaos.checker import CHECKS, CHECKSUM_TABLES, DB_NODES, availability, check, recovery
from labctl.chaos.workload import Op
from labctl import settings

FAULT = (10.0, 20.0)
USER_IDS = {"u-0": 7, "u-1": 8}
# The counts the chaos report prints (tests/chaos/report.py).
REPORTED_COUNTS = ("operations", "failed_requests", "indeterminate", "recovery_s", "recovery_by_kind_s",
                   "acknowledged_writes", "acknowledged_orders", "lost_writes", "duplicate_writes")


def op(kind, start, outcome="ok", user="u-0", served_by="web1", status=None, args=None, result=None):
    """Make one Op of the history (a failure is HAProxy's 503 unless STATUS says otherwise)."""
    status = status or {"ok": 200, "fail": 503, "indeterminate": 504}[outcome]
    return Op(user, kind, start, start + 0.01, outcome, status, served_by if outcome == "ok" else None,
              args=args or {}, result=result or {})


def add(start, pid, qty, cart=None, outcome="ok", status=None):
    """An add of QTY of product PID; CART is what an acknowledged add showed."""
    return op("add", start, outcome, status=status, args={"product_id": pid, "qty": qty},
              result={"cart": cart} if cart is not None else None)


def remove(start, pid, cart=None, outcome="ok", status=None):
    """A remove of product PID; CART is what an acknowledged remove showed."""
    return op("remove", start, outcome, status=status, args={"product_id": pid},
              result={"cart": cart} if cart is not None else None)


def cart(start, shown):
    """An acknowledged read of the cart that showed SHOWN."""
    return op("cart", start, result={"cart": shown})


def checkout(start, key, order_id=None, outcome="ok", status=None):
    """A checkout with idempotency key KEY; ORDER_ID is what an acknowledged one returned."""
    return op("checkout", start, outcome, status=status, args={"key": key},
              result={"order_id": order_id} if order_id is not None else None)


def history():
    """A user who logs in, adds two products, checks out, then adds one more across the fault."""
    return [
        op("login", 1),
        add(2, 3, 2, {3: 2}),
        add(3, 5, 1, {3: 2, 5: 1}),
        checkout(4, "k1", 101),
        add(12, 7, 1, outcome="indeterminate"),
        add(15, 7, 1, outcome="fail"),
        add(22, 7, 1, {7: 2}),
    ]


def final(shown, user="u-0"):
    """The cart read after the heal, which showed SHOWN."""
    return {user: op("final-cart", 30, user=user, result={"cart": shown})}


def order(key, items, user="u-0", user_id=None, origin_server=1, origin_term=5):
    """An order row as the snapshot holds it (committed by server 1 in term 5, by default)."""
    return {"user_id": USER_IDS[user] if user_id is None else user_id, "username": user, "key": key,
            "items": items, "origin_server": origin_server, "origin_term": origin_term}


def snapshot(orders=None):
    """A converged snapshot where every node holds ORDERS (default: order 101 as placed)."""
    orders = {101: order("k1", {3: 2, 5: 1})} if orders is None else orders
    return {
        "user_ids": dict(USER_IDS),
        "orders": {node: dict(orders) for node in DB_NODES},
        "checksums": {node: {table: f"sum-{table}" for table in CHECKSUM_TABLES} for node in DB_NODES},
        "target": {1: 10, 2: 10},
        "positions": {node: {1: 10, 2: 10} for node in DB_NODES},
        "reached": {node: True for node in DB_NODES},
        # Every order invoiced once, for its total; the job queue drained.
        "invoices": {node: {oid: {"order_total": 1000, "invoiced": 1000, "attempt": 1} for oid in orders}
                     for node in DB_NODES},
        "orphan_invoices": {node: [] for node in DB_NODES},
        "queue": {"drained": True, "left": {}, "parked": []},
    }


def run(hist=None, finals=None, snap=None, **kw):
    """Return check()'s verdict; by default on the consistent history."""
    hist = history() if hist is None else hist
    return check(hist, final({7: 2}) if finals is None else finals, snapshot() if snap is None else snap,
                 *FAULT, **kw)


def failed_checks(verdict):
    """Return the names of the checks that failed."""
    return {name for name, c in verdict.checks.items() if not c["ok"]}


def shopper(*ops):
    """A user who logs in and puts 2 of product 3 in the cart at t=2, then does OPS."""
    return [op("login", 1), add(2, 3, 2, {3: 2}), *ops]


# --- A consistent run passes --------------------------------------------------------------

WRITER_SAMPLES = [{"t": 5.0, "writable": ["master1"], "unreachable": []},
                  {"t": 14.0, "writable": [], "unreachable": ["master1"]},
                  {"t": 16.0, "writable": ["master2"], "unreachable": ["master1"]}]
ORDER_SAMPLES = [{"t": 5.0, "node": "master1", "writable": True, "orders": {101}},
                 {"t": 16.0, "node": "master1", "writable": False, "orders": set()},
                 {"t": 16.0, "node": "master2", "writable": True, "orders": {101}}]


def test_a_consistent_history_passes():
    v = run(writer_samples=WRITER_SAMPLES, order_samples=ORDER_SAMPLES, writer_readings=WRITER_READINGS,
            sample_counts=SAMPLE_COUNTS, budget={"failed_requests": 2, "failure_span_s": 5.0, "recovery_s": 15.0})
    assert v.valid, failed_checks(v)
    assert set(v.checks) == {c.__name__ for c in CHECKS}
    assert set(REPORTED_COUNTS) <= set(v.counts)
    assert v.counts["acknowledged_orders"] == 1 and v.counts["acknowledged_writes"] == 4
    assert v.counts["lost_writes"] == 0 and v.counts["duplicate_writes"] == 0
    assert v.checks["at_most_one_writer"]["sampled"] == 3
    assert v.checks["acknowledged_orders_never_disappear"]["sampled"] == 3
    assert v.checks["writers_follow_the_terms"]["sampled"] == 2
    assert v.checks["every_node_sampled"]["counts"] == SAMPLE_COUNTS


def test_check_leaves_its_inputs_as_they_were():
    hist, finals, snap = history(), final({7: 2}), snapshot()
    check(hist, finals, snap, *FAULT, writer_samples=WRITER_SAMPLES, order_samples=ORDER_SAMPLES)
    assert (hist, finals, snap) == (history(), final({7: 2}), snapshot())


def test_unsampled_safety_checks_pass_and_say_so():
    v = run()
    for name in ("at_most_one_writer", "acknowledged_orders_never_disappear", "writers_follow_the_terms"):
        assert v.checks[name]["ok"] and v.checks[name]["sampled"] == 0
    assert v.checks["every_node_sampled"]["sampled"] == "not observed"


def test_a_check_that_breaks_fails_alone_and_says_why():
    v = run(writer_readings=[{"node": "master1"}])     # a malformed reading: no term, no times
    assert failed_checks(v) == {"writers_follow_the_terms"}
    assert "the check itself failed" in v.checks["writers_follow_the_terms"]["first_error"]


# --- Each anomaly fails exactly its check, naming the example -----------------------------

def lost_cart_update():
    """An acknowledged cart {3: 2}, then an acknowledged add that shows only {5: 1}."""
    return {"hist": shopper(add(3, 5, 1, {5: 1})), "finals": final({5: 1}), "snap": snapshot({})}


def order_of_a_409_checkout():
    """A checkout that got 409, and yet its order is in the DB."""
    return {"hist": shopper(checkout(3, "k2", outcome="fail", status=409)), "finals": final({3: 2}),
            "snap": snapshot({102: order("k2", {3: 2})})}


def failed_add_shows_up():
    """An add that failed (HAProxy's 503: it reached no web node), later in the cart."""
    return {"hist": shopper(add(3, 5, 1, outcome="fail"), cart(4, {3: 2, 5: 1})),
            "finals": final({3: 2, 5: 1}), "snap": snapshot({})}


def cart_back_after_checkout():
    """The cart shows again what an acknowledged checkout turned into an order."""
    return {"hist": shopper(checkout(3, "k1", 101), cart(4, {3: 2})), "finals": final({3: 2}),
            "snap": snapshot({101: order("k1", {3: 2})})}


def writes_fail_for_the_whole_run():
    """Every add after the fault fails, to the end: the service never came back."""
    return {"hist": shopper(add(11, 5, 1, outcome="indeterminate"), add(12, 5, 1, outcome="fail"),
                            add(25, 5, 1, outcome="fail"), cart(26, {3: 2})),
            "finals": final({3: 2}), "snap": snapshot({})}


def cart_emptied_without_an_order():
    """An indeterminate checkout left no order anywhere, yet the cart was emptied."""
    return {"hist": shopper(checkout(3, "k2", outcome="indeterminate"), cart(4, {})),
            "finals": final({}), "snap": snapshot({})}


def order_whose_cart_was_kept():
    """An order of {3: 2} from an indeterminate checkout, though an add afterwards still saw {3: 2}."""
    return {"hist": shopper(checkout(3, "k2", outcome="indeterminate"), add(4, 5, 1, {3: 2, 5: 1})),
            "finals": final({3: 2, 5: 1}), "snap": snapshot({102: order("k2", {3: 2})})}


def indeterminate_add_before_it_started():
    """A cart shows an add that was only sent afterwards."""
    return {"hist": shopper(cart(3, {3: 2, 5: 1}), add(4, 5, 1, outcome="indeterminate")),
            "finals": final({3: 2, 5: 1}), "snap": snapshot({})}


def lost_order():
    """Order 101 was acknowledged, but master2 does not hold it."""
    snap = snapshot()
    del snap["orders"]["master2"][101]
    return {"snap": snap}


def with_orders(orders):
    """Every node holds ORDERS."""
    return lambda: {"snap": snapshot(orders)}


def with_snapshot(change):
    """The default snapshot, as CHANGE leaves it."""
    def case():
        snap = snapshot()
        change(snap)
        return {"snap": snap}
    return case


def not_reached(snap):
    snap["reached"]["slave1"], snap["positions"]["slave1"] = False, {1: 9, 2: 10}


def sessions_differ(snap):
    snap["checksums"]["slave1"]["sessions"] = "999"


def sessions_not_checksummed(snap):
    del snap["checksums"]["master2"]["sessions"]


def invoice_missing(snap):
    snap["invoices"]["slave1"][101]["invoiced"] = None


def invoice_of_another_total(snap):
    snap["invoices"]["master2"][101]["invoiced"] = 999


def invoice_without_its_order(snap):
    snap["orphan_invoices"]["master1"] = [555]


def job_parked(snap):
    snap["queue"]["parked"] = [{"id": 9, "kind": "invoice", "order_id": 101, "attempts": 4,
                                "last_error": "its worker was lost on attempt 4"}]


def queue_not_drained(snap):
    snap["queue"].update(drained=False, left={"queued": 3})


def unreadable_final_cart():
    """The read of the cart after the heal failed."""
    return {"finals": {"u-0": op("final-cart", 30, "fail", status=503)}}


def no_final_cart():
    """The cart was never read after the heal."""
    return {"finals": {}}


def logged_out():
    """A logged-in user got a 401."""
    return {"hist": history() + [op("cart", 23, "fail", status=401)]}


def moved_to_another_node():
    """A user stuck to web1 (which did not die) was served by web2."""
    return {"hist": history() + [op("view", 24, served_by="web2")]}


def two_writable_masters():
    """A sample saw both masters writable."""
    return {"writer_samples": WRITER_SAMPLES + [{"t": 13.0, "writable": ["master2", "master1"],
                                                 "unreachable": []}]}


def acknowledged_order_missing_on_the_writer():
    """The writer, sampled after order 101 was acknowledged, does not hold it."""
    return {"order_samples": ORDER_SAMPLES + [{"t": 17.0, "node": "master1", "writable": True,
                                               "orders": set()}]}


def order_seen_then_gone():
    """An order seen on the writer is missing on the next writer."""
    return {"order_samples": [{"t": 3.0, "node": "master1", "writable": True, "orders": {99}},
                              {"t": 16.0, "node": "master2", "writable": True, "orders": {101}}]}


WRITER_READINGS = [{"node": "master1", "term": 5, "t": 5.0, "t_end": 5.01},
                   {"node": "master2", "term": 9, "t": 16.0, "t_end": 16.01}]
SAMPLE_COUNTS = {n: {"answered": 300, "failed": 0, "per_s": 10.0} for n in DB_NODES}


def one_term_two_writers():
    """Two nodes were sampled writable in the same term."""
    return {"writer_readings": WRITER_READINGS + [{"node": "master2", "term": 5, "t": 6.0, "t_end": 6.01}]}


def deposed_writer_still_writable():
    """master1 was sampled writable in term 5 after master2 was, in term 9."""
    return {"writer_readings": WRITER_READINGS + [{"node": "master1", "term": 5, "t": 17.0, "t_end": 17.01}]}


def order_of_an_older_term_after_a_newer_one():
    """Order 102 (term 5) was placed after order 101 (term 9) was acknowledged: a stale writer took it."""
    hist = shopper(checkout(3, "k1", 101), add(4, 5, 1, {5: 1}), checkout(5, "k2", 102))
    return {"hist": hist, "finals": final({}),
            "snap": snapshot({101: order("k1", {3: 2}, origin_server=2, origin_term=9),
                              102: order("k2", {5: 1}, origin_server=1, origin_term=5)})}


def two_servers_in_one_term():
    """Orders of one term came from two servers."""
    hist = shopper(checkout(3, "k1", 101), add(4, 5, 1, {5: 1}), checkout(5, "k2", 102))
    return {"hist": hist, "finals": final({}),
            "snap": snapshot({101: order("k1", {3: 2}, origin_server=1, origin_term=5),
                              102: order("k2", {5: 1}, origin_server=2, origin_term=5)})}


def order_in_no_term():
    """An acknowledged order was committed where no term was held (ha.lease empty)."""
    return {"snap": snapshot({101: order("k1", {3: 2, 5: 1}, origin_term=None)})}


def a_node_barely_sampled():
    """The observer read slave1 only twice a second."""
    return {"sample_counts": {**SAMPLE_COUNTS, "slave1": {"answered": 60, "failed": 240, "per_s": 2.0}}}


def writes_in_doubt(n):
    """N removes of a product the cart never held ended in doubt (whether applied or not, the cart is the same)."""
    return lambda: {"hist": shopper(*[remove(3 + i / 100, 9, outcome="indeterminate") for i in range(n)]),
                    "finals": final({3: 2}), "snap": snapshot({})}


def edit(start, pid, version, outcome="ok"):
    """The admin's change of product PID, acknowledged with VERSION (its end: START + 0.01)."""
    return op("edit", start, outcome, user="admin", args={"product_id": pid, "price_cents": 100},
              result={"version": version} if outcome == "ok" else None)


def view(start, pid, version):
    """A shopper's acknowledged view of product PID that showed VERSION."""
    return op("view", start, args={"product_id": pid}, result={"version": version})


def stale_product_view():
    """Version 2 of product 1 was acknowledged at t=5.01; a view at t=8 still showed version 1."""
    return {"hist": history() + [view(8, 1, 1)], "edits": [edit(5, 1, 2)]}


def over_budget(budget):
    """The consistent history (2 failed requests over 3.01 s) held to BUDGET."""
    return lambda: {"budget": budget}


ANOMALIES = [
    pytest.param(lost_cart_update, "carts_follow_the_model",
                 ["u-0: add at t=3.00s showed {5: 1}", "expected {3: 2, 5: 1}"], id="lost-cart-update"),
    pytest.param(order_of_a_409_checkout, "failed_ops_had_no_effect",
                 ["order 102 of u-0", "'k2' failed (409 at t=3.00s)"], id="order-for-a-409-checkout"),
    pytest.param(failed_add_shows_up, "failed_ops_had_no_effect",
                 ["u-0: cart at t=4.00s showed {3: 2, 5: 1}", "expected {3: 2}", "failed add",
                  "503 at t=3.00s"], id="failed-add-shows-up"),
    pytest.param(cart_back_after_checkout, "carts_follow_the_model",
                 ["u-0: cart at t=4.00s showed {3: 2}", "expected {}"], id="cart-back-after-checkout"),
    pytest.param(writes_fail_for_the_whole_run, "service_recovered",
                 ["add never came back", "503 at t=25.00s"], id="writes-fail-for-the-whole-run"),
    pytest.param(cart_emptied_without_an_order, "carts_follow_the_model",
                 ["u-0: cart at t=4.00s showed {}", "expected {3: 2}"], id="cart-emptied-without-an-order"),
    pytest.param(order_whose_cart_was_kept, "orders_hold_their_cart",
                 ["order 102 of u-0", "holds {3: 2}", "expected {3: 2, 5: 1}"], id="order-whose-cart-was-kept"),
    pytest.param(indeterminate_add_before_it_started, "carts_follow_the_model",
                 ["u-0: cart at t=3.00s showed {3: 2, 5: 1}", "expected {3: 2}"],
                 id="indeterminate-add-before-it-started"),
    pytest.param(lost_order, "acknowledged_orders_present",
                 ["order 101 of u-0", "t=4.01s", "missing on master2"], id="lost-order"),
    pytest.param(with_orders({101: order("k1", {3: 1})}), "orders_hold_their_cart",
                 ["u-0: checkout 'k1' (order 101) at t=4.00s", "holding {3: 1}", "the cart was {3: 2, 5: 1}"],
                 id="order-with-other-contents"),
    pytest.param(with_orders({101: order("k1", {3: 2, 5: 1}), 102: order("k1", {3: 2, 5: 1})}),
                 "no_unrequested_or_duplicate_orders", ["orders [101, 102] of u-0", "'k1'"], id="duplicate-order"),
    pytest.param(with_orders({101: order("k1", {3: 2, 5: 1}), 103: order("k-forged", {1: 1})}),
                 "no_unrequested_or_duplicate_orders", ["order 103 of u-0", "'k-forged'", "no checkout sent"],
                 id="order-with-a-key-no-checkout-sent"),
    pytest.param(with_orders({101: order("k1", {3: 2, 5: 1}, user_id=8)}), "orders_belong_to_their_user",
                 ["order 101 of u-0", "user id 8", "u-0 is user 7"], id="order-with-a-wrong-user-id"),
    pytest.param(with_orders({101: order("k1", {3: 2, 5: 1}, user="u-1")}), "orders_belong_to_their_user",
                 ["order 101", "belongs to u-1", "u-0 sent"], id="order-of-another-user"),
    pytest.param(unreadable_final_cart, "carts_follow_the_model",
                 ["u-0: final-cart", "could not be read", "503"], id="unreadable-final-cart"),
    pytest.param(no_final_cart, "carts_follow_the_model", ["u-0: final-cart", "no read"], id="no-final-cart"),
    pytest.param(with_snapshot(not_reached), "nodes_converged",
                 ["slave1 did not reach {1: 10, 2: 10}", "{1: 9, 2: 10}"], id="node-not-reached"),
    pytest.param(with_snapshot(sessions_differ), "nodes_converged",
                 ["table sessions differs", "'slave1': '999'"], id="sessions-checksum-differs"),
    pytest.param(with_snapshot(sessions_not_checksummed), "nodes_converged",
                 ["table sessions was not checksummed on master2"], id="sessions-not-checksummed"),
    pytest.param(with_snapshot(invoice_missing), "orders_invoiced_once", ["order 101 has no invoice on slave1"],
                 id="order-without-an-invoice"),
    pytest.param(with_snapshot(invoice_of_another_total), "orders_invoiced_once",
                 ["order 101's invoice on master2 is for 999 cents, the order for 1000"], id="invoice-of-another-total"),
    pytest.param(with_snapshot(invoice_without_its_order), "orders_invoiced_once",
                 ["invoice for order 555 on master1, which holds no such order"], id="invoice-without-its-order"),
    pytest.param(with_snapshot(job_parked), "orders_invoiced_once",
                 ["job 9 (invoice of order 101) was parked after 4 attempts", "worker was lost"], id="job-parked"),
    pytest.param(with_snapshot(queue_not_drained), "orders_invoiced_once",
                 ["the job queue did not drain", "'queued': 3"], id="queue-not-drained"),
    pytest.param(logged_out, "sessions_survive", ["u-0 was logged out", "cart at t=23.00s"], id="logged-out"),
    pytest.param(moved_to_another_node, "users_stay_on_their_node",
                 ["u-0 was on web1", "view at t=24.00s", "web2"], id="moved-to-another-node"),
    pytest.param(two_writable_masters, "at_most_one_writer",
                 ["at t=13.00s master1, master2 were all writable"], id="two-writable-masters"),
    pytest.param(acknowledged_order_missing_on_the_writer, "acknowledged_orders_never_disappear",
                 ["order 101 (of u-0, acknowledged at t=4.01s)", "missing on master1, writable at t=17.00s"],
                 id="acknowledged-order-missing-on-the-writer-later"),
    pytest.param(order_seen_then_gone, "acknowledged_orders_never_disappear",
                 ["order 99 (seen on master1 (writable) at t=3.00s)", "missing on master2"],
                 id="order-seen-on-a-writer-then-gone"),
    pytest.param(one_term_two_writers, "writers_follow_the_terms", ["term 5 had two writers: master1 and master2"],
                 id="one-term-two-writers"),
    pytest.param(deposed_writer_still_writable, "writers_follow_the_terms",
                 ["master1 was writable in term 5 at t=17.00s", "newer term 9"], id="deposed-writer-still-writable"),
    pytest.param(order_of_an_older_term_after_a_newer_one, "orders_came_from_their_terms",
                 ["order 102 of u-0 (term 5, server 1)", "after order 101 of the newer term 9"],
                 id="order-of-an-older-term-after-a-newer-one"),
    pytest.param(two_servers_in_one_term, "orders_came_from_their_terms",
                 ["term 5 has orders from servers [1, 2]"], id="two-servers-in-one-term"),
    pytest.param(order_in_no_term, "orders_came_from_their_terms", ["order 101 of u-0 was committed in no term"],
                 id="order-in-no-term"),
    pytest.param(a_node_barely_sampled, "every_node_sampled", ["slave1 was read 60 times (2.0/s)"],
                 id="a-node-barely-sampled"),
    pytest.param(writes_in_doubt(11), "few_writes_in_doubt", ["11 of 12 writes ended in doubt", "bound of 10"],
                 id="too-many-writes-in-doubt"),
    pytest.param(over_budget({"failed_requests": 0}), "within_availability_budget",
                 ["failed_requests was 2, over the budget of 0"], id="failed-requests-over-budget"),
    pytest.param(over_budget({"failure_span_s": 1.0}), "within_availability_budget",
                 ["failure_span_s was 3.01, over the budget of 1.0"], id="failure-span-over-budget"),
    pytest.param(over_budget({"longest_outage_s": 0.005}), "within_availability_budget",
                 ["longest_outage_s was 0.01, over the budget of 0.005"], id="outage-over-budget"),
    pytest.param(over_budget({"failed_request": 0}), "within_availability_budget",
                 ["unknown budget figure 'failed_request'"], id="misspelt-budget"),
    pytest.param(stale_product_view, "catalogue_reads_fresh",
                 ["u-0 read product 1 at version 1 at t=8.00s (web1), 2.99 s after a newer one",
                  "newest then: 2; bound 2.0 s"], id="stale-product-view"),
]


@pytest.mark.parametrize("case, failing, example", ANOMALIES)
def test_an_anomaly_fails_exactly_its_check(case, failing, example):
    v = run(**case())
    assert not v.valid
    assert failed_checks(v) == {failing}, {n: v.checks[n]["first_error"] for n in failed_checks(v)}
    for words in example:
        assert words in v.checks[failing]["first_error"]


def test_lost_and_duplicated_writes_are_counted():
    assert run(**lost_order()).counts["lost_writes"] == 1
    assert run(**lost_cart_update()).counts["lost_writes"] == 1
    assert run(**with_orders({101: order("k1", {3: 2, 5: 1}), 102: order("k1", {3: 2, 5: 1})})()
               ).counts["duplicate_writes"] == 1


def test_writes_in_doubt_within_the_bound_pass():
    v = run(**writes_in_doubt(10)())
    assert v.checks["few_writes_in_doubt"]["ok"], v.checks["few_writes_in_doubt"]
    assert (v.checks["few_writes_in_doubt"]["in_doubt"], v.checks["few_writes_in_doubt"]["bound"]) == (10, 10)


# --- What the history allows passes -------------------------------------------------------

ALLOWED = [
    pytest.param(shopper(add(3, 5, 1, outcome="indeterminate")), {3: 2, 5: 1}, {},
                 id="indeterminate-add-applied"),
    pytest.param(shopper(add(3, 5, 1, outcome="indeterminate")), {3: 2}, {}, id="indeterminate-add-not-applied"),
    pytest.param(shopper(checkout(3, "k2", outcome="indeterminate")), {}, {102: order("k2", {3: 2})},
                 id="indeterminate-checkout-emptied-the-cart"),
    pytest.param(shopper(checkout(3, "k2", outcome="indeterminate")), {3: 2}, {},
                 id="indeterminate-checkout-did-not"),
    pytest.param(shopper(checkout(3, "k2", outcome="indeterminate"), checkout(3.5, "k2", 102)), {},
                 {102: order("k2", {3: 2})}, id="checkout-retried-with-its-key-orders-once"),
    pytest.param(shopper(add(3, 5, 1, {3: 2, 5: 1}), remove(4, 5, outcome="indeterminate")), {3: 2}, {},
                 id="indeterminate-remove-applied"),
    pytest.param(shopper(add(3, 5, 1, {3: 2, 5: 1}), remove(4, 5, outcome="indeterminate")), {3: 2, 5: 1}, {},
                 id="indeterminate-remove-not-applied"),
    pytest.param(shopper(add(3, 7, 1, outcome="indeterminate"), add(4, 5, 1, {3: 2, 5: 1}),
                         cart(5, {3: 2, 5: 1, 7: 1})), {3: 2, 5: 1, 7: 1}, {},
                 id="indeterminate-add-applied-after-a-later-ok-add"),
    pytest.param(shopper(remove(3, 3, outcome="indeterminate"), add(4, 5, 1, {3: 2, 5: 1})), {5: 1}, {},
                 id="indeterminate-remove-applied-after-a-later-ok-add"),
    pytest.param(shopper(checkout(3, "k2", outcome="indeterminate"), add(4, 5, 1, {3: 2, 5: 1})), {},
                 {102: order("k2", {3: 2, 5: 1})}, id="indeterminate-checkout-applied-after-a-later-add"),
    pytest.param(shopper(remove(3, 5, outcome="fail", status=404), cart(4, {3: 2})), {3: 2}, {},
                 id="a-404-remove-is-an-answer"),
]


@pytest.mark.parametrize("hist, final_cart, orders", ALLOWED)
def test_what_the_history_allows_passes(hist, final_cart, orders):
    v = run(hist, final(final_cart), snapshot(orders))
    assert v.valid, {n: v.checks[n]["first_error"] for n in failed_checks(v)}


def test_an_indeterminate_write_cannot_take_effect_after_its_in_flight_window():
    hist = shopper(add(3, 7, 1, outcome="indeterminate"), add(4, 5, 1, {3: 2, 5: 1}), cart(5, {3: 2, 5: 1, 7: 1}))
    v = run(hist, final({3: 2, 5: 1, 7: 1}), snapshot({}), in_flight_s=0.5)
    assert failed_checks(v) == {"carts_follow_the_model"}
    assert "cart at t=5.00s showed {3: 2, 5: 1, 7: 1}" in v.checks["carts_follow_the_model"]["first_error"]


# --- Too many unknowns: unverifiable, never a false anomaly -------------------------------

# These histories are all unknowns on purpose: the share of writes in doubt is not what they test.
MODEL_ONLY = {"max_in_doubt_share": 1.0}


def unknowns(start=3.0):
    """Twelve indeterminate adds, one of each product: up to 4096 possible carts."""
    return [add(start + i * 0.1, pid, 1, outcome="indeterminate") for i, pid in enumerate(range(1, 13))]


def test_a_state_explosion_is_unverifiable_not_invalid():
    hist = shopper(*unknowns(), checkout(5, "k9", 109))
    # A bound of 3 states: the search gives up where the default would not.
    v = run(hist, final({}), snapshot({109: order("k9", {3: 3, 1: 1})}), max_states=3, **MODEL_ONLY)
    assert v.valid, {n: v.checks[n]["first_error"] for n in failed_checks(v)}
    assert v.counts["unverifiable_carts"] == 2          # the checkout, and the final read that pins again
    assert v.counts["unverifiable_orders"] == 1
    assert v.checks["orders_hold_their_cart"]["contents_unverifiable"] == 1


def test_an_acknowledged_cart_pins_the_state_again_after_an_explosion():
    hist = shopper(*unknowns(), cart(6, {3: 3, 1: 1}), add(7, 5, 1, {5: 1}))
    v = run(hist, final({5: 1}), snapshot({}), in_flight_s=1.0, max_states=3, **MODEL_ONLY)
    assert failed_checks(v) == {"carts_follow_the_model"}
    first_error = v.checks["carts_follow_the_model"]["first_error"]
    assert "add at t=7.00s showed {5: 1}, expected {1: 1, 3: 3, 5: 1}" in first_error
    assert v.counts["unverifiable_carts"] == 1


def test_the_db_orders_pin_what_a_checkout_held():
    # Without the DB's order as an observation, 4096 carts could have been checked out.
    hist = shopper(*unknowns(), checkout(5, "k9", 109))
    v = run(hist, final({}), snapshot({109: order("k9", {3: 3, 1: 1})}), max_states=8, **MODEL_ONLY)
    assert v.valid and v.counts["unverifiable_carts"] == 0 and v.counts["unverifiable_orders"] == 0


def test_the_search_follows_only_what_can_lead_to_what_the_app_showed():
    # 4096 subsets of unknown adds, but only 4 of them can end in the cart shown.
    hist = shopper(*unknowns(), cart(5, {3: 3, 1: 1}))
    v = run(hist, final({3: 3, 1: 1}), snapshot({}), max_states=8, **MODEL_ONLY)
    assert v.valid and v.counts["unverifiable_carts"] == 0


# --- Random histories of a correct shop pass; one lost update fails ----------------------

class Shop:
    """One user's side of a correct shop: the cart, orders by key, and writes still in flight."""

    def __init__(self):
        self.cart, self.orders, self.in_flight, self.next_id = {}, {}, [], 100

    def apply(self, kind, args):
        """Apply a write as the app does; return what it answers (None: a refusal, no effect)."""
        pid = args.get("product_id")
        if kind == "add" and self.cart.get(pid, 0) + args["qty"] <= 99:
            self.cart[pid] = self.cart.get(pid, 0) + args["qty"]
        elif kind == "remove" and pid in self.cart:
            del self.cart[pid]
        elif kind == "checkout" and (args["key"] in self.orders or self.cart):
            if args["key"] not in self.orders:
                self.next_id += 1
                self.orders[args["key"]] = (self.next_id, dict(self.cart))
                self.cart.clear()
            return self.orders[args["key"]][0]
        else:
            return None
        return dict(self.cart)

    def land(self, t):
        """Apply the writes in flight whose time has come."""
        for item in sorted(w for w in self.in_flight if w[0] <= t):
            self.in_flight.remove(item)
            self.apply(*item[1:])


def simulated(seed, n_ops=60, lose_an_update=False):
    """Return check()'s arguments for a random history of a correct shop (or one that loses an update)."""
    rng, shop, t, hist = random.Random(seed), Shop(), 2.0, [op("login", 1)]
    for i in range(n_ops):
        t += rng.uniform(0.05, 0.2)
        shop.land(t)
        kind = rng.choice(("add", "add", "add", "remove", "cart", "checkout"))
        args = {"add": {"product_id": rng.randint(1, 12), "qty": rng.randint(1, 3)},
                "remove": {"product_id": rng.randint(1, 12)}, "checkout": {"key": f"k{i}"}}.get(kind, {})
        roll, before = rng.random(), dict(shop.cart)
        if kind != "cart" and roll < 0.15:       # unknown outcome: lands within 3 s, or never
            hist.append(op(kind, t, "indeterminate", args=args))
            if rng.random() < 0.5:
                shop.in_flight.append((t + rng.uniform(0, 3), kind, args))
            continue
        answer = None if roll < 0.25 else dict(shop.cart) if kind == "cart" else shop.apply(kind, args)
        if answer is None:                       # HAProxy's 503, or the app's refusal
            hist.append(op(kind, t, "fail", args=args, status=None if roll < 0.25 else 404))
            continue
        hist.append(op(kind, t, args=args, result={"order_id": answer} if kind == "checkout" else {"cart": answer}))
        if lose_an_update and kind == "add" and i > n_ops // 2:
            shop.cart, lose_an_update = before, False     # acknowledged, then lost
    shop.land(math.inf)
    orders = {oid: order(key, items) for key, (oid, items) in shop.orders.items()}
    return {"hist": hist, "finals": final(dict(shop.cart)), "snap": snapshot(orders)}


@pytest.mark.parametrize("seed", range(8))
def test_random_histories_of_a_correct_shop_pass(seed):
    v = run(**simulated(seed))
    # The simulated shop fails at random to the end, so its service may never "come back".
    assert not failed_checks(v) - {"service_recovered"}, {n: v.checks[n]["first_error"] for n in failed_checks(v)}


@pytest.mark.parametrize("seed", range(8))
def test_a_random_history_with_a_lost_update_fails(seed):
    # The lost add shows in a later cart, or in the order it should have been part of.
    failed = failed_checks(run(**simulated(seed, lose_an_update=True)))
    assert failed and failed <= {"carts_follow_the_model", "orders_hold_their_cart"}


# --- Availability -------------------------------------------------------------------------

def test_recovery_is_the_time_from_the_fault_to_service_back():
    h = [op("view", 9), op("view", 11, "fail"), op("view", 13.5, "fail"), op("view", 14),
         op("browse", 12), op("cart", 12, "fail", status=429), op("login", 12, "fail")]
    assert recovery(h, FAULT[0]) == {"view": pytest.approx(4.01), "browse": 0.0, "cart": math.inf}


def test_a_refusal_of_a_stale_request_is_not_a_failure():
    h = [remove(12, 5, outcome="fail", status=404), checkout(13, "k", outcome="fail", status=400)]
    figures = availability(h, FAULT[0])
    assert figures["failed_requests"] == 0 and figures["failure_span_s"] == 0.0 and figures["recovery_s"] == 0.0


def test_the_failure_span_runs_from_the_first_failure_after_the_fault_to_the_end_of_the_last():
    h = [op("view", 5, "fail"), op("view", 11, "indeterminate"), op("view", 12), op("view", 14.5, "fail"),
         op("view", 15), op("login", 16, "fail"), op("final-cart", 40, "fail")]
    figures = availability(h, FAULT[0])
    assert figures["failure_span_s"] == pytest.approx(3.51)
    assert figures["failed_requests"] == 3


def test_failures_less_than_a_second_apart_are_one_outage():
    # A VIP moved at the cut (11-12.2 s) and again at the heal (15 s): two outages, the longest 1.21 s.
    h = [op("view", 11, "fail"), op("view", 11.5, "indeterminate"), op("view", 12.2, "fail"), op("view", 13),
         op("view", 15, "fail"), op("view", 16)]
    figures = availability(h, FAULT[0])
    assert figures["longest_outage_s"] == pytest.approx(1.21)
    assert figures["failure_span_s"] == pytest.approx(4.01)


def test_the_budget_check_shows_budget_and_measured_side_by_side():
    result = run(budget={"failure_span_s": 5.0}).checks["within_availability_budget"]
    assert result["ok"]
    assert result["budget"] == {"failure_span_s": 5.0}
    assert result["measured"] == {"failed_requests": 2, "failure_span_s": pytest.approx(3.01),
                                  "longest_outage_s": pytest.approx(0.01), "recovery_s": pytest.approx(12.01)}


# --- The snapshot covers every table the workload writes ----------------------------------

def test_every_workload_table_is_compared_across_nodes():
    schema = (settings.ROOT / "mysql" / "schema")
    sql = "".join((schema / name).read_text(encoding="utf-8") for name in ("10-sessions.sql", "20-shop.sql"))
    tables = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", sql))
    assert tables == {"sessions", "users", "products", "orders", "order_items", "cache_invalidations"}
    assert tables <= set(CHECKSUM_TABLES)


def test_views_within_the_freshness_bound_pass_and_the_worst_staleness_is_reported():
    edits = [edit(5, 1, 2), edit(5.5, 1, 3), edit(6, 2, 7, outcome="indeterminate")]
    hist = history() + [view(6.5, 1, 1),   # 1.49 s after version 2: inside the bound
                        view(6.6, 1, 3), view(7, 2, 6),  # product 2: no acknowledged change, not judged
                        view(20, 3, 1)]
    v = run(hist, edits=edits)
    fresh = v.checks["catalogue_reads_fresh"]
    assert fresh["ok"], fresh
    assert (fresh["judged"], fresh["max_stale_s"], fresh["bound"]) == (2, pytest.approx(1.49), 2.0)


def test_a_view_is_judged_against_the_bound_it_is_given():
    v = run(stale_product_view()["hist"], edits=stale_product_view()["edits"], freshness_s=3.5)
    assert v.checks["catalogue_reads_fresh"]["ok"]
