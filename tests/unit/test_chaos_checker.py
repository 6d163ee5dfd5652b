"""The chaos checker judges made-up histories correctly (no lab needed)."""
import pytest

from chaos.checker import DB_NODES, check, possible_states, recovery
from chaos.workload import Op

FAULT = (10.0, 20.0)


def op(kind, start, outcome="ok", user="u-0", served_by="web1", status=None, args=None, result=None):
    """Make one Op of the history."""
    status = status or {"ok": 200, "fail": 400, "indeterminate": None}[outcome]
    return Op(user, kind, start, start + 0.01, outcome, status, served_by if outcome == "ok" else None,
              args=args or {}, result=result or {})


def history():
    """A user who logs in, adds two products, checks out, then adds one more."""
    return [
        op("login", 1),
        op("add", 2, args={"product_id": 3, "qty": 2}, result={"cart": {3: 2}}),
        op("add", 3, args={"product_id": 5, "qty": 1}, result={"cart": {3: 2, 5: 1}}),
        op("checkout", 4, args={"key": "k1"}, result={"order_id": 101}),
        op("add", 12, "indeterminate", args={"product_id": 7, "qty": 1}),
        op("add", 15, "fail", args={"product_id": 7, "qty": 1}),
        op("add", 22, args={"product_id": 7, "qty": 1}, result={"cart": {7: 2}}),
    ]


def final(cart):
    """The cart read after the heal."""
    return {"u-0": op("final-cart", 30, result={"cart": cart})}


def db(orders=None, checksums=None):
    """A DB snapshot where every node holds ORDERS (default: order 101 as placed)."""
    orders = {101: {"user_id": 7, "username": "u-0", "key": "k1", "items": {3: 2, 5: 1}}} \
        if orders is None else orders
    return {
        "user_ids": {"u-0": 7},
        "orders": {node: dict(orders) for node in DB_NODES},
        "checksums": checksums or {node: {"orders": "1", "order_items": "2", "users": "3", "products": "4"}
                                   for node in DB_NODES},
        "target": {1: 10, 2: 10},
        "positions": {node: {1: 10, 2: 10} for node in DB_NODES},
        "reached": {node: True for node in DB_NODES},
    }


def failed_checks(verdict):
    """Return the names of the checks that failed."""
    return {name for name, c in verdict.checks.items() if not c["ok"]}


def test_a_consistent_history_passes():
    v = check(history(), final({7: 2}), db(), *FAULT)
    assert v.valid, v.checks
    assert v.counts["acknowledged_orders"] == 1
    assert v.counts["lost_writes"] == 0


def test_a_missing_acknowledged_order_fails_with_the_first_bad_example():
    snapshot = db()
    del snapshot["orders"]["master2"][101]
    v = check(history(), final({7: 2}), snapshot, *FAULT)
    assert not v.valid
    assert failed_checks(v) == {"acknowledged orders on every node"}
    assert "order 101" in v.checks["acknowledged orders on every node"]["first_error"]
    assert "master2" in v.checks["acknowledged orders on every node"]["first_error"]
    assert v.counts["lost_writes"] == 1


def test_an_order_with_other_contents_fails():
    snapshot = db({101: {"user_id": 7, "username": "u-0", "key": "k1", "items": {3: 1}}})
    assert "acknowledged orders on every node" in failed_checks(check(history(), final({7: 2}), snapshot, *FAULT))


def test_a_second_order_from_one_checkout_is_a_duplicate():
    snapshot = db({101: {"user_id": 7, "username": "u-0", "key": "k1", "items": {3: 2, 5: 1}},
                   102: {"user_id": 7, "username": "u-0", "key": "k1", "items": {3: 2, 5: 1}}})
    v = check(history(), final({7: 2}), snapshot, *FAULT)
    assert failed_checks(v) == {"no duplicate orders"}
    assert v.counts["duplicate_writes"] == 1


def test_a_lost_cart_update_fails():
    v = check(history(), final({7: 1}), db(), *FAULT)
    assert failed_checks(v) == {"carts are what was acknowledged"}


@pytest.mark.parametrize("cart", [pytest.param({}, id="not-applied"), pytest.param({7: 1}, id="applied")])
def test_an_indeterminate_add_may_or_may_not_have_happened(cart):
    states, _ = possible_states(history()[:6])
    assert tuple(sorted(cart.items())) in states


def test_diverged_nodes_fail():
    sums = {node: {"orders": "1", "order_items": "2", "users": "3", "products": "4"} for node in DB_NODES}
    sums["slave1"]["orders"] = "999"
    assert failed_checks(check(history(), final({7: 2}), db(checksums=sums), *FAULT)) == {"DB nodes converged"}


def test_a_user_logged_out_or_moved_to_another_node_fails():
    h = history() + [op("cart", 23, "fail", status=401), op("view", 24, served_by="web2")]
    assert failed_checks(check(h, final({7: 2}), db(), *FAULT)) == {
        "sessions survive", "users stay on their web node"}
    # ... unless the node was killed: then moving is expected.
    h = history() + [op("view", 24, served_by="web2")]
    assert check(h, final({7: 2}), db(), *FAULT, killed_web_nodes={"web1"}).valid


def test_recovery_is_the_time_from_the_fault_to_service_back():
    h = [op("view", 9), op("view", 11, "fail"), op("view", 13.5, "fail"), op("view", 14),
         op("browse", 12)]
    assert recovery(h, FAULT[0]) == {"view": pytest.approx(4.01), "browse": 0.0}


def test_too_many_unknown_outcomes_make_contents_unverifiable_not_wrong():
    unknown = [op("add", 5 + i * 0.1, "indeterminate", args={"product_id": 1 + i % 12, "qty": 1})
               for i in range(12)]
    h = history()[:3] + unknown + [op("checkout", 8, args={"key": "k9"}, result={"order_id": 103}),
                                   op("cart", 9, result={"cart": {}})]
    snapshot = db({103: {"user_id": 7, "username": "u-0", "key": "k9", "items": {3: 2, 5: 1, 1: 1}}})
    v = check(h, final({}), snapshot, *FAULT)
    assert v.valid, v.checks
    assert v.checks["acknowledged orders on every node"]["contents_unverifiable"] == 1
