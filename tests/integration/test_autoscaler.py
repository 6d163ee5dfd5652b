"""The autoscaler against the running lab: one leader among several controllers, a takeover, a clean stop.

(Its rule is tests/unit/test_autoscale_rule.py; a leader killed in the middle of
a scale-out is the chaos scenario kill-autoscaler-mid-scale-out; following
a step load is `make bench`, phase autoscaler.)
"""
import subprocess
import time

import pytest

from labctl import autoscale, haproxy, operations, progress, settings, topology

TAKEOVER_WITHIN_S = autoscale.LEASE_S + 10


def serving(node):
    return all(haproxy.servers(lb, "web")[node]["status"].startswith("UP") for lb in topology.LB_PAIRS["lb"])


@pytest.fixture
def standard_tier(lab):
    """The standard web tier before and after (an autoscaler test changes its size)."""
    operations.scale(topology.STANDARD_WEB_NODES)
    yield topology.STANDARD_WEB_NODES
    operations.scale(topology.STANDARD_WEB_NODES)


def wait_for(since, by, what, timeout_s):
    def seen():
        found = [r for r in autoscale.records(since, by) if what(r)]
        return bool(found), found
    return progress.wait_until(seen, timeout_s, interval_s=0.3)


def test_one_controller_leads_the_other_stands_by_and_takes_over_when_it_dies(standard_tier):
    size = standard_tier
    node = topology.WEB_NODES[size]
    since = time.time()
    with autoscale.controllers(autoscale.Policy(min_nodes=size + 1, max_nodes=size + 1)) as procs:
        first, second = (autoscale.identity(p) for p in procs)
        wait_for(since, None, lambda r: r.get("event") == "scaled" and r["to"] == size + 1, 60)
        assert serving(node)
        leaders = {r["by"] for r in autoscale.records(since) if r.get("event") == "leads"}
        assert len(leaders) == 1, f"two controllers led at once: {leaders}"
        [leader] = leaders
        standby = second if leader == first else first
        assert autoscale.get(autoscale.LEADER_KEY) == leader
        assert autoscale.get(autoscale.TARGET_KEY) == str(size + 1)

        autoscale.kill(procs[[first, second].index(leader)])
        killed_at = time.time()
        wait_for(since, standby, lambda r: r.get("event") == "leads", TAKEOVER_WITHIN_S)
        took = time.time() - killed_at
        assert took <= TAKEOVER_WITHIN_S
        assert autoscale.get(autoscale.LEADER_KEY) == standby
        # The tier is as the killed leader left it: nothing to pick up, nothing changed.
        time.sleep(2)
        assert autoscale.size_now() == size + 1 and serving(node)
    # Stopped cleanly: the leader key and the target are gone, so that the next controller starts afresh.
    assert autoscale.get(autoscale.LEADER_KEY) is None
    assert autoscale.get(autoscale.TARGET_KEY) is None
    assert any(r.get("event") == "stopped" and r["by"] == standby for r in autoscale.records(since))


def test_a_target_left_by_a_dead_leader_is_picked_up(standard_tier):
    """A leader that died after writing its target and before scaling: the next one scales to it."""
    size = standard_tier
    since = time.time()
    from labctl import ha
    answer = ha.txn([], [f"put {autoscale.TARGET_KEY} {size + 1}"])
    assert answer.get("succeeded"), answer
    with autoscale.controllers(autoscale.Policy(min_nodes=1, max_nodes=size + 1), count=1):
        [done] = wait_for(since, None, lambda r: r.get("event") == "scaled", 60)
    assert done["to"] == size + 1
    [picked] = [r for r in autoscale.records(since) if r.get("kind") == "out"]
    assert picked["reason"].startswith("picking up: the last leader aimed at")
    assert serving(topology.WEB_NODES[size])


@pytest.mark.parametrize("args, says", [
    pytest.param(["--min", "5", "--max", "2"], "MIN", id="MIN above MAX"),
    pytest.param(["--max", "9"], "MAX", id="more nodes than the lab has"),
    pytest.param(["--target", "1.5"], "TARGET", id="a busy share above 1"),
])
def test_bounds_that_make_no_sense_are_refused_with_a_reason(args, says):
    r = subprocess.run(autoscale.argv(autoscale.Policy())[:4] + args, cwd=settings.ROOT, capture_output=True,
                       text=True, timeout=30, env={"PYTHONPATH": str(settings.ROOT / "scripts"), "PATH": "/usr/bin:/bin"})
    assert r.returncode != 0 and says in r.stdout + r.stderr and "Traceback" not in r.stderr, r
