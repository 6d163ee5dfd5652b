"""`make status`: per node role and health, VIP holders, the writer, replication links.

`collect()` gathers the state once (as plain data, for `--json`); `show()`
prints it. The live queries themselves (who holds a VIP, who takes writes)
live in labctl/topology.py.
"""
import json

from . import containers, decider, replication, settings, topology


def _decision():
    """What the deciding db LB says it is doing (and why writes fail, when they do)."""
    node = decider.holder()
    if node is None:
        return "none (no single db VIP holder)"
    return f"{node}: {decider.view(node).get('decision') or 'no view yet'}"


def collect():
    """Return the lab's state as a dict, and whether everything is healthy and running."""
    nodes = [{"node": containers.node_of(c), "role": containers.role_of(c), "health": containers.health(c)}
             for c in containers.find(all=True)]
    vips = {}
    for role in topology.VIPS:
        vip, holders = topology.vip_holders(role)
        vips[role] = {"vip": vip, "holders": holders}
    links = [{"source": link.source, "replica": link.replica, "state": link.state, "io": link.io_running,
              "sql": link.sql_running, "seconds_behind": link.seconds_behind_master,
              "last_error": link.last_error} for link in replication.links()]
    writers = topology.writers()
    healthy = (all(n["health"] == "healthy" for n in nodes)
               and all(len(v["holders"]) == 1 for v in vips.values())
               and len(writers) == 1 and all(link["state"] == "running" for link in links))
    return {"healthy": healthy, "nodes": nodes, "vips": vips, "writers": writers,
            "decider": _decision(), "links": links}


def show(as_json=False):
    """Print the lab's state (a table, or JSON); return True when everything is healthy and running."""
    state = collect()
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
    print(f"{'writer':<8} {', '.join(state['writers']) or 'none: writes fail (503) until the db LBs promote a source'}")
    print(f"{'decider':<8} {state['decider']}")
    print()
    print(f"{'link':<20} {'state':<11} {'io':<10} {'sql':<4} {'behind_s':<9} last error")
    for link in state["links"]:
        print(f"{link['source'] + ' -> ' + link['replica']:<20} {link['state']:<11} {link['io']:<10} "
              f"{link['sql']:<4} {link['seconds_behind'] or '-':<9} {link['last_error'][:60]}")
    print()
    print(f"site: http://127.0.0.1:{settings.HTTP_PORT}/ and https://127.0.0.1:{settings.HTTPS_PORT}/ "
          f"(lab CA: .secrets/tls/ca.crt)")
    return state["healthy"]
