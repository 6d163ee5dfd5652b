"""`make status`: per node role and health, VIP holders, the writer, etcd and the HA loops, replication links, the job queue.

`collect()` gathers the state once (as plain data, for `--json`); `show()`
prints it. The live queries themselves (who holds a VIP, who takes writes)
live in labctl/topology.py.
"""
import json
import time

from . import containers, dbnodes, ha, replication, settings, topology


def _write_path():
    """What etcd and each source's HA loop say: the leader key's holder and term, who is in sync, why."""
    try:
        c = ha.cluster()
        error = ""
    except ha.HaError as exc:
        c, error = {"leader": None, "token": None, "sync": None, "deposed": {}, "quarantine": {}, "members": {}}, str(exc)
    sync = c.get("sync") or {}
    return {"leader": c["leader"], "term": c["token"], "in_sync": sync.get("standby") if sync.get("token") == c["token"] else None,
            "deposed": c["deposed"], "quarantine": c["quarantine"], "error": error,
            "nodes": {n: {"state": m.get("state"), "reason": m.get("reason")} for n, m in c["members"].items()}}


def _jobs(writers):
    """The job queue as the writer holds it: jobs per state, the oldest waiting job's age, the parked jobs."""
    out = {"workers": sorted(containers.node_of(c) for c in containers.find(role="worker")), "error": ""}
    if len(writers) != 1:
        return {**out, "error": "no single writer to ask"}
    try:
        counts = {r["state"]: int(r["n"]) for r in dbnodes.query(
            writers[0], "SELECT state, COUNT(*) AS n FROM lab.jobs GROUP BY state")}
        age = dbnodes.value(writers[0], "SELECT ROUND(TIMESTAMPDIFF(MICROSECOND, MIN(created_at), NOW(6)) / 1e6, 1)"
                                        " FROM lab.jobs WHERE state IN ('queued', 'running')")
        parked = dbnodes.query(writers[0], "SELECT id, kind, order_id, attempts, last_error FROM lab.jobs"
                                           " WHERE state = 'parked' ORDER BY id DESC LIMIT 10")
    except dbnodes.DbError as exc:
        return {**out, "error": str(exc)}
    return {**out, "counts": {s: counts.get(s, 0) for s in ("queued", "running", "done", "parked")},
            "oldest_waiting_s": None if age is None else float(age), "parked": parked}


def collect():
    """Return the lab's state as a dict, and whether everything is healthy and running."""
    nodes = [{"node": containers.node_of(c), "role": containers.role_of(c), "health": containers.ready(c)}
             for c in containers.find(all=True)]
    vips = {}
    for role in topology.VIPS:
        vip, holders = topology.vip_holders(role)
        vips[role] = {"vip": vip, "holders": holders}
    links = [{"source": link.source, "replica": link.replica, "state": link.state, "io": link.io_running,
              "sql": link.sql_running, "seconds_behind": link.seconds_behind_master,
              "last_error": link.last_error} for link in replication.links()]
    writers = topology.writers()
    etcd = ha.members() if containers.find(role="etcd") else []
    write_path = _write_path()
    state = {"nodes": nodes, "vips": vips, "writers": writers, "etcd": etcd,
             "write_path": write_path, "links": links, "jobs": _jobs(writers), "autoscaler": _autoscaler()}
    state["problems"] = problems(state)
    state["healthy"] = not state["problems"]
    return state


def problems(state):
    """What keeps STATE (from collect()) from being healthy, one short line each; [] when it is."""
    found = [f"{n['node']} is {n['health']}" for n in state["nodes"] if n["health"] != "healthy"]
    found += [f"the {role} VIP is held by {len(v['holders'])} LBs ({', '.join(v['holders']) or 'none'})"
              for role, v in state["vips"].items() if len(v["holders"]) != 1]
    if len(state["writers"]) != 1:
        found.append(f"{len(state['writers'])} nodes take writes ({', '.join(state['writers']) or 'none'})")
    found += [f"replication {link['source']} -> {link['replica']} is {link['state']}"
              for link in state["links"] if link["state"] != "running"]
    found += [f"etcd member {m['name']} is down" for m in state["etcd"] if not m["healthy"]]
    found += [f"{n} is quarantined" for n in sorted(state["write_path"]["quarantine"])]
    return found


def _autoscaler():
    """Who leads `make autoscale` (etcd), the size it aims at, and its last decisions (its log)."""
    from . import autoscale  # it drives operations, which import this module
    state = autoscale.state()
    state["decisions"] = [d for d in state["decisions"] if d.get("kind")][-3:]
    return state


def show(as_json=False, state=None):
    """Print the lab's state (a table, or JSON; STATE if given, else collected now);
    return True when everything is healthy and running."""
    state = state or collect()
    if as_json:
        print(json.dumps(state, indent=2))
        return state["healthy"]
    print(f"{'node':<12} {'role':<11} health")
    for n in state["nodes"]:
        print(f"{n['node']:<12} {n['role']:<11} {n['health']}")
    print()
    for role, name in (("lb", "web VIP"), ("dblb", "db VIP")):
        v = state["vips"][role]
        print(f"{name:<8} {v['vip']:<15} held by {', '.join(v['holders']) or 'nobody'}")
    print(f"{'writer':<8} {', '.join(state['writers']) or 'none: writes fail (503) until a source holds the leader key'}")
    wp = state["write_path"]
    print(f"{'leader':<8} {wp['leader'] or 'nobody'} (term {wp['term'] or '-'}), in sync: {wp['in_sync'] or 'no standby'}"
          + (f"; etcd: {wp['error']}" if wp["error"] else ""))
    for node, m in sorted(wp["nodes"].items()):
        print(f"{'':<8} {node:<9} {m['state'] or '?':<11} {(m['reason'] or '')[:80]}")
    for node, q in sorted(wp["quarantine"].items()):
        print(f"{'':<8} ❌ {node} QUARANTINED: {q.get('why')}; make rebuild NODE={node}")
    for node, d in sorted(wp["deposed"].items()):
        print(f"{'':<8} {node} deposed in term {d.get('token')} (cut-off {d.get('cutoff')}): rejoins when it shows "
              "it holds nothing past it")
    print()
    if state["etcd"]:
        print(f"{'etcd':<8} " + ", ".join(f"{m['name']} {'healthy' if m['healthy'] else 'DOWN'}"
                                           f"{' (leader)' if m['leader'] else ''}" for m in state["etcd"]))
        print()
    print(f"{'link':<20} {'state':<11} {'io':<10} {'sql':<4} {'behind_s':<9} last error")
    for link in state["links"]:
        print(f"{link['source'] + ' -> ' + link['replica']:<20} {link['state']:<11} {link['io']:<10} "
              f"{link['sql']:<4} {link['seconds_behind'] or '-':<9} {link['last_error'][:60]}")
    print()
    a = state["autoscaler"]
    running = f"led by {a['leader']}" if a["leader"] else "not running (make autoscale)"
    print(f"{'scaler':<8} {running}; {a['size']} web node(s)" + (f", aiming at {a['target']}" if a["target"] else "")
          + (f"; etcd: {a['error'][:80]}" if a["error"] else ""))
    for d in a["decisions"]:
        print(f"{'':<8} {time.strftime('%H:%M:%S', time.localtime(d['at']))} {d['kind']} {d['size']} -> {d['to']}: "
              f"{d['reason'][:110]}")
    jobs = state["jobs"]
    if jobs["error"]:
        print(f"{'jobs':<8} unknown: {jobs['error'][:100]}")
    else:
        c = jobs["counts"]
        age = jobs["oldest_waiting_s"]
        print(f"{'jobs':<8} {c['queued']} queued, {c['running']} running, {c['done']} done, {c['parked']} parked"
              + (f"; oldest waiting {age:.1f} s" if age is not None else "")
              + f"; workers: {', '.join(jobs['workers']) or 'none (make scale WORKERS=n)'}")
        for job in jobs["parked"]:
            print(f"{'':<8} ❌ parked job {job['id']} ({job['kind']} of order {job['order_id']}, "
                  f"{job['attempts']} attempts): {(job['last_error'] or '')[:80]}")
    print()
    print(f"site: http://127.0.0.1:{settings.HTTP_PORT}/ and https://127.0.0.1:{settings.HTTPS_PORT}/ "
          f"(lab CA: .secrets/tls/ca.crt)")
    for problem in state["problems"]:
        print(f"❌ {problem}")
    return state["healthy"]
