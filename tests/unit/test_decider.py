"""The db LBs' decider decides safely: plan() fed made-up views of the DB nodes (no lab needed).

plan() is the pure heart of haproxy/bin/db-decider: given what each DB
node's agent said, the record read from a majority, and what the decider
remembers, it returns one action. Each case here is a situation from the
chaos suite, frozen.
"""
import importlib.machinery
import importlib.util
import os
from pathlib import Path

import pytest

DECIDER = Path(__file__).resolve().parents[2] / "haproxy" / "bin" / "db-decider"
NOW = 1_000_000.0


@pytest.fixture(scope="module")
def d():
    """The decider module, loaded from its script with the lab's settings."""
    env = {"DB_AGENTS": "master1=master1,master2=master2,slave1=slave1", "DB_SOURCES": "master1,master2",
           "DB_LEASE_S": "1.0", "DB_LEASE_MARGIN_S": "0.25", "DB_SEMI_SYNC_TIMEOUT_MS": "3000",
           "DB_STAMP_SAFETY_S": "0.5", "DECIDER_GONE_S": "0.5"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        loader = importlib.machinery.SourceFileLoader("db_decider", str(DECIDER))
        spec = importlib.util.spec_from_loader("db_decider", loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
        return module
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def agent(read_only=1, writer_epoch=0, pos="1-1-10,2-2-10", epoch=5, key=(5, 0), record=None):
    """One agent's /status."""
    return {"alive": True, "read_only": read_only, "writer_epoch": writer_epoch, "epoch": epoch,
            "gtid_binlog_pos": pos, "semi_sync": {"status": "ON", "clients": "1"},
            "register": {"key": list(key), "record": record if record is not None else
                         {"writer": "master1", "writer_epoch": 5, "stale": False}}}


def views(m1="ro", m2="ro", s1="up", record=None):
    """Views of master1, master2, slave1: 'ro', 'rw', or None (no answer)."""
    def one(state, **kw):
        if state is None:
            return None
        return agent(read_only=0 if state == "rw" else 1, record=record, **kw)
    return {"master1": one(m1, writer_epoch=5), "master2": one(m2, writer_epoch=3), "slave1": one(s1)}


def mem(d, **kw):
    """A decider's memory: master1 and master2 last seen long ago unless told otherwise."""
    m = d.Memory(takeover_at=NOW - 100)
    m.last_seen = {"master1": NOW - 100, "master2": NOW}
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def decide(d, v, m):
    """Run plan() the way a tick does."""
    return d.plan(v, d.read_register(v), m, NOW)


def test_a_writable_master_gets_its_lease_renewed(d):
    p = decide(d, views(m1="rw"), mem(d))
    assert (p.action, p.target) == ("renew", "master1")


def test_two_writable_masters_fence_the_one_promoted_earlier(d):
    p = decide(d, views(m1="rw", m2="rw"), mem(d))
    assert (p.action, p.target) == ("fence", "master2")


def test_one_missed_poll_on_a_busy_host_changes_nothing(d):
    # master1 (the writer) did not answer this poll but did 0.2 s ago: no cut, no failover.
    p = decide(d, views(m1=None), mem(d, last_seen={"master1": NOW - 0.2, "master2": NOW}))
    assert p.action == "wait"


def test_a_writer_gone_for_longer_than_the_grace_has_its_sessions_cut(d):
    p = decide(d, views(m1=None), mem(d))
    assert (p.action, p.target) == ("cut", "master1")


def test_the_standby_is_not_promoted_before_the_writers_lease_ran_out(d):
    m = mem(d, cut_at={"master1": NOW - 0.1}, last_ack={"master1": NOW - 0.5})
    p = decide(d, views(m1=None), m)
    assert p.action == "wait" and "lease ends" in p.reason


def test_after_taking_the_vip_the_decider_waits_a_whole_lease(d):
    # It cannot know when the previous holder last renewed the writer's lease.
    m = mem(d, takeover_at=NOW - 0.5, cut_at={"master1": NOW - 0.4})
    assert decide(d, views(m1=None), m).action == "wait"


def test_an_in_sync_standby_is_promoted_with_the_heartbeat_bound(d):
    m = mem(d, cut_at={"master1": NOW - 2}, last_ack={"master1": NOW - 2})
    p = decide(d, views(m1=None), m)
    assert (p.action, p.target) == ("promote", "master2")
    # No acknowledgement reached a client after the cut; the standby must hold
    # a heartbeat from less than the semi-sync timeout (3 s, less 0.5 s safety) before it.
    assert p.args["min_peer_stamp"] == pytest.approx(NOW - 2 - 3 + 0.5)


def test_a_standby_that_was_behind_is_never_promoted_without_the_writer(d):
    stale = {"writer": "master1", "writer_epoch": 5, "stale": True}
    m = mem(d, cut_at={"master1": NOW - 5}, last_ack={"master1": NOW - 5})
    p = decide(d, views(m1=None, record=stale), m)
    assert p.action == "unavailable"
    assert "may lack acknowledged writes" in p.reason and "FORCE=1" in p.reason


def test_without_a_majority_of_db_nodes_nobody_is_promoted(d):
    m = mem(d, cut_at={"master1": NOW - 5}, last_ack={"master1": NOW - 5})
    p = decide(d, views(m1=None, s1=None), m)
    assert p.action == "unavailable" and "majority" in p.reason


def test_the_newest_record_of_a_majority_wins(d):
    v = views(m1=None)
    v["slave1"]["register"] = {"key": [9, 2], "record": {"writer": "master1", "writer_epoch": 9, "stale": True}}
    assert d.read_register(v)["key"] == [9, 2]


def test_a_master_that_was_the_last_writer_is_promoted_again_without_its_peer(d):
    # master2 was promoted last (epoch 7 > the record's 5): it has every acknowledged write.
    v = views(m1=None)
    v["master2"]["writer_epoch"] = 7
    m = mem(d, cut_at={"master1": NOW - 5})
    p = decide(d, v, m)
    assert (p.action, p.target) == ("promote", "master2") and "min_peer_stamp" not in p.args


def test_on_first_start_with_one_master_missing_nobody_is_promoted(d):
    v = views(m1=None, record={})
    for node in v.values():
        if node:
            node["writer_epoch"] = 0
    p = decide(d, v, mem(d, cut_at={"master1": NOW - 5}))
    assert p.action == "unavailable" and "waiting for both masters" in p.reason


@pytest.mark.parametrize("m1_pos, m2_pos, target", [
    pytest.param("1-1-10,2-2-10", "1-1-10,2-2-10", "master1", id="equal-the-last-writer"),
    pytest.param("1-1-10,2-2-10", "1-1-12,2-2-10", "master2", id="master2-holds-more"),
    pytest.param("1-1-15,2-2-10", "1-1-12,2-2-10", "master1", id="master1-holds-more"),
])
def test_with_both_masters_read_only_the_one_holding_everything_is_promoted(d, m1_pos, m2_pos, target):
    v = views()
    v["master1"]["gtid_binlog_pos"], v["master2"]["gtid_binlog_pos"] = m1_pos, m2_pos
    p = decide(d, v, mem(d, last_seen={"master1": NOW, "master2": NOW}))
    assert (p.action, p.target) == ("promote", target)
    other = "master2" if target == "master1" else "master1"
    assert p.args["wait_gtid"] == v[other]["gtid_binlog_pos"], "it must first apply all the other has"


def test_no_master_answering_leaves_writes_unavailable(d):
    m = mem(d, last_seen={})
    assert decide(d, views(m1=None, m2=None), m).action == "unavailable"
