"""`make up`, `make down`, `make clean`: bring the lab up healthy, and take it down."""
import time

from . import (build, compose, composegen, containers, ha, haproxy, lag, progress, replication,
               secrets, settings, status, tls, topology)


def services():
    """Return the nodes `make up` starts: compose's services but the extra web nodes and workers."""
    out = compose.run("config", "--services", capture=True)
    extra = topology.WEB_NODES[topology.LAB.standard_web_nodes:] + topology.WORKERS[topology.LAB.standard_workers:]
    return sorted(set(out.stdout.split()) - set(extra))


def wait_healthy(expected):
    """Wait (bounded) until every node in EXPECTED runs and is healthy."""
    def check():
        states = {containers.node_of(c): containers.ready(c) if containers.node_of(c) in expected
                  else containers.health(c) for c in containers.find(all=True)}
        dead = {n: states[n] for n in expected if states.get(n) in ("exited", "dead")}
        if dead:
            raise SystemExit(_failure("stopped while starting", dead))
        waiting = {n: states.get(n, "missing") for n in expected if states.get(n) != "healthy"}
        return not waiting, waiting

    try:
        progress.wait_until(check, settings.HEALTH_TIMEOUT_S, describe=lambda waiting: progress.step(
            "waiting for " + ", ".join(f"{n} ({s})" for n, s in sorted(waiting.items()))))
    except progress.Timeout as exc:
        raise SystemExit(_failure(f"not healthy ({exc})", exc.detail)) from exc
    progress.ok(f"all {len(expected)} containers are healthy")


def wait_replication():
    """Wait (bounded) until every replication link runs and delivers: its heartbeat lag is fresh.

    A link's threads can both say "Yes" while nothing arrives (after a
    partition, MariaDB may keep the old connection's dump thread alive and
    refuse the new one for a while), so the heartbeats must flow too.
    """
    def check():
        bad = {l.name: (l.state if l.broken else f"lag {l.lag_ms if l.lag_ms is not None else '?'} ms")
               for l in lag.collect()
               if l.broken or l.lag_ms is None or l.lag_ms > settings.REPLICATION_FRESH_MS}
        return not bad, bad

    try:
        progress.wait_until(check, settings.REPLICATION_TIMEOUT_S,
                            describe=lambda bad: progress.step("waiting for replication: " + ", ".join(
                                f"{name} ({state})" for name, state in sorted(bad.items()))))
    except progress.Timeout as exc:
        errors = {f"{l.source} -> {l.replica}": f"{l.state} {l.last_error}".strip()
                  for l in replication.links() if not l.running} or exc.detail
        raise SystemExit(_failure(f"replication is not running ({exc})", errors,
                                  hint="see the replica's logs: make logs NODE=<replica>")) from exc
    progress.ok("every replication link is running and delivering")


def wait_vips():
    """Wait (bounded) until exactly one node of each LB pair holds its VIP."""
    def check():
        bad = {}
        for role in ("lb", "dblb"):
            vip, holders = topology.vip_holders(role)
            if len(holders) != 1:
                bad[f"{role} VIP {vip}"] = f"held by {', '.join(holders) or 'nobody'}"
        return not bad, bad

    try:
        progress.wait_until(check, settings.HEALTH_TIMEOUT_S, describe=lambda bad: progress.step(
            "waiting for the VIPs: " + ", ".join(f"{k} {v}" for k, v in sorted(bad.items()))))
    except progress.Timeout as exc:
        raise SystemExit(_failure(f"VIPs not settled ({exc})", exc.detail,
                                  hint="see keepalived's messages: make logs NODE=lb1 (or dblb1)")) from exc
    progress.ok("each VIP is held by exactly one load balancer")


def wait_writer(timeout_s=None):
    """Wait (bounded) until one master takes writes and every db LB routes writes to it."""
    def check():
        w = topology.writers()
        if len(w) != 1:
            why = "; ".join(f"{n}: {v.get('state')}: {v.get('reason')}" for n in topology.SOURCES
                            for v in [ha.view(n)] if v)
            return False, (", ".join(w) or "none") + (f" ({why})" if why else "")
        lagging = [containers.node_of(c) for c in containers.find(role="dblb")
                   if ha.routed(containers.node_of(c)) != w]
        return not lagging, f"{w[0]}, not yet routed by {', '.join(lagging)}" if lagging else w[0]

    try:
        progress.wait_until(check, timeout_s or settings.HEALTH_TIMEOUT_S, interval_s=0.25,
                            describe=lambda w: progress.step(f"waiting for one writable master (now: {w})"))
    except progress.Timeout as exc:
        raise SystemExit(_failure(f"no single writer ({exc})", {"writable masters": exc.detail},
                                  hint="see the HA loops' messages: make logs NODE=master1")) from exc
    progress.ok(f"writes go to {topology.writers()[0]}")


def quarantined():
    """Return {node: its quarantine record} of the DB nodes that hold errant transactions.

    Asked again for a second: one etcdctl call can come back empty under load.
    """
    def asked():
        try:
            return True, ha.cluster()["quarantine"]
        except ha.HaError as exc:
            return False, str(exc)

    try:
        return progress.wait_until(asked, 1.0, interval_s=0.5, describe=lambda why: progress.step(f"etcd: {why}"))
    except progress.Timeout:
        return {}


def check_quarantine():
    """Stop with the fix when a DB node is quarantined (its links cannot deliver until it is rebuilt)."""
    found = quarantined()
    if found:
        raise SystemExit(_failure("quarantined", {n: q.get("why", "") for n, q in found.items()},
                                  hint="rebuild it from the writer: make rebuild NODE=<node>"))


def serve_every_web_node():
    """Put every running web node back in the LBs' rotation (one drained by `make scale` is in MAINT)."""
    nodes = [containers.node_of(c) for c in containers.find(role="web")]
    for lb in containers.find(role="lb"):
        for node in nodes:
            haproxy.set_web_state(containers.node_of(lb), node, "ready")


def _failure(what, items, hint=None):
    lines = [f"❌ {what}:"]
    for name, state in sorted(items.items()):
        lines.append(f"   {name}: {state} — " + (hint or f"see its logs: make logs NODE={name}"))
    return "\n".join(lines)


def up():
    """Build what is missing, start, wait for health and replication, show the lab."""
    started = time.monotonic()
    composegen.write()
    secrets.ensure()
    build.all_images()
    tls.ensure()
    progress.step("starting the containers")
    compose.run("up", "-d", "--no-build", "--remove-orphans")
    # Nodes added by `make scale` stay, and must be healthy too.
    wait_healthy(sorted(set(services()) | {containers.node_of(c) for c in containers.find()}))
    wait_vips()
    serve_every_web_node()
    # The HA loops elect the writer and set up replication themselves (one
    # program owns each node's links: mysql/ha/); here we only wait for it.
    wait_writer()
    check_quarantine()
    wait_replication()
    state = wait_settled()
    print()
    if not status.show(state=state):   # it lists the problems under its table
        print(f"❌ the lab came up, but is not healthy after {settings.SETTLE_TIMEOUT_S:.0f} s (the ❌ lines above); "
              "make status shows it again, make logs NODE=<node> says why")
        return False
    progress.ok(f"the lab is up ({time.monotonic() - started:.0f} s)")
    return True


def wait_settled():
    """Wait (bounded) until the whole state `make status` judges is healthy; return that state.

    Each earlier wait looked at one thing; this one looks at them all at
    once, as `make status` will: a node Docker has not judged yet, or judged
    while the writer was being elected, is asked again until it passes.
    """
    last = {}

    def check():
        last["state"] = status.collect()
        return not last["state"]["problems"], last["state"]["problems"]

    try:
        progress.wait_until(check, settings.SETTLE_TIMEOUT_S, interval_s=2.0, describe=lambda found: progress.step(
            "waiting for: " + "; ".join(found)))
    except progress.Timeout:
        pass   # up() reports what is still wrong
    return last["state"]


def restore(container):
    """Start CONTAINER if it stopped, unpause it if it is frozen; return True if it did either."""
    container.reload()
    state = container.attrs["State"]
    if state.get("Paused"):
        container.unpause()
    elif state.get("Status") != "running":
        container.start()
    else:
        return False
    return True


def heal():
    """Start or unpause every stopped lab container, then wait as `make up` does.

    The chaos and failover tests' finaliser: whatever a fault left behind,
    the lab is whole again afterwards (or this raises, naming what is not).
    """
    # A container can still be on its way down when we look (its health
    # status lags by a check interval): go round until a pass starts nothing.
    for _ in range(5):
        started = [containers.node_of(c) for c in containers.find(all=True) if restore(c)]
        wait_healthy([containers.node_of(c) for c in containers.find(all=True)])
        if not started:
            break
        time.sleep(1)
    wait_vips()
    wait_writer()
    # A writer killed inside a commit may come back holding it (an errant
    # transaction): the HA loop quarantines it, and only a rebuild brings it back.
    for node in quarantined():
        progress.step(f"{node} is quarantined: rebuilding it from the writer")
        rebuild(node)
    wait_replication()


def rebuild(node):
    """Re-seed NODE from the writer (make rebuild); raise SystemExit when it fails."""
    if node not in topology.DB_NODES:
        raise SystemExit(f"❌ {node!r} is not a DB node ({', '.join(topology.DB_NODES)})")
    ok, message = ha.rebuild(node)
    if not ok:
        raise SystemExit(f"❌ rebuilding {node}: {message}")
    progress.ok(message)


def down():
    """Stop and remove the containers; keep the data volumes and secrets."""
    compose.run("down", "--remove-orphans")


def clean():
    """Remove the containers, the data volumes and the generated secrets."""
    compose.run("down", "--volumes", "--remove-orphans")
    secrets.remove()
    progress.ok("removed containers, volumes and generated secrets")
