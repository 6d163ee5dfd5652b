"""HAProxy's runtime API on the lab's load balancers, through the Docker API."""
import contextlib
import csv
import io
import shlex
import time

from . import containers


class HaproxyError(Exception):
    """A runtime API command failed."""


def runtime(node, command):
    """Send COMMAND to NODE's HAProxy admin socket; return the reply text."""
    code, out = containers.sh(containers.get(node),
                              f"echo {shlex.quote(command)} | socat -t 5 stdio /run/haproxy/admin.sock")
    if code != 0:
        raise HaproxyError(f"{node}: {command!r} failed: {out.strip()}")
    return out


def servers(node, backend):
    """Return {server: row} from NODE's `show stat` for BACKEND (status, scur, ...)."""
    text = runtime(node, "show stat").lstrip("# ")
    rows = csv.DictReader(io.StringIO(text))
    return {r["svname"]: r for r in rows if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")}


# The web LBs' two backends of the same nodes (haproxy/conf/lb.cfg): `web`,
# checked for readiness, and `web_degraded`, checked for liveness, used
# while no node is ready. An operator's state (ready, drain, maint) is set
# in both.
WEB_BACKENDS = ("web", "web_degraded")


def set_web_state(lb, node, state):
    """Set web NODE's administrative STATE (ready, drain, maint) in both of web LB LB's backends."""
    for backend in WEB_BACKENDS:
        runtime(lb, f"set server {backend}/{node} state {state}")


def web_sessions(lb, nodes):
    """{node: current sessions on LB, over both web backends} for NODES."""
    per_backend = [servers(lb, b) for b in WEB_BACKENDS]
    return {n: sum(int(s[n]["scur"] or 0) for s in per_backend) for n in nodes}


def set_var(node, name, value):
    """Set process-wide variable NAME (proc.*) to integer VALUE on NODE, and check it took."""
    # `set var` on the CLI is experimental in HAProxy 2.6: enable that for this command only.
    runtime(node, f"experimental-mode on; set var {name} int({int(value)})")
    got = runtime(node, f"get var {name}")
    if f"value=<{int(value)}>" not in got:
        raise HaproxyError(f"{node}: {name} is not {value}: {got.strip()}")


@contextlib.contextmanager
def rate_limit_lifted():
    """Lift the web LBs' per-client rate limit for the block (all host traffic is one client); restore it."""
    lbs = containers.find(role="lb")
    for c in lbs:
        set_var(containers.node_of(c), "proc.rate_limit", 100_000_000)
    try:
        yield
    finally:
        # The table counts requests over the last second: restored at once,
        # the limit would refuse the next second's requests for the load
        # that was allowed (429s that belong to no one).
        time.sleep(1.5)
        for c in lbs:
            env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
            with contextlib.suppress(HaproxyError, LookupError):
                set_var(containers.node_of(c), "proc.rate_limit", int(env.get("LB_RATE_LIMIT", 100)))
