"""The chaos scenarios: a workload runs, the nemesis strikes and heals, the checker judges.

Each scenario, Jepsen-style: shoppers sign up and shop through
127.0.0.1:8080 while a sampler reads, every second, which master is
writable and which orders each holds; after a warm-up the fault is
injected, held and healed; they shop on while the lab is healed completely
and writes are failed back to master1 (a planned switchover, judged like
everything else); they stop; the checker compares the history and the
samples with every DB node, and holds the fault and its recovery to the
scenario's availability budget.
Run them all with `make chaos`, one with `make chaos SCENARIO=<name>`.
"""
import datetime
import time
from dataclasses import dataclass

import pytest

from labha import plan as ha_plan
from labctl import containers, ha, haproxy, operations, progress, spike, topology
from chaos import checker, report, snapshot
from chaos.monitor import SafetySampler
from chaos.workload import Workload

# The lab's sources (masters) and read replica (slave), from its topology.
FIRST, SECOND = topology.SOURCES
[REPLICA] = topology.REPLICAS

WARMUP_S = 4      # shopping before the fault
HOLD_S = 8        # how long a fault lasts
RECOVER_S = 6     # shopping after the heal, to see the service come back
HA_LOG_LINES = 120  # how much of the write path's log a failed scenario prints
AFTER_S = 3       # shopping after the failback, before the final reads
USERS = 6
SPIKE_CLIENTS = 32

# Availability budgets (see chaos.checker: failed_requests over the fault and
# its recovery; failure_span_s from the first failed request to the end of the
# last). A fault the architecture is built to absorb costs nothing; a VIP
# move costs at most 2 s; the writing master's failover at most 3 s (it
# measures 1.7 s in make bench; the chaos suite's failure span 1.5 s): 3 s,
# twice what it measures here, for slower machines. Faults that cost writes
# on purpose (zero loss over availability) get a budget that says so.
FREE = {"failed_requests": 0}
VIP_MOVE = {"failure_span_s": 2.0}
WRITER_FAILOVER = {"failure_span_s": 3.0}


def _writer():
    [writer] = topology.writers()
    return writer


def _standby():
    return SECOND if _writer() == FIRST else FIRST


def _hold(seconds=HOLD_S):
    time.sleep(seconds)


# Each fault takes the nemesis and the workload, injects, holds, heals its
# own fault (the finaliser heals again, whatever happened), and returns the
# web nodes it took away (their users may change node).

def _kill_for_a_while(nz, *nodes):
    _for_a_while(*[nz.kill(n) for n in nodes])
    return {n for n in nodes if n.startswith("web")}


def _for_a_while(*faults, seconds=HOLD_S):
    _hold(seconds)
    for f in faults:
        f.heal()
    return set()


def kill_web_vip_holder(nz, w):
    return _kill_for_a_while(nz, topology.vip_holders("lb")[1][0])


def kill_backup_lb(nz, w):
    holder = topology.vip_holders("lb")[1][0]
    return _kill_for_a_while(nz, "lb2" if holder == "lb1" else "lb1")


def _home_node(w):
    return next(op.served_by for op in w.history if op.kind == "login" and op.outcome == "ok")


def kill_sticky_web_node(nz, w):
    return _kill_for_a_while(nz, _home_node(w))


def pause_sticky_web_node(nz, w):
    node = _home_node(w)
    _for_a_while(nz.pause(node))
    return {node}


def kill_two_web_nodes(nz, w):
    return _kill_for_a_while(nz, "web1", "web2")


def kill_active_dblb(nz, w):
    return _kill_for_a_while(nz, topology.vip_holders("dblb")[1][0])


def kill_write_master(nz, w):
    # Restarted while users shop; writes stay on the other master.
    return _kill_for_a_while(nz, _writer())


def kill_standby_master(nz, w):
    return _kill_for_a_while(nz, _standby())


def kill_slave(nz, w):
    return _kill_for_a_while(nz, REPLICA)


def kill_memcached(nz, w):
    f1 = nz.kill("memcached1")
    _hold(HOLD_S / 2)
    f2 = nz.kill("memcached2")
    _hold(HOLD_S / 2)
    f1.heal()
    f2.heal()
    return set()


def pause_write_master(nz, w):
    return _for_a_while(nz.pause(_writer()), seconds=6)


def partition_masters(nz, w):
    return _for_a_while(nz.partition(FIRST, [SECOND]))


def partition_masters_then_kill_writer(nz, w):
    writer = _writer()
    cut = nz.partition(writer, [_standby()])
    _hold(6)
    kill = nz.kill(writer)
    _hold()
    kill.heal()  # the old writer returns; writes were unavailable meanwhile, by design
    cut.heal()
    return set()


def failback_while_masters_are_partitioned(nz, w):
    operations.promote(SECOND)
    cut = nz.partition(FIRST, [SECOND])
    _hold(2)  # master1's newest heartbeat from master2 grows old
    with pytest.raises(SystemExit, match="not keeping up"):
        operations.failback()
    assert topology.writers() == [SECOND], "a refused failback must leave the writer in place"
    return _for_a_while(cut, seconds=HOLD_S - 2)


def one_way_cut_writer_to_standby(nz, w):
    """What the writer sends its standby is lost; what the standby sends still arrives."""
    return _for_a_while(nz.one_way(_writer(), [_standby()], "to"))


def one_way_cut_standby_to_writer(nz, w):
    """What the standby sends the writer (its acknowledgements) is lost; the binlog still reaches it."""
    return _for_a_while(nz.one_way(_writer(), [_standby()], "from"))


def cut_active_dblb_from_writer(nz, w):
    # Asymmetric: the deciding db LB cannot reach the writer; everyone else can.
    return _for_a_while(nz.partition(topology.vip_holders("dblb")[1][0], [_writer()]))


# ---- the grey failures of the write path (and etcd's own faults) ----------------------------

def freeze_writer_helpers(nz, w):
    """Every process of the writer's container stops but mariadbd: its HA loop and heartbeat hang."""
    return _for_a_while(nz.freeze(_writer()), seconds=6)


def freeze_writer_helpers_and_reset_standby_link(nz, w):
    """The writer's helpers hang, then the standby's replication connection to it is reset."""
    writer, standby = _writer(), _standby()
    frozen = nz.freeze(writer)
    _hold(0.3)
    reset = nz.reset(standby, [writer])
    _hold(1.5)
    reset.heal()
    _hold(4)
    frozen.heal()
    return set()


def _everyone_but(*nodes):
    return [containers.node_of(c) for c in containers.find() if containers.node_of(c) not in nodes]


def writer_lost_in_semi_sync_wait(nz, w):
    """Cut the writer from its standby (commits wait for its ack), then from every other node."""
    writer, standby = _writer(), _standby()
    # The second cut must land inside the wait: sooner than the leader gives
    # up on its standby (DEGRADE_S) and records it out of sync,
    # after which the standby may not take over (a different scenario).
    cut = nz.partition_in_two_steps(writer, [standby], _everyone_but(writer, standby),
                                    after_s=0.6 * ha_plan.DEGRADE_S)
    _hold(HOLD_S)
    cut.heal()
    return set()


def partition_db_lbs(nz, w):
    """The two db LBs cannot see each other: both hold the db VIP."""
    first, second = topology.LB_PAIRS["dblb"]
    return _for_a_while(nz.partition(first, [second]))


def partition_writer_from_etcd_majority(nz, w):
    """The writer and one etcd member on one side, the two other members on the other."""
    writer = _writer()
    lone, *majority = topology.DCS_MEMBERS
    cuts = [nz.partition(lone, majority), nz.partition(writer, majority)]
    _hold()
    for cut in reversed(cuts):
        cut.heal()
    return set()


def _etcd_leader():
    [leader] = [m["name"] for m in ha.members() if m["leader"]]
    return leader


def kill_etcd_leader(nz, w):
    return _kill_for_a_while(nz, _etcd_leader())


def lose_etcd_quorum(nz, w):
    """Two of the three etcd members (the leader among them) die for 10 s."""
    leader = _etcd_leader()
    other = next(m for m in topology.DCS_MEMBERS if m != leader)
    return _for_a_while(nz.kill(leader), nz.kill(other), seconds=10)


def dns_outage_at_the_web_lbs(nz, w):
    """Docker's DNS stops answering both web LBs: they route on the addresses they last resolved."""
    return _for_a_while(*[nz.cut_dns(lb) for lb in topology.LB_PAIRS["lb"]])


def slow_slave(nz, w):
    return _for_a_while(nz.slow(REPLICA, 200))


def load_spike(nz, w):
    """32 cookie-less visitors on GET / for HOLD_S (each visit writes a session row), rate limit lifted."""
    with haproxy.rate_limit_lifted():
        r = spike.run(clients=SPIKE_CLIENTS, seconds=HOLD_S)
    progress.ok(f"load spike: {r['answers']} answers ({r['rps']}/s) {r['by_status']}, "
                f"{r['down_marks']} servers marked down")
    assert r["writer_after"] == r["writer_before"], f"the writer moved under load, with no fault: {r}"
    assert not r["down_marks"], r["first_down_marks"]
    return set()


def restart_lab(nz, w):
    with w.sampler.suspended():   # make down removes the networks the observer is on
        nz.restart_lab()
    return {c.labels["lab.node"] for c in containers.find(role="web")}


@dataclass
class Scenario:
    """A named fault, what it does, and what it may cost."""
    name: str
    fault: object
    description: str
    budget: dict


SCENARIOS = [
    Scenario("kill-web-vip-holder", kill_web_vip_holder, "kill the LB holding the web VIP", VIP_MOVE),
    Scenario("kill-backup-lb", kill_backup_lb, "kill the backup web LB", FREE),
    Scenario("kill-sticky-web-node", kill_sticky_web_node, "kill the web node a user is stuck to",
             {"failure_span_s": 2.0}),
    Scenario("pause-sticky-web-node", pause_sticky_web_node, "freeze the web node a user is stuck to for 8 s",
             {"failure_span_s": 3.0}),
    Scenario("kill-two-web-nodes", kill_two_web_nodes, "kill two of the three web nodes", {"failure_span_s": 2.0}),
    Scenario("kill-active-dblb", kill_active_dblb, "kill the db LB holding the db VIP", VIP_MOVE),
    Scenario("kill-write-master", kill_write_master, "kill the writing master, restart it later", WRITER_FAILOVER),
    Scenario("kill-standby-master", kill_standby_master, "kill the standby master", FREE),
    Scenario("kill-slave", kill_slave, "kill slave1, restart it later", FREE),
    Scenario("kill-memcached", kill_memcached, "kill memcached1, then memcached2 too", FREE),
    Scenario("pause-write-master", pause_write_master, "freeze the writing master for 6 s", WRITER_FAILOVER),
    Scenario("partition-masters", partition_masters, "cut master1 off from master2 while writes flow",
             # each write waits the semi-sync timeout (3 s) once, then goes on
             {"failure_span_s": 5.0}),
    # One-way link faults: neither side sees the other dead, commits wait for an acknowledgement
    # that never comes, and the leader goes asynchronous after DEGRADE_S; no failover.
    Scenario("one-way-cut-writer-to-standby", one_way_cut_writer_to_standby,
             "drop what the writer sends its standby for 8 s (what the standby sends still arrives)",
             {"failure_span_s": 5.0}),
    Scenario("one-way-cut-standby-to-writer", one_way_cut_standby_to_writer,
             "drop what the standby sends the writer for 8 s (its acknowledgements are lost)",
             {"failure_span_s": 5.0}),
    Scenario("partition-masters-then-kill-writer", partition_masters_then_kill_writer,
             "cut the writer off from the standby for 6 s, then kill it; start it 8 s later",
             # the standby may lack acknowledged writes: writes wait for the old writer
             {"failure_span_s": 30.0}),
    Scenario("failback-while-partitioned", failback_while_masters_are_partitioned,
             "move writes to master2, cut the masters apart, try make failback (refused)", WRITER_FAILOVER),
    Scenario("cut-active-dblb-from-writer", cut_active_dblb_from_writer,
             "the deciding db LB cannot reach the writer; everyone else can", WRITER_FAILOVER),
    Scenario("freeze-writer-helpers", freeze_writer_helpers,
             "SIGSTOP every process of the writer but mariadbd for 6 s (its HA loop hangs)", WRITER_FAILOVER),
    Scenario("freeze-writer-helpers-and-reset-standby-link", freeze_writer_helpers_and_reset_standby_link,
             "the writer's helpers hang, then the standby's replication connection is reset for 1.5 s",
             # the reset costs the catch-up a reconnect (1 s) on top of the failover
             {"failure_span_s": 5.0}),
    Scenario("writer-lost-in-semi-sync-wait", writer_lost_in_semi_sync_wait,
             "cut the writer from the standby, then 0.6 s later from every other node, for 8 s",
             # commits wait for the standby's ack, then the failover
             {"failure_span_s": 5.0}),
    Scenario("partition-db-lbs", partition_db_lbs, "the two db LBs cannot see each other (both hold the db VIP)",
             VIP_MOVE),
    Scenario("partition-writer-from-etcd-majority", partition_writer_from_etcd_majority,
             "the writer and one etcd member cut off from the two others", WRITER_FAILOVER),
    Scenario("kill-etcd-leader", kill_etcd_leader, "kill the etcd member that leads etcd's raft", FREE),
    Scenario("lose-etcd-quorum", lose_etcd_quorum, "kill two of the three etcd members for 10 s",
             # no quorum, no leader key: writes stop within a lease and resume with the quorum
             {"failure_span_s": 14.0}),
    Scenario("dns-outage-at-the-web-lbs", dns_outage_at_the_web_lbs,
             "Docker's DNS does not answer lb1 and lb2 for 8 s", FREE),
    Scenario("slow-slave", slow_slave, "add 200 ms of latency to slave1's network", FREE),
    Scenario("load-spike", load_spike, "32 cookie-less visitors for 8 s, no fault: no failover", FREE),
    Scenario("restart-lab", restart_lab, "restart the whole lab (make down && make up)", {"failure_span_s": 120.0}),
]


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


@pytest.mark.parametrize("s", [pytest.param(s, id=s.name) for s in SCENARIOS])
def test_scenario(nemesis, chaos_report, s):
    progress.step(f"scenario {s.name}: {s.description}")
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
                            budget=s.budget, judged_until=judged_until)
    plot = report.plot(s.name, w.history, fault_start, fault_end)
    entry = report.scenario_entry(s.name, s.description, verdict, fault_start, fault_end, plot,
                                  report.save_history(s.name, w.history))
    chaos_report.append(entry)
    c = verdict.counts
    progress.ok(f"{s.name}: {c['operations']} ops, {c['failed_requests']} failed "
                f"(span {c['failure_span_s']} s; budget {s.budget}), recovery {c['recovery_s']} s, "
                f"{c['acknowledged_writes']} acked writes, {c['lost_writes']} lost, {c['duplicate_writes']} duplicated")
    failed = {n: chk["first_error"] for n, chk in verdict.checks.items() if not chk["ok"]}
    ha_log, ha_lines = report.save_ha_log(s.name, since)
    if failed:
        # CI shows only what is printed: what the write path did, for the post-mortem.
        print(f"what the write path logged during {s.name} (all of it: reports/chaos/{ha_log}):")
        print("\n".join(ha_lines[-HA_LOG_LINES:]))
        print(f"its failed requests (t from the workload's start; fault {fault_start:.1f}-{fault_end:.1f} s, "
              f"judged until {judged_until:.1f} s):")
        print(report.failures_summary(w.history))
    assert not failed, f"{s.name} failed: {failed}"
