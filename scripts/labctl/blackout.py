"""Measure failover blackouts: how long users see errors when a node dies.

For each kind of fault, a client polls the site through 127.0.0.1 every
20 ms on fresh connections, a node is killed, and the blackout is the time
from the kill to the first successful answer after it. The node is then
started again and the lab healed before the next run (labctl.chaos.nemesis, the
chaos suite's own).
"""
import json
import statistics
import time

import requests

from . import progress, settings, topology
from .chaos.nemesis import Nemesis
from .poller import Poller

URL = f"http://127.0.0.1:{settings.HTTP_PORT}"


def _time_kill(nz, node, path, cookies=None, must_move=False):
    """Poll PATH, kill NODE, return (blackout s, failed requests, NODE).

    The blackout is the longest time, around the kill, in which the client
    got no successful answer: from the last answer before the outage to the
    first one after it (with MUST_MOVE, the first from another node). It
    does not depend on how long Docker takes to carry out the kill.
    """
    with Poller([("page", path)], cookies=cookies) as p:
        time.sleep(0.5)
        asked = time.time()
        nz.kill(node)
        killed = time.time()
        back = p.first_ok_after(killed, unless_served_by=node if must_move else None)
        answers = sorted(s["end"] for s in p.since(asked - 0.5)
                         if s["ok"] and s["end"] <= killed + back
                         and (s["t"] <= killed or not must_move or s["node"] != node))
        gap = max((b - a for a, b in zip(answers, answers[1:])), default=back)
        return gap, p.failures_after(killed), node


def web_vip(nz):
    """Kill the LB holding the web VIP; time until the site answers again."""
    return _time_kill(nz, topology.vip_holders("lb")[1][0], "/healthz")


def db_vip(nz):
    """Kill the db LB holding the db VIP; time until a page that writes to MySQL works again."""
    return _time_kill(nz, topology.vip_holders("dblb")[1][0], "/")


def web_node(nz):
    """Kill the web node a sticky user is on; time until another node serves that user."""
    first = requests.get(URL + "/healthz", timeout=5)
    return _time_kill(nz, first.headers["X-Served-By"], "/healthz", first.cookies.get_dict(), must_move=True)


def active_master(nz):
    """Kill the master taking writes; time until a page that writes works again."""
    [master] = topology.writers()
    return _time_kill(nz, master, "/")


FAULTS = {"web_vip": web_vip, "db_vip": db_vip, "web_node": web_node, "active_master": active_master}


def measure(names, runs):
    """Run each fault in NAMES RUNS times; return {name: {runs, median_s, max_s, ...}}."""
    results = {}
    for name in names:
        blackouts, failures = [], []
        for i in range(runs):
            progress.step(f"{name}: run {i + 1}/{runs}")
            nz = Nemesis(log=lambda _: None)
            try:
                blackout, failed, node = FAULTS[name](nz)
            finally:
                nz.heal_all()
            blackouts.append(blackout)
            failures.append(failed)
            progress.ok(f"{name}: killed {node}, blackout {blackout * 1000:.0f} ms, {failed} failed requests")
        results[name] = {
            "runs": runs, "unit": "s",
            "median_s": round(statistics.median(blackouts), 3), "max_s": round(max(blackouts), 3),
            "blackouts_s": [round(b, 3) for b in blackouts], "failed_requests": failures,
        }
    return results


def show(names, runs, out=None):
    """Measure and print a table (and write JSON to OUT when given)."""
    results = measure(names, runs)
    print(f"\n{'fault':<15} {'runs':>4} {'median ms':>10} {'max ms':>8}  failed requests per run")
    for name, r in results.items():
        print(f"{name:<15} {r['runs']:>4} {r['median_s'] * 1000:>10.0f} {r['max_s'] * 1000:>8.0f}  {r['failed_requests']}")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        progress.ok(f"wrote {out}")
    return results
