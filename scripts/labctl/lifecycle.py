"""`make up`, `make down`, `make clean`: bring the lab up healthy, and take it down."""
import time

from . import build, compose, containers, progress, replication, secrets, settings, status, tls


def services():
    """Return the lab's node names, as compose defines them."""
    out = compose.run("config", "--services", capture=True)
    return sorted(out.stdout.split())


def wait_healthy(expected):
    """Wait (bounded) until every node in EXPECTED runs and is healthy."""
    def check():
        states = {containers.node_of(c): containers.health(c) for c in containers.find(all=True)}
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
    """Wait (bounded) until every replication link runs."""
    def check():
        bad = {f"{l.source} -> {l.replica}": l.state for l in replication.links() if not l.running}
        return not bad, bad

    try:
        progress.wait_until(check, settings.REPLICATION_TIMEOUT_S,
                            describe=lambda bad: progress.step("waiting for replication: " + ", ".join(
                                f"{name} ({state})" for name, state in sorted(bad.items()))))
    except progress.Timeout as exc:
        errors = {f"{l.source} -> {l.replica}": f"{l.state} {l.last_error}".strip()
                  for l in replication.links() if not l.running}
        raise SystemExit(_failure(f"replication is not running ({exc})", errors,
                                  hint="see the replica's logs: make logs S=<replica>")) from exc
    progress.ok("every replication link is running")


def _failure(what, items, hint=None):
    lines = [f"❌ {what}:"]
    for name, state in sorted(items.items()):
        lines.append(f"   {name}: {state} — " + (hint or f"see its logs: make logs S={name}"))
    return "\n".join(lines)


def up():
    """Build what is missing, start, wait for health and replication, show the lab."""
    started = time.monotonic()
    secrets.ensure()
    build.all_images()
    tls.ensure()
    progress.step("starting the containers")
    compose.run("up", "-d", "--no-build", "--remove-orphans")
    wait_healthy(services())
    progress.step("setting up replication (idempotent)")
    replication.configure()
    wait_replication()
    print()
    healthy = status.show()
    progress.ok(f"the lab is up ({time.monotonic() - started:.0f} s)")
    return healthy


def down():
    """Stop and remove the containers; keep the data volumes and secrets."""
    compose.run("down", "--remove-orphans")


def clean():
    """Remove the containers, the data volumes and the generated secrets."""
    compose.run("down", "--volumes", "--remove-orphans")
    secrets.remove()
    progress.ok("removed containers, volumes and generated secrets")
