"""The chaos library's unit tests catch each of a list of small bugs planted in it.

A hand-rolled mutation check: for each mutation (one exact piece of a
module of labctl.chaos and what replaces it) the mutated module runs under
its unit tests in a subprocess, where a tiny plugin puts it in sys.modules
as labctl.chaos.<module> before the tests are collected; at least one
test must fail. The unmutated library must pass the same runs, or a
broken test file would "kill" every mutant. The subprocesses run in
parallel, a few seconds in all.

Covered: the checker (tests/unit/test_chaos_checker.py), and the parts
that judge before it does (tests/unit/test_chaos_parts.py): the
workload's outcome classification, the monitor's samples, the
snapshot's convergence and the scenarios' budgets.
"""
import concurrent.futures
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAOS = ROOT / "scripts" / "labctl" / "chaos"
# Which tests judge each module.
TESTS = {"checker": "tests/unit/test_chaos_checker.py", "workload": "tests/unit/test_chaos_parts.py",
         "monitor": "tests/unit/test_chaos_parts.py", "snapshot": "tests/unit/test_chaos_parts.py",
         "scenarios": "tests/unit/test_chaos_parts.py"}
TIMEOUT_S = 120

# Loaded by `-p mutant_swap` in the subprocess; runs once the ini's
# pythonpath is in place (pytest_configure), before any test module imports.
PLUGIN = textwrap.dedent('''
    import importlib.util, os, sys

    def pytest_configure(config):
        import labctl.chaos
        name = os.environ["MODULE_UNDER_TEST"]
        spec = importlib.util.spec_from_file_location("labctl.chaos." + name, os.environ["SOURCE_UNDER_TEST"])
        module = importlib.util.module_from_spec(spec)
        sys.modules["labctl.chaos." + name] = module
        spec.loader.exec_module(module)
        setattr(labctl.chaos, name, module)
''')

# (name, exact source text of checker.py, replacement). Each bug is one the checker exists to catch.
CHECKER_MUTATIONS = [
    ("one-term-may-have-two-writers",
     "        if other != r[\"node\"]:\n", "        if False:\n"),
    ("an-older-term-after-a-newer-one-is-fine",
     "        if newest is not None and newest[\"term\"] > r[\"term\"]:\n", "        if False:\n"),
    ("orders-may-come-from-an-older-term",
     "        if newest is not None and newest[2] > term:\n", "        if False:\n"),
    ("a-term-may-have-two-servers",
     "for t, ss in sorted(servers.items()) if len(ss) > 1]", "for t, ss in sorted(servers.items()) if False]"),
    ("any-sampling-rate-will-do",
     'if c["per_s"] < MIN_RATE_PER_S]', "if False]"),
    ("ignore-reached",
     'if not snap["reached"].get(node, False):', "if False:"),
    ("ignore-orders-with-unknown-keys",
     "        if key not in run.checkouts_by_key:\n", "        if False:\n"),
    ("ignore-an-unreadable-final-cart",
     'if final is None or final.outcome != "ok":', "if False:"),
    ("ignore-a-wrong-user-id",
     'elif row["user_id"] != user_ids.get(row["username"]):', "elif False:"),
    ("indeterminate-checkout-never-empties-the-cart",
     "    cart, orders = changed or (state.cart, state.orders)\n",
     "    cart, orders = changed or (state.cart, state.orders)\n"
     '    cart = state.cart if p.kind == "checkout" else cart\n'),
    ("indeterminate-remove-ignored",
     "if op.kind not in WRITES or not (", 'if op.kind not in ("add", "checkout") or not ('),
    ("failed-op-may-have-applied",
     'not (op.outcome == "indeterminate" or lenient)', 'not (op.outcome != "ok" or lenient)'),
    ("sessions-not-compared-across-nodes",
     '"order_items", "sessions", ', '"order_items", '),
    ("two-writable-masters-allowed",
     'if len(set(s["writable"])) > 1]', 'if len(set(s["writable"])) > 2]'),
    ("budget-comparison-inverted",
     "measured[name] > limit", "measured[name] < limit"),
    ("never-back-counts-as-recovered",
     "if back is not None else math.inf", "if back is not None else 0.0"),
    ("indeterminate-writes-apply-only-while-they-run",
     'window = in_flight_s if op.outcome == "indeterminate" else 0.0', "window = 0.0"),
    ("acknowledged-orders-looked-for-on-master1-only",
     'row = run.snapshot["orders"].get(node, {}).get(oid)',
     'row = run.snapshot["orders"].get("master1", {}).get(oid)'),
    ("acknowledged-carts-not-compared",
     "fits = {s for s in after if seen is None or s.cart == seen}", "fits = after"),
    ("orders-seen-on-a-writer-not-required-later",
     'for oid, (node, t) in first_seen.items() if t < s["t"]}',
     "for oid, (node, t) in first_seen.items() if False}"),
    ("a-key-may-place-two-orders",
     "if len(ids) > 1 and key in run.checkouts_by_key:", "if len(ids) > 2 and key in run.checkouts_by_key:"),
    ("pending-writes-never-apply-before-an-acknowledged-op",
     "closed = _close(self.states, self.max_states, self.placed, need)", "closed = set(self.states)"),
    ("order-contents-not-compared",
     'elif _freeze(row["items"]) not in allowed:', "elif False:"),
    ("orders-of-failed-checkouts-ignored",
     'if ops and all(op.outcome == "fail" for op in ops):', "if False:"),
    ("a-checkout-without-an-order-may-have-emptied-the-cart",
     'return op.kind != "checkout" or op.args["key"] in placed', "return True"),
    ("checkout-keeps-the-cart",
     "return (), _with_order(orders, w.key, cart)", "return cart, _with_order(orders, w.key, cart)"),
    ("the-db-orders-are-no-observation",
     "model = Model(placed if constrained else None, max_states)", "model = Model(None, max_states)"),
    ("stale-reads-never-fail",
     "        if stale_s > run.freshness_s:\n", "        if False:\n"),
    ("a-version-one-behind-is-fresh",
     "newer = [end for end, v in versions if v > seen and end < op.start]",
     "newer = [end for end, v in versions if v > seen + 1 and end < op.start]"),
    ("staleness-counted-from-the-newest-change",
     "stale_s = op.start - min(newer)", "stale_s = op.start - max(newer)"),
    ("a-looser-freshness-bound", "FRESHNESS_S = 2.0", "FRESHNESS_S = 5.0"),
    ("an-undrained-job-queue-is-fine", 'if not queue["drained"]:', "if False:"),
    ("parked-jobs-ignored", 'for job in queue["parked"]:', "for job in ():"),
    ("an-order-without-an-invoice-is-fine", 'if inv is None or inv["invoiced"] is None:', "if False:"),
    ("invoice-totals-not-compared", 'elif inv["invoiced"] != inv["order_total"]:', "elif False:"),
    ("orphan-invoices-ignored", 'for oid in snap["orphan_invoices"].get(node, []):', "for oid in ():"),
    ("logouts-ignored",
     "out = next((op for op in after if op.status == 401), None)", "out = None"),
]


# (name, module, exact source text, replacement): the parts the checker stands on.
PART_MUTATIONS = [
    ("a-503-with-no-server-is-in-doubt", "workload",
     'if status == 503 and served_by is None:\n        return "fail"',
     'if status == 503 and served_by is None:\n        return "indeterminate"'),
    ("an-app-503-that-did-not-say-is-not-applied", "workload",
     'body.get("applied") is False', 'body.get("applied") is not True'),
    ("a-502-is-not-applied", "workload", "    if status >= 500:\n", "    if status > 502:\n"),
    ("a-refused-connection-is-in-doubt", "workload",
     '"NewConnectionError" not in repr(exc) and', "True or"),
    ("a-timeout-is-not-applied", "workload",
     'op.outcome, op.error = "indeterminate", type(exc).__name__', 'op.outcome, op.error = "fail", type(exc).__name__'),
    ("a-valid-lease-is-not-needed-to-write", "monitor",
     'r["ro"] == 0 and r["lease_ok"]', 'r["ro"] == 0'),
    ("unreachable-nodes-not-reported", "monitor",
     'sorted(r["node"] for r in rs if "error" in r)', "[]"),
    ("observers-ticks-merged", "monitor",
     'ticks.setdefault((r["gen"], r["tick"]), [])', 'ticks.setdefault((0, r["tick"]), [])'),
    ("failed-readings-count-as-answered", "monitor",
     'ok = sum(1 for r in readings if r["node"] == node and "error" not in r)',
     'ok = sum(1 for r in readings if r["node"] == node)'),
    ("replicas-orders-sampled-as-a-sources", "monitor",
     'for r in self.readings if "error" not in r and r["node"] in topology.SOURCES]',
     'for r in self.readings if "error" not in r]'),
    ("the-same-seq-of-another-server-converged", "snapshot",
     "return have[1] > want[1] or have == want", "return have[1] >= want[1]"),
    ("free-faults-may-cost-requests", "scenarios",
     'FREE = {"failed_requests": 0}', 'FREE = {"failed_requests": 3}'),
    ("a-failover-may-take-longer", "scenarios",
     'WRITER_FAILOVER = {"failure_span_s": 3.0}', 'WRITER_FAILOVER = {"failure_span_s": 6.0}'),
]
MUTATIONS = [(name, "checker", old, new) for name, old, new in CHECKER_MUTATIONS] + PART_MUTATIONS
MODULES = sorted({module for _, module, _, _ in MUTATIONS})


def _source(module):
    return (CHAOS / f"{module}.py").read_text(encoding="utf-8")


def mutate(source, old, new):
    """Return SOURCE with the one occurrence of OLD replaced by NEW."""
    assert source.count(old) == 1, f"{old!r} occurs {source.count(old)} times"
    return source.replace(old, new)


def run_tests(module, source, workdir):
    """Run MODULE's unit tests against SOURCE as labctl.chaos.MODULE; return (exit code, output)."""
    workdir.mkdir(parents=True)
    (workdir / "mutant_swap.py").write_text(PLUGIN, encoding="utf-8")
    (workdir / f"{module}.py").write_text(source, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(workdir), "MODULE_UNDER_TEST": module,
           "SOURCE_UNDER_TEST": str(workdir / f"{module}.py"), "PYTHONDONTWRITEBYTECODE": "1"}
    # -x: one failing test is enough. --noconftest: these tests need no fixtures of the tiers, and
    # skipping the tiers' conftests (Docker, testcontainers) keeps each run short.
    command = [sys.executable, "-m", "pytest", "-q", "-x", "--noconftest", "-p", "no:cacheprovider",
               "-p", "mutant_swap", TESTS[module]]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
                          check=False)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Run the tests against each unmutated module and every mutant, in parallel; return {name: (code, output)}."""
    runs = {f"unmutated-{m}": (m, _source(m)) for m in MODULES}
    runs.update({name: (m, mutate(_source(m), old, new)) for name, m, old, new in MUTATIONS})
    base = tmp_path_factory.mktemp("mutants")
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {name: pool.submit(run_tests, m, src, base / name) for name, (m, src) in runs.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("module, old, new", [pytest.param(m, old, new, id=name) for name, m, old, new in MUTATIONS])
def test_each_mutation_applies_to_exactly_one_place(module, old, new):
    mutate(_source(module), old, new)


@pytest.mark.parametrize("module", MODULES)
def test_the_unmutated_library_passes_the_same_run(outcomes, module):
    code, output = outcomes[f"unmutated-{module}"]
    assert code == 0, output[-3000:]


@pytest.mark.parametrize("name", [name for name, _, _, _ in MUTATIONS])
def test_the_mutant_is_killed(outcomes, name):
    code, output = outcomes[name]
    # 1: tests ran and some failed. Anything else (2: a collection error,
    # 0: all passed) means the mutant broke the run or survived.
    assert code == 1, f"mutant {name} survived or broke the run (exit {code}):\n{output[-3000:]}"
