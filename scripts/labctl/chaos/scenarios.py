"""The chaos scenarios: each a named fault, what it does, and what it may cost (its availability budget).

A fault is a function of the nemesis and the workload: it injects (on the
targets it finds at that moment: chaos.targets), holds, heals its own
fault (the runner heals again, whatever happened), and returns the web
nodes it took away (their users may change node). The runner
(chaos.runner) wraps each in the same phases: warm-up, fault, recovery,
heal, failback, judgement.
"""
import time
from dataclasses import dataclass

from labha import plan as ha_plan
from labctl import autoscale, containers, dbnodes, haproxy, operations, progress, spike, topology
from labctl.composegen import RELAY_DIR

from . import targets
from .targets import FIRST, REPLICA, SECOND, etcd_follower, etcd_leader, home_node, standby, vip_holder, writer

HOLD_S = 8        # how long a fault lasts
# How long a second etcd member is frozen with the raft leader killed: past
# the writer's deadline to renew (0.85 s), within the app's retry window (1 s).
SLOW_ELECTION_S = 0.9
SPIKE_CLIENTS = 32
LOSS_PERCENT = 30

# Availability budgets (chaos.checker: failed_requests over the fault and its
# recovery; failure_span_s from the first failed request to the end of the
# last). A fault the architecture is built to absorb costs nothing; a VIP
# move costs at most 2 s; the writing master's failover at most 3 s (about
# 1.1 s here: `make bench`, "failover"), for slower machines. Faults that
# cost writes on purpose (zero loss over availability) get a budget that
# says so.
FREE = {"failed_requests": 0}
VIP_MOVE = {"failure_span_s": 2.0}
WRITER_FAILOVER = {"failure_span_s": 3.0}
# Commits wait DEGRADE_S for a standby's acknowledgement once, then go on
# asynchronous: no failover, a few seconds of slow or failed writes.
ACK_WAIT = {"failure_span_s": 5.0}
# A web node that cannot reach the db VIP answers 503 until the web LBs see
# it unready: the app's grace (DB_REACH_GRACE_S, 3 s), then two checks.
DB_UNREACHABLE = {"failure_span_s": 5.0}
# Both LBs of a pair hold the VIP while they cannot see each other: the
# clients follow the one that announced it last, at the cut and again at the
# heal (haproxy/conf/keepalived.conf.in). Two VIP moves, HOLD_S apart: each
# one outage within a VIP move's 2 s. Measured: 0-2 failed requests (a
# commit in flight when its connection is reset is in doubt).
TWO_VIP_MOVES = {"longest_outage_s": 2.0, "failed_requests": 10}


def _hold(seconds=HOLD_S):
    time.sleep(seconds)


def _for_a_while(*faults, seconds=HOLD_S):
    """Hold FAULTS for SECONDS, then heal them in order."""
    _hold(seconds)
    for f in faults:
        f.heal()
    return set()


def _kill_for_a_while(nz, *nodes):
    _for_a_while(*[nz.kill(n) for n in nodes])
    return {n for n in nodes if n.startswith("web")}


# ---- nodes killed and frozen ----------------------------------------------------------------

def kill_web_vip_holder(nz, w):
    return _kill_for_a_while(nz, vip_holder("lb"))


def kill_backup_lb(nz, w):
    return _kill_for_a_while(nz, targets.vip_backup("lb"))


def kill_sticky_web_node(nz, w):
    return _kill_for_a_while(nz, home_node(w))


def pause_sticky_web_node(nz, w):
    node = home_node(w)
    _for_a_while(nz.pause(node))
    return {node}


def kill_two_web_nodes(nz, w):
    return _kill_for_a_while(nz, "web1", "web2")


def kill_active_dblb(nz, w):
    return _kill_for_a_while(nz, vip_holder("dblb"))


def kill_write_master(nz, w):
    # Restarted while users shop; writes stay on the other master.
    return _kill_for_a_while(nz, writer())


def kill_standby_master(nz, w):
    return _kill_for_a_while(nz, standby())


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


def pause_memcached(nz, w):
    """memcached1 frozen (docker pause) for HOLD_S: its connections stay open and answer nothing. Each
    web process gives up on it after its I/O timeout (0.2 s) and takes it out of its ring; the product
    writes' tombstones that missed it reach it from the invalidation log once it answers again, so no
    node serves a stale product when its keys come back to it."""
    return _for_a_while(nz.pause("memcached1"))


def kill_gateway(nz, w):
    """The "Internet" in front of the lab dies: nothing reaches the site until it is back; nothing is lost."""
    return _kill_for_a_while(nz, "gateway")


def pause_write_master(nz, w):
    return _for_a_while(nz.pause(writer()), seconds=6)


# ---- partitions, one-way cuts, resets, loss -------------------------------------------------

def partition_masters(nz, w):
    return _for_a_while(nz.partition(FIRST, [SECOND]))


def partition_masters_then_kill_writer(nz, w):
    old = writer()
    cut = nz.partition(old, [standby()])
    _hold(6)
    kill = nz.kill(old)
    _hold()
    kill.heal()  # the old writer returns; writes were unavailable meanwhile, by design
    cut.heal()
    return set()


def failback_while_masters_are_partitioned(nz, w):
    operations.promote(SECOND)
    cut = nz.partition(FIRST, [SECOND])
    _hold(2)  # master1's newest heartbeat from master2 grows old
    try:
        operations.failback()
    except SystemExit as refused:
        if "not keeping up" not in str(refused):
            raise AssertionError(f"make failback was refused for another reason: {refused}") from None
    else:
        raise AssertionError("make failback went ahead although master1 could not keep up")
    if topology.writers() != [SECOND]:
        raise AssertionError(f"a refused failback must leave the writer in place: {topology.writers()}")
    return _for_a_while(cut, seconds=HOLD_S - 2)


def one_way_cut_writer_to_standby(nz, w):
    """What the writer sends its standby is lost; what the standby sends still arrives."""
    return _for_a_while(nz.one_way(writer(), [standby()], "to"))


def one_way_cut_standby_to_writer(nz, w):
    """What the standby sends the writer (its acknowledgements) is lost; the binlog still reaches it."""
    return _for_a_while(nz.one_way(writer(), [standby()], "from"))


def lossy_link_writer_standby(nz, w):
    """LOSS_PERCENT of the packets between the writer and its standby are lost, both ways."""
    return _for_a_while(nz.lossy(writer(), [standby()], LOSS_PERCENT))


def lossy_link_web_to_db_vip(nz, w):
    """LOSS_PERCENT of the packets between the db LB holding the db VIP and the web nodes are lost."""
    return _for_a_while(nz.lossy(vip_holder("dblb"), targets.web_nodes(), LOSS_PERCENT))


def cut_active_dblb_from_writer(nz, w):
    # Asymmetric: the deciding db LB cannot reach the writer; everyone else can.
    return _for_a_while(nz.partition(vip_holder("dblb"), [writer()]))


def partition_web_lbs(nz, w):
    """The two web LBs cannot see each other: both hold the web VIP."""
    first, second = topology.LB_PAIRS["lb"]
    return _for_a_while(nz.partition(first, [second]))


def cut_web_node_from_memcached(nz, w):
    """The editor's web node cannot reach either memcached: its reads fall back to the database, and the
    tombstones of its product writes miss both nodes, which the other web nodes still read (the
    invalidation log must deliver them)."""
    return _for_a_while(nz.partition(targets.editor_node(w), ["memcached1", "memcached2"]))


def cut_web_node_from_db_vip(nz, w):
    """A user's web node cannot reach the db VIP: it answers 503 until the web LBs take it out of the
    rotation (its readiness check, labapp.reach), and its users move to other nodes with their sessions."""
    node = home_node(w)
    _for_a_while(nz.partition(node, [topology.VIPS["dblb"]]))
    return {node}


def partition_db_lbs(nz, w):
    """The two db LBs cannot see each other: both hold the db VIP."""
    first, second = topology.LB_PAIRS["dblb"]
    return _for_a_while(nz.partition(first, [second]))


# ---- the grey failures of the write path (and etcd's own faults) ----------------------------

def freeze_writer_helpers(nz, w):
    """Every process of the writer's container stops but mariadbd: its HA loop and heartbeat hang."""
    return _for_a_while(nz.freeze(writer()), seconds=6)


def freeze_writer_helpers_and_reset_standby_link(nz, w):
    """The writer's helpers hang, then the standby's replication connection to it is reset."""
    old, other = writer(), standby()
    frozen = nz.freeze(old)
    _hold(0.3)
    reset = nz.reset(other, [old])
    _hold(1.5)
    reset.heal()
    _hold(4)
    frozen.heal()
    return set()


def writer_lost_in_semi_sync_wait(nz, w):
    """Cut the writer from its standby (commits wait for its ack), then from every other node."""
    old, other = writer(), standby()
    # The second cut must land inside the wait: sooner than the leader gives
    # up on its standby (DEGRADE_S) and records it out of sync,
    # after which the standby may not take over (a different scenario).
    cut = nz.partition_in_two_steps(old, [other], targets.everyone_but(old, other),
                                    after_s=0.6 * ha_plan.DEGRADE_S)
    _hold(HOLD_S)
    cut.heal()
    return set()


def partition_writer_from_etcd_majority(nz, w):
    """The writer and one etcd member on one side, the two other members on the other."""
    old = writer()
    lone, *majority = topology.DCS_MEMBERS
    cuts = [nz.partition(lone, majority), nz.partition(old, majority)]
    _hold()
    for cut in reversed(cuts):
        cut.heal()
    return set()


def kill_etcd_leader(nz, w):
    return _kill_for_a_while(nz, etcd_leader())


def kill_etcd_leader_in_a_slow_election(nz, w):
    """The raft leader killed and a second member frozen for 0.9 s with it: no quorum elects a
    leader until it thaws, so the writer's renewals are late past its deadline (0.85 s) and it
    fences itself for a moment (read_only, no session killed); the app runs the refused writes
    again, and the same writer resumes once a renewal lands."""
    leader, follower, source = etcd_leader(), etcd_follower(), writer()
    since = int(time.time())
    killed = nz.kill(leader)
    frozen = nz.pause(follower)
    _hold(SLOW_ELECTION_S)
    frozen.heal()
    _hold(HOLD_S - SLOW_ELECTION_S)
    killed.heal()
    said = containers.get(source).logs(since=since).decode(errors="replace")
    # The guard (every 20 ms) or the HA loop (every 0.2 s), whichever sees the deadline pass first.
    if "fencing myself" not in said and "demoted (the lease was not renewed in time)" not in said:
        raise AssertionError(f"{source} never fenced itself: the election was not slow enough to test the fence")
    if writer() != source:
        raise AssertionError(f"writes moved from {source} to {writer()}: a late renewal must not cost a failover")
    return set()


def lose_etcd_quorum(nz, w):
    """Two of the three etcd members (the leader among them) die for 10 s."""
    leader, follower = etcd_leader(), etcd_follower()   # both before the first kill: then there is no leader
    return _for_a_while(nz.kill(leader), nz.kill(follower), seconds=10)


def dns_outage_at_the_web_lbs(nz, w):
    """Docker's DNS stops answering both web LBs: they route on the addresses they last resolved."""
    return _for_a_while(*[nz.cut_dns(lb) for lb in topology.LB_PAIRS["lb"]])


def dns_outage_at_the_web_nodes(nz, w):
    """Docker's DNS stops answering every web node (they reach memcached by name)."""
    return _for_a_while(*[nz.cut_dns(node) for node in targets.web_nodes()])


def fill_replica_relay_volume(nz, w):
    """The read replica's relay logs have no room left: it stops receiving, lags, and the read port
    stops using it; once space is freed it catches up (MariaDB looks again every 60 s)."""
    return _for_a_while(nz.fill_disk(REPLICA, RELAY_DIR))


def slow_slave(nz, w):
    return _for_a_while(nz.slow(REPLICA, 200))


# ---- double faults: a second fault while the lab recovers from the first --------------------

def kill_writer_then_active_dblb(nz, w):
    """Kill the writer; 1 s later, while the standby is being promoted, kill the db LB holding the db VIP."""
    first = nz.kill(writer())
    _hold(1.0)
    second = nz.kill(vip_holder("dblb"))
    _hold(HOLD_S - 1.0)
    second.heal()
    first.heal()
    return set()


def kill_web_vip_holder_then_sticky_node(nz, w):
    """Kill the LB holding the web VIP; 1 s later, while the VIP moves, kill a user's web node."""
    node = home_node(w)
    first = nz.kill(vip_holder("lb"))
    _hold(1.0)
    second = nz.kill(node)
    _hold(HOLD_S - 1.0)
    second.heal()
    first.heal()
    return {node}


# ---- the job queue --------------------------------------------------------------------------

JOB_LEASE_S = 10      # the workers' lease on a job (JOB_LEASE_S, app/labapp/config.py)
CATCH_TRIES = 10


def _a_worker_frozen_holding_a_job(nz):
    """Freeze a worker that holds a job; return (worker, job, its pause). Jobs are short, so: catch,
    freeze, look again (a worker that finished meanwhile is thawed and another tried)."""
    for _ in range(CATCH_TRIES):
        worker, job = targets.busy_worker()
        frozen = nz.pause(worker)
        if targets.job_held_by(worker, job):
            return worker, job, frozen
        frozen.heal()
    raise LookupError(f"no worker was caught holding a job in {CATCH_TRIES} tries (are orders being placed?)")


def kill_worker_mid_job(nz, w):
    """Kill a worker mid-job; another must do its job once the lease runs out (one invoice, a later attempt)."""
    worker, job, _frozen = _a_worker_frozen_holding_a_job(nz)
    killed = nz.kill(worker)

    def redone():
        rows = dbnodes.query(targets.writer(), "SELECT j.state, i.made_by, i.attempt FROM lab.jobs j"
                                               " LEFT JOIN lab.invoices i ON i.order_id = j.order_id"
                                               f" WHERE j.id = {int(job['id'])}")
        return bool(rows) and rows[0]["state"] == "done", rows

    [row] = progress.wait_until(redone, JOB_LEASE_S + 10, interval_s=0.2)
    if row["made_by"] == worker or int(row["attempt"]) <= int(job["attempts"]):
        raise AssertionError(f"job {job['id']}, killed on attempt {job['attempts']} in {worker}, "
                             f"was finished by {row['made_by']} on attempt {row['attempt']}")
    killed.heal()
    return set()


QUEUE_FOR_S = 4


def kill_writer_with_jobs_queued(nz, w):
    """Freeze every worker so that jobs queue up, kill the writer, then thaw them: the new writer's queue
    holds every acknowledged order's job, and the workers drain it there (orders_invoiced_once)."""
    frozen = [nz.pause(worker) for worker in targets.workers()]
    _hold(QUEUE_FOR_S)
    queued = targets.queued_jobs()
    if not queued:
        raise LookupError(f"no job was queued in {QUEUE_FOR_S} s with the workers frozen (are orders being placed?)")
    nz.log(f"   {queued} jobs queued on {writer()}")
    killed = nz.kill(writer())
    _hold(HOLD_S)
    for f in frozen:
        f.heal()
    killed.heal()
    return set()


# ---- the autoscaler ------------------------------------------------------------------------

def kill_autoscaler_mid_scale_out(nz, w):
    """Two autoscalers told to add a node; the leader is killed (with the `make scale` it runs) while it
    starts the node, one an earlier scale-in left in maintenance. The standby must take the lead once the
    lease runs out and finish the scale-out: the node serves in both LBs."""
    size = len(targets.web_nodes())
    node = topology.WEB_NODES[size]
    lbs = [containers.node_of(c) for c in containers.find(role="lb")]
    for lb in lbs:  # as `make scale` leaves a node it removed
        haproxy.set_web_state(lb, node, "maint")
    since = time.time()
    try:
        with autoscale.controllers(autoscale.Policy(min_nodes=size + 1, max_nodes=size + 1)) as procs:
            by = {autoscale.identity(p): p for p in procs}

            def scaling_out():
                leader = next((r["by"] for r in autoscale.records(since) if r.get("kind") == "out"), None)
                created = node in {containers.node_of(c) for c in containers.find(role="web", all=True)}
                return leader is not None and created, leader

            leader = progress.wait_until(scaling_out, 30, interval_s=0.1)
            autoscale.kill(by[leader])
            nz.log(f"   nemesis: kill the leading autoscaler {leader} and its `make scale` while it starts {node}")
            [standby] = [me for me in by if me != leader]

            def finished():
                done = [r for r in autoscale.records(since, standby) if r.get("event") == "scaled"]
                return bool(done), done

            progress.wait_until(finished, autoscale.LEASE_S + 60, interval_s=0.5)
        states = {lb: haproxy.servers(lb, "web")[node]["status"] for lb in lbs}
        if not all(s.startswith("UP") for s in states.values()):
            raise AssertionError(f"the standby autoscaler finished, but {node} is {states}")
        if any(r.get("event") == "scaled" for r in autoscale.records(since, leader)):
            raise AssertionError(f"{leader} finished its scale-out: it was not killed in the middle of it")
        nz.log(f"   {standby} took over and finished: {node} serves ({states})")
    finally:
        operations.scale(size)
    return {node}


# ---- load and the whole lab ----------------------------------------------------------------

def load_spike(nz, w):
    """32 cookie-less visitors on GET / for HOLD_S (each visit writes a session row), rate limit lifted."""
    with haproxy.rate_limit_lifted():
        r = spike.run(clients=SPIKE_CLIENTS, seconds=HOLD_S)
    progress.ok(f"load spike: {r['answers']} answers ({r['rps']}/s) {r['by_status']}, "
                f"{r['down_marks']} servers marked down")
    if r["writer_after"] != r["writer_before"]:
        raise AssertionError(f"the writer moved under load, with no fault: {r}")
    if r["down_marks"]:
        raise AssertionError(f"servers were marked down under load, with no fault: {r['first_down_marks']}")
    return set()


def restart_lab(nz, w):
    with w.sampler.suspended():   # make down removes the networks the observer is on
        nz.restart_lab()
    return set(targets.web_nodes())


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
    Scenario("pause-memcached", pause_memcached,
             "freeze memcached1 for 8 s (its connections stay open and answer nothing)", FREE),
    Scenario("kill-gateway", kill_gateway, "kill the gateway (the Internet) for 8 s, start it again",
             # a single point by design (it stands for the Internet): down while it is
             {"failure_span_s": HOLD_S + 3.0}),
    Scenario("pause-write-master", pause_write_master, "freeze the writing master for 6 s", WRITER_FAILOVER),
    Scenario("partition-masters", partition_masters, "cut master1 off from master2 while writes flow",
             # each write waits the semi-sync timeout once, then goes on
             ACK_WAIT),
    # One-way link faults: neither side sees the other dead, commits wait for an acknowledgement
    # that never comes, and the leader goes asynchronous after DEGRADE_S; no failover.
    Scenario("one-way-cut-writer-to-standby", one_way_cut_writer_to_standby,
             "drop what the writer sends its standby for 8 s (what the standby sends still arrives)", ACK_WAIT),
    Scenario("one-way-cut-standby-to-writer", one_way_cut_standby_to_writer,
             "drop what the standby sends the writer for 8 s (its acknowledgements are lost)", ACK_WAIT),
    Scenario("lossy-link-writer-standby", lossy_link_writer_standby,
             f"lose {LOSS_PERCENT} % of the packets between the writer and its standby for 8 s", ACK_WAIT),
    Scenario("lossy-link-web-to-db-vip", lossy_link_web_to_db_vip,
             f"lose {LOSS_PERCENT} % of the packets between the web nodes and the db VIP's holder for 8 s",
             # TCP retransmits (200 ms, then 1 s and more for a lost SYN) slow requests at random;
             # a few run into the client's 5 s timeout. Measured: 0-1 of about 900.
             {"failed_requests": 10}),
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
    Scenario("partition-web-lbs", partition_web_lbs,
             "the two web LBs cannot see each other (both hold the web VIP)",
             # Two VIP moves, at the cut and at the heal: each resets the gateway's open connections
             # to the former holder (a blip of about 0.1 s). Measured: 9-12 failed requests, the
             # longest outage 0.09-0.2 s in 6 runs (before the LBs' binds were transparent, requests
             # held by the LB that stepped down at the heal waited out the client's 5 s: 2 runs of 4).
             {"longest_outage_s": 2.0, "failed_requests": 24}),
    Scenario("cut-web-node-from-memcached", cut_web_node_from_memcached,
             "the web node the admin edits products through cannot reach memcached1 nor memcached2 for 8 s",
             FREE),
    Scenario("cut-web-node-from-db-vip", cut_web_node_from_db_vip,
             "the web node a user is stuck to cannot reach the db VIP for 8 s", DB_UNREACHABLE),
    Scenario("partition-db-lbs", partition_db_lbs, "the two db LBs cannot see each other (both hold the db VIP)",
             TWO_VIP_MOVES),
    Scenario("partition-writer-from-etcd-majority", partition_writer_from_etcd_majority,
             "the writer and one etcd member cut off from the two others", WRITER_FAILOVER),
    Scenario("kill-etcd-leader", kill_etcd_leader, "kill the etcd member that leads etcd's raft", FREE),
    Scenario("kill-etcd-leader-in-a-slow-election", kill_etcd_leader_in_a_slow_election,
             "kill etcd's raft leader and freeze a second member for 0.9 s: the writer's lease renewal is late, "
             "it fences itself for a moment with no session killed",
             # Read-only for 0.4-0.8 s, then the look that opens writes and HAProxy's check: past the
             # app's 1 s retry window by a moment (3-4 failed requests, a span of about 1 s, measured).
             {"failure_span_s": 2.0}),
    Scenario("lose-etcd-quorum", lose_etcd_quorum, "kill two of the three etcd members for 10 s",
             # no quorum, no leader key: writes stop within a lease and resume with the quorum
             {"failure_span_s": 14.0}),
    Scenario("dns-outage-at-the-web-lbs", dns_outage_at_the_web_lbs,
             "Docker's DNS does not answer lb1 and lb2 for 8 s", FREE),
    Scenario("dns-outage-at-the-web-nodes", dns_outage_at_the_web_nodes,
             "Docker's DNS does not answer the web nodes for 8 s (they reach memcached by name)", FREE),
    Scenario("fill-replica-relay-volume", fill_replica_relay_volume,
             f"fill {REPLICA}'s relay-log volume for 8 s (its disk runs full)", FREE),
    Scenario("slow-slave", slow_slave, "add 200 ms of latency to slave1's network", FREE),
    Scenario("kill-writer-then-active-dblb", kill_writer_then_active_dblb,
             "kill the writer; 1 s later, during its failover, kill the db LB holding the db VIP",
             # the failover and the VIP move, one after the other
             {"failure_span_s": 5.0}),
    Scenario("kill-web-vip-holder-then-sticky-node", kill_web_vip_holder_then_sticky_node,
             "kill the LB holding the web VIP; 1 s later, while the VIP moves, kill a user's web node",
             {"failure_span_s": 3.0}),
    Scenario("kill-worker-mid-job", kill_worker_mid_job,
             "freeze a job worker holding a job, kill it; another does the job once its lease runs out", FREE),
    Scenario("kill-writer-with-jobs-queued", kill_writer_with_jobs_queued,
             "freeze the job workers for 4 s so that jobs queue up, kill the writer, thaw the workers 8 s later",
             WRITER_FAILOVER),
    Scenario("kill-autoscaler-mid-scale-out", kill_autoscaler_mid_scale_out,
             "two autoscalers; kill the leader while it adds a web node: the standby takes over and finishes",
             FREE),
    Scenario("load-spike", load_spike, "32 cookie-less visitors for 8 s, no fault: no failover", FREE),
    Scenario("restart-lab", restart_lab, "restart the whole lab (make down && make up)", {"failure_span_s": 120.0}),
]

BY_NAME = {s.name: s for s in SCENARIOS}


def select(pattern=None):
    """The scenarios PATTERN names, in suite order: all for none; else whole names or parts of names,
    separated by commas, spaces or " or " (`make chaos SCENARIO="kill-slave or etcd"`).
    A word that matches nothing raises LookupError.
    """
    if not pattern or not pattern.strip():
        return list(SCENARIOS)
    words = [w for w in pattern.replace(",", " ").split() if w != "or"]
    chosen = set()
    for word in words:
        # A whole name is that scenario alone ("partition-masters", not also "partition-masters-then-...").
        matches = [word] if word in BY_NAME else [s.name for s in SCENARIOS if word in s.name]
        if not matches:
            raise LookupError(f"no chaos scenario matches {word!r} (make chaos LIST=1 lists them)")
        chosen.update(matches)
    return [s for s in SCENARIOS if s.name in chosen]
