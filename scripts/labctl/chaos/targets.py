"""Who a fault strikes, found at the moment it strikes: the writer, a VIP holder, the etcd leader, a user's node.

Named apart from the faults (chaos.nemesis) so that a scenario reads as
"kill the writer", and so that the console and the tests ask the same
questions the same way.
"""
from labctl import containers, dbnodes, ha, progress, topology

# The lab's sources (masters) and its read replica, from its topology.
FIRST, SECOND = topology.SOURCES
[REPLICA] = topology.REPLICAS


def writer():
    """The one source that takes writes now (fails when there is none, or two)."""
    [node] = topology.writers()
    return node


def standby():
    """The source that does not take writes now."""
    return SECOND if writer() == FIRST else FIRST


def vip_holder(pair):
    """The LB of PAIR ("lb" or "dblb") that holds its VIP now."""
    return topology.vip_holders(pair)[1][0]


def vip_backup(pair):
    """The LB of PAIR that does not hold its VIP."""
    first, second = topology.LB_PAIRS[pair]
    return second if vip_holder(pair) == first else first


def home_node(workload):
    """The web node that served the workload's first successful login (its user is stuck to it)."""
    return next(op.served_by for op in workload.history if op.kind == "login" and op.outcome == "ok")


def editor_node(workload):
    """The web node the workload's editor (the admin) is stuck to: where its product writes run."""
    return next(op.served_by for op in workload.edits if op.kind == "login" and op.outcome == "ok")


def etcd_leader():
    """The etcd member that leads etcd's raft now."""
    [leader] = [m["name"] for m in ha.members() if m["leader"]]
    return leader


def etcd_follower():
    """An etcd member that is not the raft leader."""
    leader = etcd_leader()
    return next(m for m in topology.DCS_MEMBERS if m != leader)


def web_nodes():
    """The web nodes running now."""
    return [containers.node_of(c) for c in containers.find(role="web")]


def everyone_but(*nodes):
    """Every node of the lab (its running containers) but NODES."""
    return [containers.node_of(c) for c in containers.find() if containers.node_of(c) not in nodes]


def workers():
    """The job workers running now."""
    return [containers.node_of(c) for c in containers.find(role="worker")]


def queued_jobs():
    """How many jobs wait in the writer's queue now."""
    return int(dbnodes.value(writer(), "SELECT COUNT(*) FROM lab.jobs WHERE state = 'queued'"))


def _leases(sql_filter):
    """The writer's jobs under a live lease that match SQL_FILTER: [{"id", "lease_owner", "attempts"}]."""
    return dbnodes.query(writer(), "SELECT id, lease_owner, attempts FROM lab.jobs WHERE state = 'running'"
                                   f" AND lease_until > NOW(6) AND {sql_filter} ORDER BY id")


def busy_worker(timeout_s=10):
    """A job worker holding a job now, and the job: (worker, {"id", "lease_owner", "attempts"})."""
    def holding():
        rows = _leases("TRUE")
        return bool(rows), rows
    [job, *_] = progress.wait_until(holding, timeout_s, interval_s=0.05)
    return job["lease_owner"], job


def job_held_by(worker, job):
    """True if WORKER still holds JOB (the same attempt, under a live lease)."""
    return bool(_leases(f"id = {int(job['id'])} AND attempts = {int(job['attempts'])}"
                        f" AND lease_owner = '{worker}'"))
