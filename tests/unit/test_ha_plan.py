"""The HA loop decides safely: labha.plan.plan() fed made-up states, case by case (no lab, no I/O).

plan() is the pure heart of db-ha (mysql/ha/labha): given who the node
is, the term it holds, what its own server says and what etcd says, it
returns the actions to take in order. Each case below is a situation the
write path must get right; the invariants are those of
../shared/DESIGN-write-path.md.
"""
import pytest

from labha import gtid
from labha.cluster import Cluster
from labha.dcs import Kv
from labha.plan import DEGRADE_S, Me, Term, catchup_target, plan

NOW = 1_000_000.0
M1 = Me("master1", "source", 1, ("master1", "master2"), "master1")
M2 = Me("master2", "source", 2, ("master1", "master2"), "master1")
S1 = Me("slave1", "replica", 3, ("master1", "master2"), "master1")
TOKEN = 41


def kv(value, create=TOKEN, mod=None):
    """An etcd key as dcs.Client returns it."""
    k = Kv({"key": "", "value": ""})
    k.value, k.create_revision, k.mod_revision = value, create, mod or create
    return k


def local(read_only=True, pos="1-1-10,2-2-5", links=None, **semi):
    """What a node's own server says (mariadb.poll's shape)."""
    state = {"read_only": read_only, "pos": gtid.parse(pos), "slave_pos": {}, "server_id": 0, "now": NOW,
             "heartbeats": {}, "semi_enabled": False, "semi_on": False, "semi_clients": 0, "semi_waiting": 0,
             "semi_yes_tx": 0,
             "links": links if links is not None else {}}
    state.update(semi)
    return state


def link(io="Yes", sql="Yes", sql_error="", ignore=None):
    """One replication link's state."""
    return {"io": io, "sql": sql, "io_pos": {}, "sql_error": sql_error, "io_error": "", "ignore": ignore or ""}


def settled_links(me, *sources, **states):
    """Running links from SOURCES, set up as db-ha sets them (ignoring the node's own domains)."""
    ignore = ",".join(str(d) for d in gtid.own_domains(me.server_id))
    return {s: {**link(ignore=ignore), **states} for s in sources}


def cluster(leader=None, sync=None, **extra):
    """What etcd says."""
    return Cluster(reachable=True, revision=100, leader=kv({"node": leader}) if leader else None, sync=sync,
                   **extra)


def leading(**extra):
    """A term this node holds, promoted and writable, its deadline ahead."""
    return Term(token=TOKEN, lease=7, deadline_ok=True, promoted=True, writable=True, **extra)


def actions(p):
    """The names of a plan's actions, in order."""
    return [name for name, _ in p.actions]


# ---- one writer ------------------------------------------------------------------------------

def test_a_writable_node_that_does_not_hold_the_key_demotes_itself_first():
    p = plan(M2, Term(), local(read_only=False, links=settled_links(M2, "master1")), cluster(leader="master1"), NOW)
    assert actions(p)[0] == "demote"


def test_a_leader_whose_key_is_gone_steps_down_before_anything_else():
    lost = cluster(leader="master2")
    lost.leader.create_revision = TOKEN + 5       # someone else's term
    p = plan(M1, leading(), local(read_only=False), lost, NOW)
    assert actions(p)[0] == "step_down"
    assert "take_over" not in actions(p) and "open_writes" not in actions(p)


def test_a_leader_told_its_lease_is_gone_steps_down():
    p = plan(M1, leading(lost=True), local(read_only=False), cluster(leader="master1"), NOW)
    assert actions(p)[0] == "step_down"


def test_a_leader_past_its_renewal_deadline_turns_read_only():
    t = leading()
    t.deadline_ok = False
    p = plan(M1, t, local(read_only=False), cluster(leader="master1"), NOW)
    assert actions(p) == ["demote"]
    # Demoted (the guard or this plan fenced it): it waits for the renewal, and fences no more.
    t.writable = False
    p = plan(M1, t, local(read_only=True), cluster(leader="master1"), NOW)
    assert actions(p) == [] and "renewal overdue" in p.reason


def test_without_etcd_a_follower_stays_read_only():
    down = Cluster(reachable=False, error="no member answered")
    p = plan(M2, Term(), local(read_only=False), down, NOW)
    assert actions(p) == ["demote"]
    assert "etcd does not answer" in p.reason


def test_without_etcd_a_leader_writes_on_until_its_deadline_and_takes_no_other_step():
    down = Cluster(reachable=False, error="no member answered")
    p = plan(M1, leading(), local(read_only=False), down, NOW)
    assert actions(p) == []


# ---- who may take the key ------------------------------------------------------------------

def test_the_standby_in_sync_takes_over_from_the_leader_it_was_in_sync_with():
    p = plan(M2, Term(), local(), cluster(sync={"leader": "master1", "token": TOKEN, "standby": "master2"}), NOW)
    assert p.actions == [("take_over", {"old": "master1", "force": False})]


def test_a_standby_just_started_leaves_the_last_leader_time_to_come_back_first():
    c = cluster(sync={"leader": "master1", "token": TOKEN, "standby": "master2"})
    assert actions(plan(M2, Term(), local(uptime_s=2), c, NOW)) == []
    # ... but not when the old leader's HA loop is up (then it may be fenced and caught up from),
    c.members = {"master1": {"state": "waiting"}}
    assert actions(plan(M2, Term(), local(uptime_s=2), c, NOW)) == ["take_over"]
    # ... nor once the grace is over.
    c.members = {}
    assert actions(plan(M2, Term(), local(uptime_s=60), c, NOW)) == ["take_over"]


def test_a_standby_not_in_sync_waits_for_the_old_leader_and_says_how_to_force():
    p = plan(M2, Term(), local(), cluster(sync={"leader": "master1", "token": TOKEN, "standby": None}), NOW)
    assert actions(p) == []
    assert "FORCE=1" in p.reason and p.state == "waiting"


def test_the_last_leader_may_take_its_key_again():
    p = plan(M1, Term(), local(), cluster(sync={"leader": "master1", "token": TOKEN, "standby": None}), NOW)
    assert p.actions == [("take_over", {"old": "master1", "force": False})]


@pytest.mark.parametrize("me, wanted", [pytest.param(M1, ["take_over"], id="preferred-writer-starts-it"),
                                        pytest.param(M2, [], id="the-other-waits")])
def test_at_the_first_start_only_the_preferred_writer_takes_the_key(me, wanted):
    p = plan(me, Term(), local(), cluster(), NOW)
    assert actions(p) == wanted


def test_a_replica_never_takes_the_key():
    p = plan(S1, Term(), local(), cluster(sync={"leader": "master1", "token": TOKEN, "standby": "slave1"}), NOW)
    assert "take_over" not in actions(p)


def test_a_quarantined_or_deposed_node_never_takes_the_key():
    sync = {"leader": "master2", "token": TOKEN, "standby": "master1"}
    quarantined = cluster(sync=sync, quarantine={"master1": {"why": "errant"}})
    assert "take_over" not in actions(plan(M1, Term(), local(), quarantined, NOW))
    deposed = cluster(sync=sync, deposed={"master1": ({"domain": 1, "cutoff": 10, "token": 3}, 50)})
    assert "take_over" not in actions(plan(M1, Term(), local(), deposed, NOW))


def test_a_switchover_to_this_node_lets_it_take_over_from_the_named_leader():
    request = kv({"to": "master2", "from": "master1", "force": False, "id": "x", "at": NOW - 1}, create=90)
    c = cluster(sync={"leader": "master1", "token": TOKEN, "standby": None}, switchover=request)
    p = plan(M2, Term(), local(), c, NOW)
    assert p.actions == [("take_over", {"old": "master1", "force": False})]


def test_during_a_switchover_to_another_node_the_old_leader_does_not_take_its_key_back():
    request = kv({"to": "master2", "from": "master1", "force": False, "id": "x", "at": NOW - 1}, create=90)
    c = cluster(sync={"leader": "master1", "token": TOKEN, "standby": "master2"}, switchover=request)
    p = plan(M1, Term(), local(), c, NOW)
    assert actions(p) == [] and "in progress" in p.reason


def test_a_stale_switchover_request_is_ignored():
    request = kv({"to": "master2", "from": "master1", "force": False, "id": "x", "at": NOW - 600}, create=90)
    c = cluster(sync={"leader": "master1", "token": TOKEN, "standby": None}, switchover=request)
    assert actions(plan(M2, Term(), local(), c, NOW)) == []


def test_the_leader_hands_over_when_a_switchover_names_another_node():
    request = kv({"to": "master2", "from": "master1", "force": False, "id": "x", "at": NOW - 1}, create=90)
    c = cluster(leader="master1", sync={"leader": "master1", "token": TOKEN, "standby": "master2"},
                switchover=request)
    p = plan(M1, leading(), local(read_only=False, links=settled_links(M1, "master2")), c, NOW)
    assert ("hand_over", {"to": "master2", "force": False, "id": "x"}) in p.actions
    assert "open_writes" not in actions(p)


# ---- semi-sync: record first, then degrade; enable first, then record ----------------------

def in_sync(standby="master2"):
    return {"leader": "master1", "token": TOKEN, "standby": standby}


@pytest.mark.parametrize("semi, term", [
    pytest.param({"semi_clients": 0}, leading(), id="standby-disconnected"),
    pytest.param({"semi_clients": 1, "semi_waiting": 3}, leading(waiting_s=DEGRADE_S + 0.1), id="acks-stopped"),
    pytest.param({"semi_clients": 1, "semi_on": False}, leading(), id="mariadb-switched-it-off"),
])
def test_the_leader_degrades_only_through_degrade_which_records_first(semi, term):
    state = {"semi_enabled": True, "semi_on": True, **semi}
    p = plan(M1, term, local(read_only=False, links=settled_links(M1, "master2"), **state),
             cluster(leader="master1", sync=in_sync()), NOW)
    assert "degrade" in actions(p)
    assert ("semi_sync", {"on": False}) not in p.actions, "semi-sync must never go off before the record says so"


def test_commits_waiting_briefly_for_the_standby_are_no_reason_to_degrade():
    state = {"semi_enabled": True, "semi_on": True, "semi_clients": 1, "semi_waiting": 2}
    p = plan(M1, leading(waiting_s=DEGRADE_S / 2), local(read_only=False, links=settled_links(M1, "master2"), **state),
             cluster(leader="master1", sync=in_sync()), NOW)
    assert "degrade" not in actions(p)


def test_the_standby_is_recorded_in_sync_only_after_it_acknowledged_a_commit_with_semi_sync_on():
    state = {"semi_enabled": True, "semi_on": True, "semi_clients": 1}
    c = cluster(leader="master1", sync=in_sync(None))
    before = plan(M1, leading(acked_since_on=False), local(read_only=False, links=settled_links(M1, "master2"),
                                                            **state), c, NOW)
    assert "record_sync" not in actions(before)
    after = plan(M1, leading(acked_since_on=True), local(read_only=False, links=settled_links(M1, "master2"),
                                                          **state), c, NOW)
    assert ("record_sync", {"standby": "master2"}) in after.actions


def test_a_connected_streaming_standby_gets_semi_sync_turned_on_before_any_record():
    p = plan(M1, leading(), local(read_only=False, links=settled_links(M1, "master2"), semi_clients=1,
                                  standby_fresh=True), cluster(leader="master1", sync=in_sync(None)), NOW)
    assert ("semi_sync", {"on": True}) in p.actions
    assert ("record_sync", {"standby": "master2"}) not in p.actions


def test_a_standby_connected_but_not_streaming_yet_gets_no_semi_sync():
    p = plan(M1, leading(), local(read_only=False, links=settled_links(M1, "master2"), semi_clients=1,
                                  standby_fresh=False), cluster(leader="master1", sync=in_sync(None)), NOW)
    assert ("semi_sync", {"on": True}) not in p.actions
    assert "not streaming" in p.reason


def test_a_deposed_standby_is_never_waited_for_nor_replicated_from():
    c = cluster(leader="master1", sync=in_sync(None),
                deposed={"master2": ({"domain": 2, "cutoff": 5, "token": 3}, 50)})
    p = plan(M1, leading(), local(read_only=False, links=settled_links(M1, "master2"), semi_clients=1,
                                  standby_fresh=True), c, NOW)
    assert ("semi_sync", {"on": True}) not in p.actions
    assert ("link", {"source": "master2", "run": False}) in p.actions


# ---- no errant transactions --------------------------------------------------------------

def test_a_deposed_leader_holding_nothing_past_its_cut_off_rejoins():
    c = cluster(leader="master2", deposed={"master1": ({"domain": 1, "cutoff": 10, "token": 3}, 50)})
    p = plan(M1, Term(), local(pos="1-1-10,2-2-5"), c, NOW)
    assert actions(p) == ["rejoin"]


@pytest.mark.parametrize("state", [{"read_only": False}, {"semi_enabled": True}], ids=["writable", "semi-sync-on"])
def test_a_deposed_leader_is_judged_only_once_read_only_and_without_semi_sync(state):
    """A commit stuck in the semi-sync wait lands when semi-sync goes off: a reading taken before it
    cannot say the node holds nothing past the cut-off."""
    c = cluster(leader="master2", deposed={"master1": ({"domain": 1, "cutoff": 10, "token": 3}, 50)})
    p = plan(M1, Term(), local(pos="1-1-10,2-2-5", **state), c, NOW)
    assert "rejoin" not in actions(p) and not [a for a in actions(p) if a in ("link", "quarantine")]
    assert actions(p) == (["demote"] if "read_only" in state else ["semi_sync"]) and p.state == "demoting"
    # The next reading, read-only with semi-sync off, shows the stuck commit written: quarantined.
    p = plan(M1, Term(), local(pos="1-1-11,2-2-5"), c, NOW)
    assert actions(p)[0] == "quarantine" and p.state == "quarantined"


def test_a_deposed_leader_holding_commits_past_its_cut_off_is_quarantined():
    c = cluster(leader="master2", deposed={"master1": ({"domain": 1, "cutoff": 10, "token": 3}, 50)})
    p = plan(M1, Term(), local(pos="1-1-12,2-2-5", links=settled_links(M1, "master2")), c, NOW)
    assert p.actions[0] == ("quarantine", {"why": "2 transaction(s) past master1's cut-off 10", "errant": 2,
                                           "deposed": "master1", "cutoff": 10})
    assert "rejoin" not in actions(p) and p.state == "quarantined"


def test_a_replica_that_received_a_deposed_leaders_extra_commit_is_quarantined_and_replicates_from_nobody():
    c = cluster(leader="master2", deposed={"master1": ({"domain": 1, "cutoff": 10, "token": 3}, 50)})
    p = plan(S1, Term(), local(pos="1-1-11,2-2-5", links=settled_links(S1, "master1", "master2")), c, NOW)
    assert actions(p)[0] == "quarantine"
    assert ("link", {"source": "master2", "run": False}) in p.actions
    assert ("link", {"source": "master1", "run": False}) in p.actions


def test_a_node_that_lost_its_own_data_is_quarantined():
    c = cluster(leader="master2", promotion={"cutoff": "1-1-40,2-2-5"})
    p = plan(M1, Term(), local(pos="2-2-5", links=settled_links(M1, "master2")), c, NOW)
    assert actions(p)[0] == "quarantine"
    assert "own data is missing" in p.actions[0][1]["why"]


def test_a_replica_stops_replicating_from_a_deposed_source_and_keeps_the_clean_one():
    c = cluster(leader="master2", deposed={"master1": ({"domain": 1, "cutoff": 10, "token": 3}, 50)})
    p = plan(S1, Term(), local(pos="1-1-10,2-2-5", links=settled_links(S1, "master1", "master2")), c, NOW)
    assert p.actions == [("link", {"source": "master1", "run": False})]


def test_a_link_stopped_on_an_sql_error_is_reported_not_restarted():
    links = settled_links(M2, "master1", sql="No", sql_error="Error 1950: an out-of-order GTID")
    p = plan(M2, Term(), local(links=links), cluster(leader="master1"), NOW)
    assert "link" not in actions(p)
    assert "out-of-order GTID" in p.reason


def test_a_standby_replicates_from_the_leader_and_never_waits_on_its_own_commits():
    p = plan(M2, Term(), local(links={}, semi_enabled=True), cluster(leader="master1"), NOW)
    assert ("semi_sync", {"on": False}) in p.actions
    assert ("link", {"source": "master1", "run": True}) in p.actions


def test_a_link_set_up_without_ignoring_the_nodes_own_domains_is_set_up_again():
    p = plan(M2, Term(), local(links={"master1": link()}), cluster(leader="master1"), NOW)
    assert ("link", {"source": "master1", "run": True}) in p.actions


def test_link_actions_wait_for_a_fresh_reading_of_the_links():
    state = local(links={})
    state["links_fresh"] = False
    assert "link" not in actions(plan(M2, Term(), state, cluster(leader="master1"), NOW))


# ---- what a candidate must reach -----------------------------------------------------------

def test_the_catch_up_target_is_the_newest_copy_of_every_app_domain_but_the_candidates_own():
    received = gtid.parse("1-1-10,2-2-7,101-1-900")
    replica = gtid.parse("1-1-12,2-2-6,101-1-950,102-2-40")
    assert catchup_target(M2, "master1", [received, replica]) == {1: (1, 12)}
