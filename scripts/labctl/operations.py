"""Operator actions on a running lab: scale the web tier and the job workers, move writes (failback, promote)."""
from . import compose, containers, ha, haproxy, lifecycle, progress, topology

WEB_NODES = topology.WEB_NODES


def _lbs():
    return [containers.node_of(c) for c in containers.find(role="lb")]


def _wait_lb_state(nodes, wanted, timeout_s=30):
    """Wait until every web LB reports each of NODES in a state starting with WANTED."""
    def check():
        pending = {f"{lb}/{n}": servers[n]["status"] for lb in _lbs()
                   for servers in [haproxy.servers(lb, "web")] for n in nodes
                   if not servers[n]["status"].startswith(wanted)}
        return not pending, pending

    progress.wait_until(check, timeout_s, interval_s=0.5, describe=lambda p: progress.step(
        "waiting for the LBs: " + ", ".join(f"{k} {v}" for k, v in sorted(p.items()))))


def _plan(nodes, role, n, least, name):
    """The first N of NODES should run, no other node of ROLE: return (to add, to remove)."""
    if not least <= n <= len(nodes):
        raise SystemExit(f"❌ {name} must be between {least} and {len(nodes)}")
    running = {containers.node_of(c) for c in containers.find(role=role)}
    return [w for w in nodes[:n] if w not in running], [w for w in nodes[n:] if w in running]


def _start(nodes):
    progress.step(f"starting {', '.join(nodes)}")
    compose.run("--profile", "scale", "up", "-d", "--no-deps", *nodes)
    lifecycle.wait_healthy(nodes)


def scale(n):
    """Run web1..webN and no other web node; new nodes get traffic, removed ones are drained first."""
    add, remove = _plan(WEB_NODES, "web", n, 1, "WEB")
    # A scale interrupted half-way (Ctrl-C, a killed autoscaler) can leave a
    # node running but drained or in maintenance: it goes back in rotation.
    held = held_back([w for w in WEB_NODES[:n] if w not in add])
    if held:
        progress.step(f"{', '.join(held)} run but are out of rotation (an interrupted scale): putting them back")
    if add:
        _start(add)
    if add or held:
        for lb in _lbs():
            for node in add + held:  # a node drained by an earlier scale-down is in maintenance
                haproxy.set_web_state(lb, node, "ready")
        _wait_lb_state(add + held, "UP")
        progress.ok(f"{', '.join(add + held)} serving")

    if remove:
        # Drain: no new users go to these nodes; requests in flight finish.
        progress.step(f"draining {', '.join(remove)}")
        for lb in _lbs():
            for node in remove:
                haproxy.set_web_state(lb, node, "drain")
        try:
            progress.wait_until(lambda: _idle(remove), 15, interval_s=0.5)
        except progress.Timeout:
            progress.step("sticky clients still use them; moving them to other nodes")
        for lb in _lbs():
            for node in remove:
                haproxy.set_web_state(lb, node, "maint")
        _wait_lb_state(remove, "MAINT")
        # gunicorn finishes the requests in flight on SIGTERM.
        compose.run("stop", "-t", "20", *remove)
        compose.run("rm", "-f", *remove)
        progress.ok(f"removed {', '.join(remove)}")
    progress.ok(f"web tier: {', '.join(WEB_NODES[:n])}")


def scale_workers(n):
    """Run worker1..N and no other job worker (0 stops them all: jobs wait in the queue).

    A removed worker gets SIGTERM and finishes the job in hand; one that
    does not within the grace is killed, and its job is taken again once
    its lease runs out (labapp.jobs).
    """
    workers = topology.WORKERS
    add, remove = _plan(workers, "worker", n, 0, "WORKERS")
    if add:
        _start(add)
    if remove:
        progress.step(f"stopping {', '.join(remove)} (each finishes its job first)")
        compose.run("stop", "-t", "20", *remove)
        compose.run("rm", "-f", *remove)
    progress.ok(f"job workers: {', '.join(workers[:n]) or 'none (jobs wait in the queue)'}")


def held_back(nodes):
    """The NODES some web LB keeps out of rotation by an operator's state (drain or maintenance)."""
    return sorted({n for lb in _lbs() for n, row in haproxy.servers(lb, "web").items()
                   if n in nodes and (row["status"] == "MAINT" or row["status"].startswith("DRAIN"))})


def _idle(nodes):
    """(True, {}) once no web LB holds a session on NODES; else (False, what is busy or unreadable)."""
    try:
        busy = {f"{lb}/{n}": count for lb in _lbs() for n, count in haproxy.web_sessions(lb, nodes).items()
                if count}
    except haproxy.HaproxyError as exc:   # a reply without its table (seen once in CI): ask again
        return False, {"stats": str(exc)}
    return not busy, busy


def failback(timeout_s=60):
    """Move writes back to the usual writer (master1): a planned switchover through the HA loops.

    The usual writer's HA loop asks for the leader key in etcd; the current
    writer's loop checks that it is in sync, fences itself (read_only on,
    app sessions cut) and gives the key up; the usual writer takes it,
    applies everything the other wrote and opens writes. If it cannot catch
    up in time it gives the key back and the other takes writes again. It is
    refused up front when the usual writer is not keeping up (a partition, a
    broken link).
    """
    promote(topology.USUAL_WRITER, timeout_s=timeout_s)


def promote(node, force=False, timeout_s=60):
    """Make NODE the writer (make promote); FORCE skips the checks that no acknowledged write is lost."""
    if topology.writers() == [node]:
        progress.ok(f"writes already go to {node}; nothing to do")
        return
    if force:
        print(f"⚠  forcing {node} to take writes: writes the old writer acknowledged and {node} "
              "never received are LOST (they come back only as conflicts when the old writer returns)")
    progress.step(f"asking {node}'s HA loop to take writes over")
    ok, message = ha.switchover(node, force)
    if not ok:
        raise SystemExit(f"❌ {message}")
    progress.ok(message)
    lifecycle.wait_writer(timeout_s)
    if topology.writers() != [node]:
        raise SystemExit(f"❌ writes went to {topology.writers()} instead of {node}; see make logs NODE={node}")
