"""The chaos scenarios: a workload runs, the nemesis strikes and heals, the checker judges.

Each scenario: shoppers sign up and shop through 127.0.0.1:8080; after a
warm-up the fault is injected, held, and healed while they go on; they
shop a while longer, stop; the lab is healed completely and left to settle;
then the checker compares the history with every DB node.
Run them all with `make chaos`, one with `make chaos S=<name>`.
"""
import time

import pytest

from labctl import containers, progress, status
from chaos import checker, report
from chaos.workload import Workload

WARMUP_S = 4      # shopping before the fault
HOLD_S = 8        # how long a fault lasts
RECOVER_S = 8     # shopping after the heal, to see the service come back
USERS = 6


def _write_master():
    [writer] = status.writers()
    return writer


def _hold(seconds=HOLD_S):
    time.sleep(seconds)


# Each fault takes the nemesis and the workload, injects, holds, heals its
# own fault (the finaliser heals again, whatever happened), and returns the
# web nodes it killed (their users may change node).

def _kill_for_a_while(nz, *nodes):
    faults = [nz.kill(n) for n in nodes]
    _hold()
    for f in faults:
        f.heal()
    return {n for n in nodes if n.startswith("web")}


def kill_web_vip_holder(nz, w):
    return _kill_for_a_while(nz, status.vip_holders("lb")[1][0])


def kill_backup_lb(nz, w):
    holder = status.vip_holders("lb")[1][0]
    return _kill_for_a_while(nz, "lb2" if holder == "lb1" else "lb1")


def kill_sticky_web_node(nz, w):
    home = next(op.served_by for op in w.history if op.kind == "login" and op.outcome == "ok")
    return _kill_for_a_while(nz, home)


def kill_two_web_nodes(nz, w):
    return _kill_for_a_while(nz, "web1", "web2")


def kill_active_dblb(nz, w):
    return _kill_for_a_while(nz, status.vip_holders("dblb")[1][0])


def kill_write_master(nz, w):
    # Restarted while users shop; writes stay on the other master.
    return _kill_for_a_while(nz, _write_master())


def kill_standby_master(nz, w):
    return _kill_for_a_while(nz, "master2" if _write_master() == "master1" else "master1")


def kill_slave(nz, w):
    return _kill_for_a_while(nz, "slave1")


def kill_memcached(nz, w):
    f1 = nz.kill("memcached1")
    _hold(HOLD_S / 2)
    f2 = nz.kill("memcached2")
    _hold(HOLD_S / 2)
    f1.heal()
    f2.heal()
    return set()


def _for_a_while(fault, seconds=HOLD_S):
    _hold(seconds)
    fault.heal()
    return set()


def pause_write_master(nz, w):
    return _for_a_while(nz.pause(_write_master()), 6)


def partition_masters(nz, w):
    return _for_a_while(nz.partition("master1", ["master2"]))


def slow_slave(nz, w):
    return _for_a_while(nz.slow("slave1", 200))


def restart_lab(nz, w):
    nz.restart_lab()
    return {c.labels["lab.node"] for c in containers.find(role="web")}


SCENARIOS = [
    pytest.param(kill_web_vip_holder, "kill the LB holding the web VIP", id="kill-web-vip-holder"),
    pytest.param(kill_backup_lb, "kill the backup web LB", id="kill-backup-lb"),
    pytest.param(kill_sticky_web_node, "kill the web node a user is stuck to", id="kill-sticky-web-node"),
    pytest.param(kill_two_web_nodes, "kill two of the three web nodes", id="kill-two-web-nodes"),
    pytest.param(kill_active_dblb, "kill the db LB holding the db VIP", id="kill-active-dblb"),
    pytest.param(kill_write_master, "kill the active write master, restart it later", id="kill-write-master"),
    pytest.param(kill_standby_master, "kill the standby master", id="kill-standby-master"),
    pytest.param(kill_slave, "kill slave1, restart it later", id="kill-slave"),
    pytest.param(kill_memcached, "kill memcached1, then memcached2 too", id="kill-memcached"),
    pytest.param(pause_write_master, "pause the active write master for 6 s", id="pause-write-master"),
    pytest.param(partition_masters, "cut master1 off from master2 while writes flow", id="partition-masters"),
    pytest.param(slow_slave, "add 200 ms of latency to slave1's network", id="slow-slave"),
    pytest.param(restart_lab, "restart the whole lab (make down && make up)", id="restart-lab"),
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


@pytest.mark.parametrize("fault, description", SCENARIOS)
def test_scenario(request, nemesis, chaos_report, fault, description):
    name = request.node.callspec.id
    progress.step(f"scenario {name}: {description}")
    w = Workload(users=USERS)
    killed = set()
    try:
        w.sign_up()
        with Progress(name, w) as live:
            live.phase = "warm-up"
            w.start()
            time.sleep(WARMUP_S)
            fault_start, live.phase = w.clock(), "fault"
            try:
                killed = fault(nemesis, w)
            finally:
                fault_end, live.phase = w.clock(), "recover"
            time.sleep(RECOVER_S)
            live.phase = "stopping"
            w.stop()
            live.phase = "healing"
            nemesis.heal_all()
            live.phase = "checking"
            final = w.final_carts()
            db = checker.read_db([u.name for u in w.users])
    finally:
        w.stop()
        w.close()
    verdict = checker.check(w.history, final, db, fault_start, fault_end, killed)
    plot = report.plot(name, w.history, fault_start, fault_end)
    entry = report.scenario_entry(name, description, verdict, fault_start, fault_end, plot,
                                  report.save_history(name, w.history))
    chaos_report.append(entry)
    c = verdict.counts
    progress.ok(f"{name}: {c['operations']} ops, {c['failed_requests']} failed, recovery {c['recovery_s']} s, "
                f"{c['acknowledged_writes']} acked writes, {c['lost_writes']} lost, {c['duplicate_writes']} duplicated")
    failed = {n: chk["first_error"] for n, chk in verdict.checks.items() if not chk["ok"]}
    assert not failed, f"{name} failed: {failed}"
