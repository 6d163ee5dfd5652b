"""The write path's HA loops (mysql/ha/, db-ha) and their etcd, seen from the host through the Docker API."""
import base64
import json
import shlex

from . import containers, haproxy, settings, topology

PREFIX = f"/scalelab/clusters/{topology.DB_CLUSTER}/"


class HaError(Exception):
    """etcd or a DB node's HA loop did not answer."""


def view(node):
    """Return NODE's HA loop's own view (db-ha status), or {} when it does not answer."""
    try:
        code, out = containers.sh(containers.get(node), ["db-ha", "status"])
        return json.loads(out) if code == 0 else {}
    except Exception:  # noqa: BLE001 - a stopped or frozen node has no view
        return {}


def etcdctl(*args, timeout="1s"):
    """Run etcdctl (API v3) against every member from the first running etcd member; return (code, output)."""
    endpoints = topology.LAB.dcs_endpoints(lab_net=settings.LAB_NET)
    for c in containers.find(role="etcd"):
        code, out = containers.sh(c, ["env", "ETCDCTL_API=3", "etcdctl", f"--endpoints={endpoints}",
                                      f"--command-timeout={timeout}", *args])
        return code, out
    raise HaError("no etcd member is running")


def txn(compares, success, failure=()):
    """Run an etcd transaction (the lines of `etcdctl txn`: compares, then requests on success, on failure).

    Returns etcd's JSON answer ({"succeeded": ..., "responses": ...}), or {} when etcd did not answer.
    """
    lines = [*compares, "", *success, "", *failure, ""]
    script = "printf '%s\\n' " + " ".join(shlex.quote(line) for line in lines)
    endpoints = topology.LAB.dcs_endpoints(lab_net=settings.LAB_NET)
    for c in containers.find(role="etcd"):
        code, out = containers.sh(c, f"{script} | ETCDCTL_API=3 etcdctl --endpoints={endpoints} "
                                     "--command-timeout=2s txn -w json")
        try:
            return json.loads(out) if code == 0 else {}
        except ValueError:
            return {}
    raise HaError("no etcd member is running")


def members():
    """Return every etcd member as {"name", "endpoint", "healthy", "leader", "raft_term", "error"}."""
    names = {topology.LAB.dcs_address(m, settings.LAB_NET) + ":2379": m for m in topology.DCS_MEMBERS}
    out = {e: {"name": n, "endpoint": e, "healthy": False, "leader": False, "raft_term": None, "error": ""}
           for e, n in names.items()}
    try:
        _, health = etcdctl("endpoint", "health", "-w", "json")
        for row in json.loads(health or "[]"):
            e = row["endpoint"].removeprefix("http://")
            if e in out:
                out[e].update(healthy=bool(row.get("health")), error=row.get("error", ""))
        _, status = etcdctl("endpoint", "status", "-w", "json")
        for row in json.loads(status or "[]"):
            e = row["Endpoint"].removeprefix("http://")
            s = row["Status"]
            if e in out:
                out[e].update(leader=s["leader"] == s["header"]["member_id"], raft_term=s.get("raft_term"))
    except (HaError, ValueError, KeyError) as exc:
        for row in out.values():
            row["error"] = row["error"] or str(exc)
    return list(out.values())


def cluster():
    """Return the DB cluster's keys in etcd: leader (node, token), sync, deposed, quarantine, members."""
    code, out = etcdctl("get", "--prefix", PREFIX, "-w", "json")
    if code != 0:
        raise HaError(f"etcd does not answer: {out.strip()[-200:]}")
    try:
        kvs = json.loads(out).get("kvs", [])
    except ValueError as exc:  # seen once under load: etcdctl exited 0 and printed nothing
        raise HaError(f"etcd's answer is not JSON ({exc}): {out.strip()[-200:]!r}") from exc
    state = {"leader": None, "token": None, "sync": None, "promotion": None, "deposed": {}, "quarantine": {},
             "members": {}}
    for kv in kvs:
        rel = base64.b64decode(kv["key"]).decode()[len(PREFIX):]
        value = json.loads(base64.b64decode(kv.get("value", "")) or "null")
        if rel == "leader":
            state["leader"], state["token"] = value.get("node"), int(kv["create_revision"])
        elif rel in ("sync", "promotion"):
            state[rel] = value
        elif "/" in rel:
            group, node = rel.split("/", 1)
            if group in ("deposed", "quarantine", "members"):
                state[group][node] = value
    return state


def routed(node):
    """Return the sources db LB NODE's write port sends traffic to (UP in its `sources` backend)."""
    return sorted(name for name, row in haproxy.servers(node, "sources").items()
                  if name in topology.SOURCES and row["status"].startswith("UP"))


def _ask(node, *args):
    """Run `db-ha ARGS` in NODE; return (ok, message)."""
    code, out = containers.sh(containers.get(node), ["db-ha", *args])
    try:
        answer = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False, f"{node}: {out.strip()}"
    return code == 0 and answer.get("ok", False), answer.get("message", "")


def switchover(target, force=False):
    """Ask TARGET's HA loop to take writes over (a planned switchover, or FORCE); return (ok, message)."""
    return _ask(target, "switchover", *(["--force"] if force else []))


def hold_links(node, seconds):
    """Ask NODE's HA loop to start or stop no replication link for SECONDS (0: release); raise HaError if refused."""
    ok, message = _ask(node, "hold", str(seconds))
    if not ok:
        raise HaError(f"{node}: {message}")


def rebuild(node):
    """Ask NODE's HA loop to re-seed it from the leader; return (ok, message)."""
    return _ask(node, "rebuild")
