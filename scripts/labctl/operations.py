"""Operator actions on a running lab: scale the web tier, fail writes back to master1."""
from . import compose, containers, haproxy, lifecycle, progress, settings, status

WEB_NODES = tuple(f"web{i}" for i in range(1, settings.MAX_WEB_NODES + 1))


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


def scale(n):
    """Run web1..webN and no other web node; new nodes get traffic, removed ones are drained first."""
    if not 1 <= n <= settings.MAX_WEB_NODES:
        raise SystemExit(f"❌ WEB must be between 1 and {settings.MAX_WEB_NODES}")
    running = {containers.node_of(c) for c in containers.find(role="web")}
    add = [w for w in WEB_NODES[:n] if w not in running]
    remove = [w for w in WEB_NODES[n:] if w in running]

    if add:
        progress.step(f"starting {', '.join(add)}")
        compose.run("--profile", "scale", "up", "-d", "--no-deps", *add)
        lifecycle.wait_healthy(add)
        for lb in _lbs():
            for node in add:  # a node drained by an earlier scale-down is in maintenance
                haproxy.runtime(lb, f"set server web/{node} state ready")
        _wait_lb_state(add, "UP")
        progress.ok(f"{', '.join(add)} serving")

    if remove:
        # Drain: no new users go to these nodes; requests in flight finish.
        progress.step(f"draining {', '.join(remove)}")
        for lb in _lbs():
            for node in remove:
                haproxy.runtime(lb, f"set server web/{node} state drain")
        try:
            progress.wait_until(lambda: _idle(remove), 15, interval_s=0.5)
        except progress.Timeout:
            progress.step("sticky clients still use them; moving them to other nodes")
        for lb in _lbs():
            for node in remove:
                haproxy.runtime(lb, f"set server web/{node} state maint")
        _wait_lb_state(remove, "MAINT")
        # gunicorn finishes the requests in flight on SIGTERM.
        compose.run("stop", "-t", "20", *remove)
        compose.run("rm", "-f", *remove)
        progress.ok(f"removed {', '.join(remove)}")
    progress.ok(f"web tier: {', '.join(WEB_NODES[:n])}")


def _idle(nodes):
    busy = {f"{lb}/{n}": s[n]["scur"] for lb in _lbs() for s in [haproxy.servers(lb, "web")]
            for n in nodes if s[n]["scur"] not in ("", "0")}
    return not busy, busy


def failback(timeout_s=60):
    """Move writes back to master1: demote master2; the db LBs promote master1 once caught up.

    master1's promotion (mysql/bin/db-promote) first applies every write it
    received from master2, which can no longer take any: nothing is lost.
    """
    writers = status.writers()
    if writers == ["master1"]:
        progress.ok("writes already go to master1; nothing to do")
        return
    if containers.health(containers.get("master1")) != "healthy":
        raise SystemExit("❌ master1 is not healthy (make status); start it first (make up)")
    if "master2" in writers:
        progress.step("demoting master2 (read-only)")
        code, out = containers.sh(containers.get("master2"), ["db-demote"])
        if code != 0:
            raise SystemExit(f"❌ could not demote master2: {out.strip()}")
    progress.step(f"waiting (≤{timeout_s} s) for the db LBs to promote master1 once it has caught up")
    lifecycle.wait_writer(timeout_s)
    if status.writers() != ["master1"]:
        raise SystemExit(f"❌ the db LBs chose {status.writers()} instead of master1; see make logs S=dblb1")
