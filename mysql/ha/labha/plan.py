"""The HA loop's decisions, as a pure function (as Patroni's ha.py is the heart of Patroni).

plan(me, term, local, cluster, now) -> Plan: what this node does next,
given who it is (Me), the term it holds (Term: its leader key, lease
deadline, promotion), what its own server said (local, from mariadb.poll)
and what etcd said (cluster.Cluster). No I/O here: tests/unit/test_ha_plan.py
feeds it made-up states case by case; labha.daemon carries plans out.

The rules (see ../shared/DESIGN-write-path.md, README "How the pairs fail over"):
  * Only the holder of the leader key is ever writable; a node that is not
    (or no longer) the holder turns read_only on before anything else.
  * The key is taken only by a node that provably holds every commit the
    last leader acknowledged: the last leader itself, or the standby that
    `sync` names in sync; at the first start, the preferred writer; or the
    target of an operator's switchover (forced: anyone the operator names).
  * The leader commits semi-synchronously while `sync` names its standby.
    It records "no standby in sync" before it stops waiting for the
    standby (record first, then degrade), and records the standby as in
    sync only after semi-sync is on and the standby has acknowledged a
    commit since (enable first, then record).
  * A deposed leader rejoins only when it holds nothing past the cut-off
    its successor recorded; otherwise it (or any node holding such
    transactions) is quarantined, and nobody replicates from it.
"""
from dataclasses import dataclass, field

from . import gtid

# Commits may wait this long for the standby's acknowledgement before the
# leader records that the standby is out of sync and goes asynchronous
# (README: the trade-off between a write stall and a standby that can be
# promoted).
DEGRADE_S = 1.0
# A switchover request older than this is stale (make promote gives up earlier).
SWITCHOVER_S = 15.0
# A standby that has just started (after `make down && make up`, say) leaves
# the last leader this long to come back before it takes over from it: the
# last leader may hold commits it logged while the lab went down, which a
# takeover without it would leave behind (a quarantine). A standby that was
# running when the leader died takes over at once.
STARTUP_GRACE_S = 15.0


@dataclass(frozen=True)
class Me:
    """Who this node is in its cluster."""
    node: str
    role: str                  # source | replica
    server_id: int
    sources: tuple             # every source of the cluster
    preferred: str             # the writer at the first start


@dataclass
class Term:
    """This node's own leadership, as the daemon keeps it."""
    token: int = 0             # the leader key's create revision (0: not leading)
    lease: int = 0
    deadline_ok: bool = False  # the lease was renewed in time (monotonic, from when the renewal was sent)
    lost: bool = False         # a renewal said the lease is gone
    promoted: bool = False     # the takeover steps are done in this term
    writable: bool = False     # read_only is off by our hand in this term
    waiting_s: float = 0.0     # how long commits have been waiting for the standby's ack
    acked_since_on: bool = False  # the standby acknowledged a commit since semi-sync went on


@dataclass
class Plan:
    """What to do now: actions (name, arguments) in order, why, and the state to publish."""
    actions: list = field(default_factory=list)
    reason: str = ""
    state: str = ""

    def do(self, name, **args):
        """Add an action."""
        self.actions.append((name, args))
        return self


def _switchover(cluster, now):
    """The pending operator request, if fresh: {"to", "from", "force", "id", "at"} or None."""
    kv = cluster.switchover
    if kv is None or not isinstance(kv.value, dict) or kv.value.get("result"):
        return None
    if now - float(kv.value.get("at", 0)) > SWITCHOVER_S:
        return None
    return kv.value


def _links(plan, me, local, cluster, wanted):
    """Add the link actions that make this node replicate from exactly the sources in WANTED that are clean.

    LOCAL["links"] may be a few polls old: actions only when
    LOCAL["links_fresh"]. A link whose SQL thread stopped on an error (an
    errant transaction under gtid_strict_mode, a conflict) is never
    restarted blindly: the reason says so, for an operator.
    """
    have = local.get("links")
    if have is None:
        return
    fresh = local.get("links_fresh", True)
    for source in me.sources:
        if source == me.node:
            continue
        run = source in wanted and cluster.clean(source)
        link = have.get(source)
        if link is None:
            if run and fresh:
                plan.do("link", source=source, run=True)
            continue
        if link["sql_error"]:
            plan.reason += f"; link from {source} stopped on an error: {link['sql_error'][:160]}"
            continue
        running = link["io"] != "No" and link["sql"] == "Yes"
        settled = {int(d) for d in link.get("ignore", "").replace(" ", "").split(",") if d} == set(
            gtid.own_domains(me.server_id))
        if run and (not running or not settled) and fresh:
            plan.do("link", source=source, run=True)
        elif not run and link["io"] != "No" and fresh:
            plan.do("link", source=source, run=False)


def errant(me, local, cluster):
    """Return why this node must be quarantined ({"why", "errant", "deposed", "cutoff"}), or None.

    A deposed leader's extra commits are errant wherever they are: on the
    deposed node itself, or on a node that received them after the cut-off.
    And a node that holds LESS of its own app domain than the newest
    promotion recorded (its data volume was lost or restored from an old
    copy) cannot get it back by replication: it never takes its own domains
    from a peer.
    """
    if cluster.leader_node == me.node:
        return None   # the leader's own position is the cut-off
    for node, (marker, _) in sorted(cluster.deposed.items()):
        domain, cutoff = int(marker["domain"]), int(marker["cutoff"])
        have = local["pos"].get(domain, (0, 0))[1]
        if have > cutoff:
            return {"why": f"{have - cutoff} transaction(s) past {node}'s cut-off {cutoff}", "errant": have - cutoff,
                    "deposed": node, "cutoff": cutoff}
    recorded = gtid.parse((cluster.promotion or {}).get("cutoff", "")).get(me.server_id, (0, 0))[1]
    have = local["pos"].get(me.server_id, (0, 0))[1]
    if have < recorded:
        return {"why": f"its own data is missing: it holds {have} of its {recorded} transactions (a lost or old "
                       "data volume)", "errant": have - recorded, "deposed": me.node, "cutoff": recorded}
    return None


def may_take_over(me, local, cluster, now):
    """Return (the old leader to take over from, force, None) or (None, False, why not)."""
    if me.node in cluster.quarantine:
        return None, False, "quarantined"
    if me.node in cluster.deposed:
        return None, False, "deposed: checking it holds nothing past the cut-off first"
    request = _switchover(cluster, now)
    if request is not None:
        if request["to"] == me.node:
            return request.get("from"), bool(request.get("force")), None
        return None, False, f"a switchover to {request['to']} is in progress"
    sync = cluster.sync
    if sync is None:
        if me.node == me.preferred:
            return None, False, None
        return None, False, f"waiting for {me.preferred} to start the cluster (no leader has been elected yet)"
    if sync.get("leader") == me.node:
        return me.node, False, None
    if sync.get("standby") == me.node:
        old = sync["leader"]
        if local.get("uptime_s", STARTUP_GRACE_S) < STARTUP_GRACE_S and old not in cluster.members:
            return None, False, (f"just started: leaving {old} (the last leader) "
                                 f"{STARTUP_GRACE_S - local['uptime_s']:.0f} s to come back first")
        return old, False, None
    return None, False, (f"{sync.get('leader')} was the leader and no standby was in sync with it: waiting for it "
                         f"to return, so that no acknowledged write is lost (make promote NODE={me.node} FORCE=1 "
                         "takes over anyway, losing what only it had)")


def plan(me, term, local, cluster, now):
    """Decide what this node does next (see the module's docstring)."""
    p = Plan()
    if local is None:
        p.reason, p.state = "the local server does not answer", "down"
        if term.token:
            p.do("step_down", why="the local server does not answer")
        return p
    leading = (term.token and not term.lost and cluster.reachable and cluster.leader is not None
               and cluster.leader.create_revision == term.token)
    if term.token and (term.lost or (cluster.reachable and not leading)):
        p.do("step_down", why="the leader key is no longer ours")
        term = Term()
    if me.role == "replica":
        return _replica(p, me, local, cluster)
    if not cluster.reachable:
        if term.token:
            p.reason, p.state = "etcd does not answer: writing until the lease deadline", "leader"
        else:
            if not local["read_only"]:
                p.do("demote", why="not the leader (etcd does not answer)")
            p.reason, p.state = f"etcd does not answer ({cluster.error[:100]})", "unknown"
        return p
    if leading:
        return _leader(p, me, term, local, cluster, now)
    return _follower(p, me, local, cluster, now)


def _replica(p, me, local, cluster):
    if not local["read_only"]:
        p.do("demote", why="a read replica is never writable")
    found = errant(me, local, cluster) if cluster.reachable else None
    if found and me.node not in cluster.quarantine:
        p.do("quarantine", **found)
    if me.node in cluster.quarantine or found:
        p.reason, p.state = "quarantined: holds transactions past a cut-off", "quarantined"
        _links(p, me, local, cluster, wanted=())
        return p
    p.reason, p.state = "replica", "replica"
    if cluster.reachable:
        _links(p, me, local, cluster, wanted=me.sources)
    return p


def _follower(p, me, local, cluster, now):
    leader = cluster.leader_node
    settling = not local["read_only"] or (local["semi_enabled"] and me.node in cluster.deposed)
    if not local["read_only"]:
        p.do("demote", why=f"not the leader ({leader or 'nobody'} is)")
    if local["semi_enabled"]:
        p.do("semi_sync", on=False)   # a standby's own commits (heartbeats) never wait
    if settling and me.node not in cluster.quarantine:
        # What it holds is judged only from a reading taken with read_only on
        # and semi-sync off: until then a commit can still land. A commit
        # stuck in a semi-sync wait (the writer cut off inside it) holds
        # read_only up, and is written when semi-sync goes off: judged from
        # this round's reading, taken before, the node "held nothing past the
        # cut-off", rejoined, and its late commit replicated into the new
        # writer, overwriting newer acknowledged writes (chaos
        # writer-lost-in-semi-sync-wait, in CI: 4 carts went back in time).
        p.reason, p.state = "not the leader: read-only first, then what it holds is checked", "demoting"
        return p
    found = errant(me, local, cluster)
    if me.node in cluster.quarantine or found:
        if found and me.node not in cluster.quarantine:
            p.do("quarantine", **found)
        p.reason, p.state = "quarantined: holds transactions past the cut-off (make rebuild)", "quarantined"
        _links(p, me, local, cluster, wanted=[leader] if leader else [])
        return p
    if me.node in cluster.deposed:
        p.do("rejoin")
        p.reason, p.state = "deposed: holds nothing past the cut-off, rejoining", "rejoining"
        return p
    if leader is not None:
        p.reason, p.state = f"standby of {leader}", "standby"
        _links(p, me, local, cluster, wanted=[leader])
        return p
    old, force, why = may_take_over(me, local, cluster, now)
    if why is not None:
        p.reason, p.state = why, "waiting"
        return p
    p.do("take_over", old=old, force=force)
    p.reason, p.state = f"no leader: taking over from {old or 'nobody (first start)'}", "candidate"
    return p


def _leader(p, me, term, local, cluster, now):
    p.state = "leader"
    if not term.promoted:
        p.reason = "taking over"
        return p
    if not term.deadline_ok:
        if term.writable or not local["read_only"]:
            # Once: every fence kills the clients' sessions, and they come back while it lasts.
            p.do("demote", why="the lease was not renewed in time")
        p.reason = "lease renewal overdue: read-only until it is renewed"
        return p
    peers = [s for s in me.sources if s != me.node]
    _links(p, me, local, cluster, wanted=peers)
    request = _switchover(cluster, now)
    if request is not None and request["to"] != me.node:
        p.do("hand_over", to=request["to"], force=bool(request.get("force")), id=request.get("id"))
        p.reason = f"handing over to {request['to']}"
        return p
    if local["read_only"]:
        p.do("open_writes")
    sync = cluster.sync or {}
    recorded = sync.get("standby") if sync.get("token") == term.token else None
    peer = peers[0] if peers else None
    if local["semi_enabled"]:
        why = None
        if not cluster.clean(peer):
            why = f"{peer} is not clean"
        elif not local["semi_on"]:
            why = "MariaDB switched semi-sync off"
        elif local["semi_clients"] == 0:
            why = f"{peer} is not connected"
        elif term.waiting_s >= DEGRADE_S:
            why = f"commits waited {term.waiting_s:.1f} s for {peer}'s acknowledgement"
        if why is not None:
            p.do("degrade", why=why)
            p.reason = f"going asynchronous: {why}"
        elif recorded != peer and term.acked_since_on:
            p.do("record_sync", standby=peer)
            p.reason = f"{peer} caught up: recording it in sync"
        else:
            p.reason = f"leader; {peer} {'in sync' if recorded == peer else 'catching up'}"
    else:
        if recorded is not None or sync.get("token") != term.token:
            p.do("record_sync", standby=None)
        if peer and cluster.clean(peer) and local["semi_clients"] >= 1 and local.get("standby_fresh"):
            p.do("semi_sync", on=True)
            p.reason = f"leader; {peer} is connected and streaming: semi-sync on"
        else:
            why = ("not clean" if not cluster.clean(peer) else "not connected" if not local["semi_clients"]
                   else "connected, not streaming yet")
            p.reason = f"leader, asynchronous: {peer} {why}"
    return p


def catchup_target(me, old, positions):
    """Return the position a candidate must reach: the newest of POSITIONS in every app domain but its own.

    POSITIONS are what the candidate could read (the fenced old leader,
    the replicas, its own received position); heartbeat domains never
    count: they hold stamps only their own node writes.
    """
    mine = {me.server_id}
    return gtid.without(gtid.app_domains(gtid.union(*positions)), mine)
