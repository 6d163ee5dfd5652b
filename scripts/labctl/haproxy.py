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


def stat(node):
    """Return every row of NODE's `show stat` (dicts of HAProxy's CSV columns: pxname, svname, status, scur, ...)."""
    return parse_stat(node, runtime(node, "show stat"))


def parse_stat(node, text):
    """The rows of a `show stat` reply TEXT from NODE; HaproxyError if it holds no CSV header.

    The reply comes through `docker exec`, stdout and stderr in one stream: it
    is read from its header line on, and a reply without one (a message in
    its place) is an error, not an empty table.
    """
    start = text.find("# pxname,")
    if start < 0:
        raise HaproxyError(f"{node}: `show stat` answered no table: {text.strip()[:200]!r}")
    return list(csv.DictReader(io.StringIO(text[start + 2:])))


def servers(node, backend, rows=None):
    """Return {server: row} from NODE's `show stat` (or ROWS, read from it already) for BACKEND (status, scur, ...)."""
    return {r["svname"]: r for r in (stat(node) if rows is None else rows)
            if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")}


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
    rows = stat(lb)   # one reading for both backends
    per_backend = [servers(lb, b, rows) for b in WEB_BACKENDS]
    missing = sorted({n for s in per_backend for n in nodes if n not in s})
    if missing:
        raise HaproxyError(f"{lb}: `show stat` lists no {', '.join(missing)} in {', '.join(WEB_BACKENDS)}")
    return {n: sum(int(s[n]["scur"] or 0) for s in per_backend) for n in nodes}


def web_load(lb):
    """The web tier's load as web LB LB sees it, over both web backends.

    Returns {"nodes": {node: {"status", "in_flight", "queued", "rate", "slots"}},
    "queued": requests waiting for any node, "rate": requests/s, "rtime_ms":
    the mean response time of the last 1024 requests}. In flight is HAProxy's
    scur (requests a node is working on), slots its maxconn (slim).
    """
    rows = [r for r in stat(lb) if r["pxname"] in WEB_BACKENDS]
    num = lambda r, k: int(r.get(k) or 0)  # noqa: E731 - an empty CSV cell is 0
    nodes = {}
    for r in rows:
        if r["svname"] in ("FRONTEND", "BACKEND"):
            continue
        n = nodes.setdefault(r["svname"], {"status": r["status"], "in_flight": 0, "queued": 0, "rate": 0,
                                           "slots": num(r, "slim")})
        if r["pxname"] == WEB_BACKENDS[0]:
            n["status"] = r["status"]
        n["in_flight"] += num(r, "scur")
        n["queued"] += num(r, "qcur")
        n["rate"] += num(r, "rate")
    backends = [r for r in rows if r["svname"] == "BACKEND"]
    busy = [r for r in backends if num(r, "rate")] or backends[:1]
    return {"nodes": nodes,
            "queued": sum(num(r, "qcur") for r in backends) + sum(n["queued"] for n in nodes.values()),
            "rate": sum(num(r, "rate") for r in backends),
            "rtime_ms": max((num(r, "rtime") for r in busy), default=0)}


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
