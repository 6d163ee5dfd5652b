"""Run chaos scenarios: a workload shops, the nemesis strikes and heals, the checker judges, the report is written.

Each scenario, Jepsen-style: shoppers sign up and shop through
127.0.0.1:8080 while the observer (chaos.monitor) reads, ten times a
second, which master is writable and which orders each holds; after a
warm-up the fault is injected, held and healed; they shop on while the lab
is healed completely and writes are failed back to master1 (a planned
switchover, judged like everything else); they stop; the checker compares
the history and the samples with every DB node, and holds the fault and
its recovery to the scenario's availability budget.

`make chaos` runs them all, `make chaos SCENARIO=<name>` one (or a few),
`make chaos LIST=1` lists them; the console's picker runs one the same way;
tests/chaos parametrises pytest over them.
"""
import datetime
import time
import traceback

from labctl import containers, operations, progress

from . import checker, report, snapshot
from .monitor import SafetySampler
from .nemesis import Nemesis
from .scenarios import SCENARIOS, select
from .workload import Workload

WARMUP_S = 3        # shopping before the fault
RECOVER_S = 4       # shopping after the heal, to see the service come back (the heal waits for the rest)
AFTER_S = 2         # shopping after the failback, before the final reads
USERS = 6
HA_LOG_LINES = 120  # how much of the write path's log a failed scenario prints
# No scenario may hang the run: the longest, restart-lab, takes about 3 minutes.
TIMEOUT_S = 600


class Progress(progress.Background):
    """Print the scenario's phase and live counts every 2 s while it runs."""

    def __init__(self, name, workload):
        super().__init__()
        self.name, self.w, self.phase = name, workload, "starting"

    def run(self):
        while not self.stopping.wait(2):
            self.print()

    def print(self):
        """Print one progress line."""
        h = list(self.w.history)
        ok = sum(op.outcome == "ok" for op in h)
        print(f"   [{self.name}] t={self.w.clock():5.1f}s {self.phase:<9} ops={len(h)} ok={ok} "
              f"failed={len(h) - ok}", flush=True)


def run_phases(s, nemesis, w, live):
    """Warm up, strike, recover, heal and fail back while the workload runs; return the judged times."""
    live.phase = "warm-up"
    w.start()
    time.sleep(WARMUP_S)
    fault_start, live.phase = w.clock(), "fault"
    try:
        killed = s.fault(nemesis, w)
    finally:
        fault_end, live.phase = w.clock(), "recover"
    time.sleep(RECOVER_S)
    live.phase = "healing"
    nemesis.heal_all()
    judged_until, live.phase = w.clock(), "failback"
    operations.failback()
    live.phase = "after"
    time.sleep(AFTER_S)
    live.phase = "stopping"
    w.stop()
    return killed, fault_start, fault_end, judged_until


def _judged(s, nemesis):
    """Run scenario S with NEMESIS; return its report entry (the checker's verdict, figures, plot)."""
    w = Workload(users=USERS)
    since = datetime.datetime.now(datetime.timezone.utc)
    try:
        w.sign_up()
        sampler = w.sampler = SafetySampler([u.name for u in w.users], w.clock)
        with Progress(s.name, w) as live, sampler:
            killed, fault_start, fault_end, judged_until = run_phases(s, nemesis, w, live)
            live.phase = "checking"
            final = w.final_carts()
            counts = sampler.counts()
        db = snapshot.read_db([u.name for u in w.users])
    finally:
        w.stop()
        w.close()
    verdict = checker.check(w.history, final, db, fault_start, fault_end, killed,
                            writer_samples=sampler.writer_samples, order_samples=sampler.order_samples,
                            writer_readings=sampler.writer_readings, sample_counts=counts,
                            budget=s.budget, judged_until=judged_until, edits=w.edits)
    entry = report.scenario_entry(s.name, s.description, verdict, fault_start, fault_end,
                                  report.plot(s.name, w.history, fault_start, fault_end),
                                  report.save_history(s.name, w.history))
    c = verdict.counts
    progress.ok(f"{s.name}: {c['operations']} ops, {c['failed_requests']} failed "
                f"(span {c['failure_span_s']} s, longest outage {c['longest_outage_s']} s; budget {s.budget}), recovery {c['recovery_s']} s, "
                f"{c['acknowledged_writes']} acked writes, {c['lost_writes']} lost, {c['duplicate_writes']} duplicated")
    if not entry["passed"]:
        # CI shows only what is printed: what the write path did, for the post-mortem.
        ha_log, ha_lines = report.save_ha_log(s.name, since)
        print(f"what the write path logged during {s.name} (all of it: reports/chaos/{ha_log}):")
        print("\n".join(ha_lines[-HA_LOG_LINES:]))
        print(f"its failed requests (t from the workload's start; fault {fault_start:.1f}-{fault_end:.1f} s, "
              f"judged until {judged_until:.1f} s):")
        print(report.failures_summary(w.history))
    return entry


def run_one(s, timeout_s=None):
    """Run scenario S, heal whatever it left, fail writes back; return its report entry.

    A scenario that could not be run to its verdict (its fault could not be
    made, it asserted something of its own, it ran past TIMEOUT_S) gets an
    entry that failed, with the reason as its error.
    """
    progress.step(f"scenario {s.name}: {s.description}")
    nemesis = Nemesis()
    try:
        with progress.bounded(timeout_s, f"scenario {s.name}"):
            return _judged(s, nemesis)
    except (Exception, progress.TimedOut) as exc:  # noqa: BLE001 - reported as the scenario's failure
        traceback.print_exc()
        return report.error_entry(s.name, s.description, s.budget, f"{type(exc).__name__}: {exc}")
    finally:
        nemesis.heal_all()
        operations.failback()


def run(scenarios, timeout_s=TIMEOUT_S):
    """Run SCENARIOS one after another, rewriting the report after each; return the summary."""
    entries, summary = [], None
    for i, s in enumerate(scenarios, 1):
        progress.step(f"[{i}/{len(scenarios)}]")
        started = time.monotonic()
        entry = run_one(s, timeout_s)
        # How long it took, healing and failback included (report.json): where `make chaos`'s time goes.
        entry["duration_s"] = round(time.monotonic() - started, 1)
        progress.step(f"{s.name} took {entry['duration_s']} s")
        entries.append(entry)
        summary = report.write(entries)
        if not entry["passed"]:
            progress.fail(f"{s.name} failed: {entry['failed_check']}: {entry['first_error']}")
    return summary


def list_scenarios():
    """Print every scenario's name, budget and description."""
    for s in SCENARIOS:
        print(f"{s.name:<46} {report.budget_label(s.budget):<16} {s.description}")


def cli(pattern, listing=False):
    """Run (or list) the scenarios PATTERN selects; print the summary; return True when all passed."""
    if listing:
        list_scenarios()
        return True
    try:
        chosen = select(pattern)
    except LookupError as exc:
        raise SystemExit(f"❌ {exc}") from None
    if "gateway" not in {containers.node_of(c) for c in containers.find()}:
        raise SystemExit("❌ the lab is not running: start it with `make up`")
    started = time.monotonic()
    summary = run(chosen)
    minutes = (time.monotonic() - started) / 60
    print(f"\nchaos report: {report.REPORT_DIR}/report.md — {summary['passed']}/{summary['scenarios']} passed "
          f"in {minutes:.1f} min, {summary['lost_writes']} lost and {summary['duplicate_writes']} duplicated writes")
    if summary["failed"]:
        progress.fail("failed: " + ", ".join(summary["failed"]))
    return not summary["failed"]
