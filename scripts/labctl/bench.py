"""`make bench`: the lectures' claims, measured side by side on this machine, in one run.

Every figure is a distribution or a ratio measured here and now:
  horizontal       1, 2, 3, 4 web nodes (0.25 CPU each) on the CPU-bound route
                   (/burn): saturation throughput, scaling efficiency, p99 at a
                   fixed offered load, and where scaling stops, with its cause
  vertical         one web node at 0.25, 0.5 and 1 CPU on the same route
  db_bound         the DB-bound route (GET /: a session row written through the
                   write path) on 1-4 nodes: where the writing master is the ceiling
  read_mix         product reads with the cache and the replica, the replica only,
                   and the master only: what each lifts
  lb_cost          one web node straight vs through the gateway and HAProxy
  cross_check      the lab's load generator against `hey` on the same route
  calm_under_load  32 cookie-less visitors for 20 s: 5xx, servers marked down, failovers
  idle_cpu         the host's busy share with the lab idle (/proc/stat over 20 s)
  job_queue        a burst of orders with 1, 2 and 4 job workers: each invoice's
                   latency (checkout committed -> invoice made) p50/p99, and jobs/s
  autoscaler       a step load on /burn from idle to twice what one node serves, the
                   autoscaler (make autoscale, MIN 1, MAX 4) sizing the tier: seconds
                   until it added nodes, p99 before/during/after, failed requests in
                   scale events, and the time back to MIN once the load ends
  lag              replication lag per link at idle (heartbeats), p50/p99
  failover         blackouts over 5 kills each: web VIP, web node, db VIP, writing master;
                   and VIP moves nobody asked for during all the load above
Load comes from loadgen.py (open loop, no coordinated omission; see there).
Results: reports/bench/bench.json, bench.md and *.png only; README's Results
section is updated by hand from bench.md when a run is committed.
"""
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shutil
import subprocess
import threading
import time

from . import (autoscale, benchreport, blackout, client, containers, dbnodes, haproxy, lag, loadgen,
               operations, progress, settings, spike, topology)
from .chaos.nemesis import Nemesis

OUT = settings.ROOT / "reports" / "bench"
URL = f"http://127.0.0.1:{settings.HTTP_PORT}"
DURATION_S = 8
NODES = (1, 2, 3, 4)
CPUS = (0.25, 0.5, 1.0)
BURN = "/burn"          # CPU-bound: PBKDF2 in the web node, no database
VISIT = "/"             # DB-bound: a session row upserted through the write path
PRODUCTS = [f"/products/{i}" for i in range(1, 13)]
CONNECTIONS = 32


def _load(url, **kw):
    kw.setdefault("duration", DURATION_S)
    return asyncio.run(loadgen.run(url, **kw))


def _summary(r):
    return {k: r[k] for k in ("throughput_rps", "ok", "errors", "p50_ms", "p99_ms", "max_ms") if k in r}


def sidecar(networks, argv, env=None, timeout_s=120):
    """Run ARGV (the bench's own load generator) in a web-image container on the lab NETWORKS; return its JSON.

    This is how the bench reaches what the host cannot: a web node directly,
    or the db VIP.
    """
    out = containers.sidecar(argv, networks=networks, image="web", timeout_s=timeout_s, environment=env or {},
                             working_dir="/bench",
                             volumes={str(settings.ROOT / "scripts" / "labctl"): {"bind": "/bench", "mode": "ro"}})
    return json.loads(out.strip().splitlines()[-1])


# ---- the web tier in rotation, and its size -----------------------------------

def serve_only(nodes):
    """Put NODES in both web LBs' rotation and every other running web node in maintenance."""
    running = [containers.node_of(c) for c in containers.find(role="web")]
    for lb in containers.find(role="lb"):
        for node in running:
            state = "ready" if node in nodes else "maint"
            haproxy.set_web_state(containers.node_of(lb), node, state)
    time.sleep(1)


def _cpus(node):
    return containers.get(node).attrs["HostConfig"]["NanoCpus"] / 1e9


def resize(node, cpus):
    """Give NODE CPUS of CPU (a CFS quota), at run time, as a bigger or smaller server."""
    subprocess.run(["docker", "update", "--cpus", str(cpus), containers.get(node).id],
                   check=True, capture_output=True)
    containers.get(node).reload()


def _efficiency(sat):
    """Return {n: throughput per node relative to one node} from {n: throughput}."""
    one = max(sat[NODES[0]], 1e-9)
    return {n: round(sat[n] / (n * one), 2) for n in NODES}


# ---- the measurements --------------------------------------------------------

def horizontal():
    """The CPU-bound route on 1-4 web nodes: saturation, efficiency, p99 at a fixed load."""
    out, sat = {}, {}
    offered = None
    for n in NODES:
        serve_only([f"web{i}" for i in range(1, n + 1)])
        progress.step(f"horizontal: {n} web node(s) on {BURN}")
        s = _load(URL + BURN, closed=True, connections=CONNECTIONS)
        offered = offered or max(5.0, round(0.8 * s["throughput_rps"]))  # 80 % of one node
        at = _load(URL + BURN, rate=offered, connections=64)
        out[str(n)] = {"saturation": _summary(s), "offered_rps": offered, "at_offered": _summary(at)}
        sat[n] = s["throughput_rps"]
    eff = _efficiency(sat)
    out["efficiency"] = {str(n): e for n, e in eff.items()}
    out["stops_scaling_at"] = next((n for n in NODES if eff[n] < 0.8), None)
    out["host_cpu_busy"] = host_cpu_busy(lambda: _load(URL + BURN, closed=True, connections=CONNECTIONS,
                                                        duration=4))
    return out


def host_cpu_busy(load):
    """Return the share of the host's CPUs busy while LOAD runs (from /proc/stat)."""
    def ticks():
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait
    t0, i0 = ticks()
    load()
    t1, i1 = ticks()
    return round(1 - (i1 - i0) / max(t1 - t0, 1), 2)


IDLE_S = 20


def idle_cpu():
    """The share of the host's CPUs the lab keeps busy at idle: /proc/stat over IDLE_S with no load."""
    progress.step(f"the idle lab's CPU: the host's busy share over {IDLE_S} s with no load")
    return {"seconds": IDLE_S, "busy": host_cpu_busy(lambda: time.sleep(IDLE_S)),
            "containers": len(containers.find())}


def vertical():
    """One web node at 0.25, 0.5 and 1 CPU on the CPU-bound route."""
    serve_only(["web1"])
    before, out = _cpus("web1"), {}
    try:
        for cpus in CPUS:
            resize("web1", cpus)
            progress.step(f"vertical: web1 at {cpus} CPU on {BURN}")
            out[str(cpus)] = _summary(_load(URL + BURN, closed=True, connections=CONNECTIONS))
    finally:
        resize("web1", before)
    base = max(out[str(CPUS[0])]["throughput_rps"], 1e-9)
    out["speedup"] = {str(c): round(out[str(c)]["throughput_rps"] / base, 2) for c in CPUS}
    return out


def _replicas_state(state):
    """Put every read replica in STATE (ready, maint) on both db LBs' read port."""
    for dblb in containers.find(role="dblb"):
        for replica in topology.REPLICAS:
            haproxy.runtime(containers.node_of(dblb), f"set server replicas/{replica} state {state}")


def _writer_counters():
    [writer] = topology.writers()
    rows = dbnodes.query(writer, "SHOW GLOBAL STATUS WHERE Variable_name IN ('Com_commit', "
                         "'Innodb_data_fsyncs', 'Rpl_semi_sync_master_tx_avg_wait_time')")
    return writer, {r["Variable_name"]: int(r["Value"]) for r in rows}


def db_bound():
    """GET / (a write per visit) on 1-4 nodes: where the writing master becomes the ceiling."""
    out, sat = {}, {}
    for n in NODES:
        serve_only([f"web{i}" for i in range(1, n + 1)])
        progress.step(f"db-bound: {n} web node(s) on {VISIT}")
        writer, before = _writer_counters()
        s = _load(URL + VISIT, closed=True, connections=CONNECTIONS)
        _, after = _writer_counters()
        per_s = {k: round((after[k] - before[k]) / DURATION_S) for k in ("Com_commit", "Innodb_data_fsyncs")}
        out[str(n)] = {"saturation": _summary(s), "writer": writer, "writer_commits_per_s": per_s["Com_commit"],
                       "writer_fsyncs_per_s": per_s["Innodb_data_fsyncs"],
                       "semi_sync_wait_us": after["Rpl_semi_sync_master_tx_avg_wait_time"]}
        sat[n] = s["throughput_rps"]
    out["efficiency"] = {str(n): e for n, e in _efficiency(sat).items()}
    return out


def read_mix():
    """Product pages on every node: cache + replica, replica only (no cache), master only."""
    serve_only([f"web{i}" for i in NODES])
    [holder] = topology.vip_holders("dblb")[1]
    out = {}
    cases = (("cache_and_replica", (), False), ("replica_no_cache", ("Cache-Control: no-cache",), False),
             ("master_only", ("Cache-Control: no-cache",), True))
    for name, headers, replica_off in cases:
        progress.step(f"read mix: {name}")
        _replicas_state("maint" if replica_off else "ready")
        try:
            out[name] = _summary(_load(URL + PRODUCTS[0], closed=True, connections=CONNECTIONS,
                                       paths=PRODUCTS, headers=headers))
        finally:
            _replicas_state("ready")
        out[name]["read_node_dblb"] = holder
    base = max(out["master_only"]["throughput_rps"], 1e-9)
    out["lift_over_master_only"] = {k: round(out[k]["throughput_rps"] / base, 2)
                                    for k in ("cache_and_replica", "replica_no_cache")}
    return out


def lb_cost():
    """web1 alone, straight from a client container vs through the gateway and HAProxy."""
    serve_only(["web1"])
    out = {}
    for name, url in (("via_gateway_and_lb", f"http://gateway:8080{BURN}"), ("direct_to_web1", f"http://web1:8000{BURN}")):
        progress.step(f"lb cost: {name}")
        sat = sidecar(["public", "web"], ["python3", "loadgen.py", url, "--closed", "--connections", "16",
                                          "--duration", str(DURATION_S), "--no-timeline"])
        lat = sidecar(["public", "web"], ["python3", "loadgen.py", url, "--rate", "20",
                                          "--duration", str(DURATION_S), "--no-timeline"])
        out[name] = {"saturation": _summary(sat), "at_20_rps": _summary(lat)}
    via, direct = out["via_gateway_and_lb"], out["direct_to_web1"]
    out["throughput_loss_via_lb"] = round(1 - via["saturation"]["throughput_rps"]
                                          / max(direct["saturation"]["throughput_rps"], 1e-9), 3)
    out["p50_added_ms"] = round(via["at_20_rps"]["p50_ms"] - direct["at_20_rps"]["p50_ms"], 2)
    return out


def cross_check():
    """Saturation throughput on /burn (4 nodes): the lab's load generator against hey."""
    serve_only([f"web{i}" for i in NODES])
    ours = _summary(_load(URL + BURN, closed=True, connections=CONNECTIONS))
    hey = shutil.which("hey")
    if hey is None:
        return {"loadgen": ours, "hey": None, "note": "hey is not installed (apt-get install hey)"}
    progress.step(f"cross-check: hey -z {DURATION_S}s -c {CONNECTIONS} on {BURN}")
    r = subprocess.run([hey, "-z", f"{DURATION_S}s", "-c", str(CONNECTIONS), URL + BURN],
                       capture_output=True, text=True, timeout=DURATION_S + 60, check=False)
    rps = next((float(line.split()[1]) for line in r.stdout.splitlines() if "Requests/sec" in line), None)
    return {"loadgen": ours, "hey": {"throughput_rps": round(rps, 1) if rps else None},
            "ratio_loadgen_over_hey": round(ours["throughput_rps"] / rps, 2) if rps else None}


JOB_WORKERS = (1, 2, 4)
JOB_SHOPPERS = 12
JOB_ORDERS_EACH = 5
JOB_DONE_WITHIN_S = 180
SIGN_UPS_AT_ONCE = 3


def _shopper(name):
    """A new user's client, logged in."""
    c = client.Client()
    creds = {"username": name, "password": "bench password " + name}
    for path in ("/register", "/login"):
        r = c.post(path, json=creds)
        if r.status_code not in (200, 201):
            raise RuntimeError(f"{path} for {name}: {r.status_code} {r.text[:200]}")
    return c


def _orders_of(shopper, count):
    """Place COUNT orders (one product each) as SHOPPER, as fast as the site answers; return their ids."""
    ids = []
    for _ in range(count):
        shopper.post("/cart/items", json={"product_id": 3, "qty": 1}).raise_for_status()
        r = shopper.post("/orders", json=None, headers={"Content-Type": "application/json"})
        r.raise_for_status()
        ids.append(r.json()["order_id"])
    return ids


def _job_figures(order_ids):
    """Wait (bounded) until the jobs of ORDER_IDS are done; return their latency and throughput."""
    ids = ",".join(map(str, order_ids))
    [writer] = topology.writers()

    def done():
        left = int(dbnodes.value(writer, f"SELECT COUNT(*) FROM lab.jobs WHERE order_id IN ({ids})"
                                         " AND state <> 'done'"))
        return left == 0, f"{left} jobs left"
    progress.wait_until(done, JOB_DONE_WITHIN_S, interval_s=0.25,
                        describe=lambda left: progress.step(f"job queue: {left}"))
    rows = dbnodes.query(writer, "SELECT TIMESTAMPDIFF(MICROSECOND, created_at, finished_at) / 1e6 AS s,"
                                 " UNIX_TIMESTAMP(created_at) AS c, UNIX_TIMESTAMP(finished_at) AS f,"
                                 f" attempts FROM lab.jobs WHERE order_id IN ({ids})")
    latency = loadgen.percentiles([float(r["s"]) for r in rows])
    span = max(float(r["f"]) for r in rows) - min(float(r["c"]) for r in rows)
    return {"jobs": len(rows), "p50_ms": latency["p50_ms"], "p99_ms": latency["p99_ms"],
            "jobs_per_s": round(len(rows) / max(span, 1e-3), 1), "retried": sum(int(r["attempts"]) > 1 for r in rows)}


def job_queue():
    """A burst of orders (JOB_SHOPPERS x JOB_ORDERS_EACH) with 1, 2 and 4 workers: invoice latency and jobs/s."""
    out = {"orders": JOB_SHOPPERS * JOB_ORDERS_EACH, "shoppers": JOB_SHOPPERS}
    try:
        for n in JOB_WORKERS:
            operations.scale_workers(n)
            progress.step(f"job queue: {out['orders']} orders from {JOB_SHOPPERS} shoppers, {n} worker(s)")
            tag = f"{time.time_ns() % 10**10:x}"
            # Signed up a few at a time: password hashes take turns on the web nodes (README,
            # "Troubleshooting"), and the burst under test is the orders', not the sign-ups'.
            with concurrent.futures.ThreadPoolExecutor(SIGN_UPS_AT_ONCE) as pool:
                shoppers = list(pool.map(_shopper, [f"jb{tag}{i}" for i in range(JOB_SHOPPERS)]))
            with concurrent.futures.ThreadPoolExecutor(JOB_SHOPPERS) as pool:
                ids = [i for batch in pool.map(lambda c: _orders_of(c, JOB_ORDERS_EACH), shoppers) for i in batch]
            out[str(n)] = _job_figures(ids)
    finally:
        operations.scale_workers(topology.STANDARD_WORKERS)
    return out


STEP_POLICY = autoscale.Policy(min_nodes=1, max_nodes=4)
STEP_LIGHT = 0.3    # the load before and after the step, as a share of one node's saturation throughput
STEP_FACTOR = 2.0   # the step: twice what one node serves
STEP_S = (10, 60, 50)   # light, step, light again (the scale-in waits CALM_S, then drains)
SETTLE_S = 10           # after the last scale-out, before "after"
QUEUE_TIMEOUT_MS = 4500  # a failure this slow waited out HAProxy's queue (5 s) or the client's timeout (5 s)


def _windows(phases, events):
    """Split the requests of PHASES ([(started_at, loadgen result)]) into before/during/after the scale-outs.

    During: from the step's start to the last scale-out's end; after: from
    SETTLE_S after that (the queue built up meanwhile is worked off) to the
    step's end; in a scale event: from a decision to 2 s after its nodes serve.
    """
    (_, light), (step_at, step), (after_at, after) = phases
    outs = [e for e in events if e.get("kind") == "out"]
    ends = [e["at"] for e in events if e.get("event") == "scaled" and e["at"] < after_at]
    settled = max(ends, default=after_at)
    spans = [(d["at"], next((e for e in ends if e >= d["at"]), d["at"]) + 2) for d in events
             if d.get("kind") in ("out", "in")]
    req = [(at + due, ms, ok) for at, r in phases for due, ms, ok in r["timeline"]]
    during = [x for x in req if step_at <= x[0] < settled]
    steady = [x for x in req if settled + SETTLE_S <= x[0] < after_at]
    p99 = lambda rows: loadgen.percentiles([ms / 1000 for _, ms, ok in rows if ok]).get("p99_ms")  # noqa: E731
    return {"p99_ms_before": light.get("p99_ms"), "p99_ms_during": p99(during), "p99_ms_after": p99(steady),
            "failed_before": light["errors"], "failed_during": sum(not ok for _, _, ok in during),
            "failed_after": sum(not ok for t, _, ok in req if t >= settled),
            "failed_in_scale_events": sum(not ok for t, _, ok in req if any(a <= t < b for a, b in spans)),
            # A failure after waiting out HAProxy's queue (`timeout queue` 5 s, its 503) is capacity
            # still short; a quick one (a reset, a 502) would be the scale action's own doing.
            "quick_failures_in_scale_events": sum(not ok and ms < QUEUE_TIMEOUT_MS for t, ms, ok in req
                                                  if any(a <= t < b for a, b in spans)),
            "failed_at_s": [round(t - step_at, 1) for t, _, ok in req if not ok][:20],
            "first_decision_s": round(outs[0]["at"] - step_at, 1) if outs else None,
            "first_node_serving_s": round(ends[0] - step_at, 1) if ends else None,
            "settled_s": round(settled - step_at, 1) if ends else None}


def autoscaling():
    """A step load on /burn (light, twice one node's capacity, light) with the autoscaler sizing the tier."""
    operations.scale(STEP_POLICY.min_nodes)
    serve_only(topology.WEB_NODES[:STEP_POLICY.min_nodes])
    progress.step(f"autoscaler: one node's saturation on {BURN}")
    capacity = _load(URL + BURN, closed=True, connections=CONNECTIONS, duration=5)["throughput_rps"]
    light, heavy = max(2.0, round(STEP_LIGHT * capacity)), round(STEP_FACTOR * capacity)
    phases, since = [], time.time()
    marks_since = datetime.datetime.now(datetime.timezone.utc)
    autoscale.forget_target()
    try:
        with autoscale.controllers(STEP_POLICY, count=1):
            for seconds, rate, what in zip(STEP_S, (light, heavy, light), ("light", "the step", "light again")):
                progress.step(f"autoscaler: {what}, {rate} req/s for {seconds} s "
                              f"({autoscale.size_now()} web node(s))")
                phases.append((time.time(), _load(URL + BURN, rate=rate, duration=seconds, connections=64)))
            with contextlib.suppress(progress.Timeout):
                progress.wait_until(lambda: (autoscale.size_now() == STEP_POLICY.min_nodes, None), 60)
            back = next((e["at"] for e in autoscale.records(phases[2][0]) if e.get("event") == "scaled"
                         and e.get("to") == STEP_POLICY.min_nodes), None)
        events = autoscale.records(since)
        marks = spike.down_marks(marks_since)
    finally:
        operations.scale(topology.STANDARD_WEB_NODES)
    sizes = [e["to"] for e in events if e.get("event") == "scaled" and e["at"] < phases[2][0]]
    return {"capacity_rps": capacity, "light_rps": light, "step_rps": heavy, "seconds": list(STEP_S),
            "policy": dataclasses.asdict(STEP_POLICY), "most_nodes": max(sizes, default=STEP_POLICY.min_nodes),
            **_windows(phases, events),
            "back_to_min_s": round(back - phases[2][0], 1) if back else None,
            "down_marks": len(marks), "first_down_marks": marks[:5],
            "decisions": [{k: e.get(k) for k in ("at", "kind", "event", "size", "to", "reason")} for e in events
                          if e.get("kind") or e.get("event") in ("scaled", "scale failed")]}


def lag_figures():
    """Replication lag per link at idle: p50/p99/max over 100 readings."""
    progress.step("replication lag at idle: 100 readings of every link")
    out = {}
    for name, values in lag.sample(100).items():
        got = [ms / 1000 for ms, _ in values if ms is not None]
        out[name] = {"n": len(got), **loadgen.percentiles(got)}
    return out


def vip_moves(since, until):
    """Return how many times a node of an LB pair took its VIP between SINCE and UNTIL (UTC datetimes)."""
    moves = 0
    for c in containers.find(role="lb") + containers.find(role="dblb"):
        log = c.logs(since=since, until=until).decode("utf-8", "replace")
        moves += log.count("Entering MASTER STATE")
    return moves


def failover_timeline():
    """Latency over time while the web VIP holder is killed once (for the plot)."""
    progress.step("failover timeline: 50 req/s for 20 s, the web VIP holder killed at 6 s")
    _, [holder] = topology.vip_holders("lb")
    started = time.monotonic()
    nz = Nemesis(log=lambda _: None)
    killer = threading.Timer(6, lambda: nz.kill(holder))
    killer.start()
    try:
        r = _load(URL + "/healthz", rate=50, duration=20, connections=32, timeout=2)
    finally:
        killer.join()
        nz.heal_all()
    return {"killed": holder, "kill_at_s": 6, "took_s": round(time.monotonic() - started),
            "timeline": r["timeline"], **_summary(r)}


def machine():
    """Describe the machine the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
    info = containers.client().info()
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(info["MemTotal"] / 2**30, 1),
            "kernel": platform.release(), "docker": info.get("ServerVersion"), "storage_driver": info.get("Driver"),
            "web_node_cpus": _cpus("web1")}


def _load_phases():
    """Every measurement under load; return their results (the web tier back to three nodes after)."""
    results = {}
    operations.scale(max(NODES))
    try:
        for name, measure in (("horizontal", horizontal), ("vertical", vertical), ("db_bound", db_bound),
                              ("read_mix", read_mix), ("lb_cost", lb_cost), ("cross_check", cross_check)):
            results[name] = measure()
    finally:
        serve_only([f"web{i}" for i in NODES])
        operations.scale(3)
    progress.step("calm under load: 32 cookie-less visitors on GET / for 20 s")
    results["calm_under_load"] = spike.run(clients=32, seconds=20)
    return results


def run(runs=5):
    """Run every measurement; write the JSON, the Markdown table and the plots under reports/bench/."""
    started = time.monotonic()
    results = {"machine": machine(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "load_generator": "scripts/labctl/loadgen.py (open loop, latency from the scheduled send time)"}
    results["idle_cpu"] = idle_cpu()
    load_from = datetime.datetime.now(datetime.timezone.utc)
    with haproxy.rate_limit_lifted():
        results.update(_load_phases())
        results["spurious_vip_moves"] = vip_moves(load_from, datetime.datetime.now(datetime.timezone.utc))
        results["job_queue"] = job_queue()
        results["autoscaler"] = autoscaling()
        results["lag"] = lag_figures()
        results["failover"] = blackout.measure(["web_vip", "web_node", "db_vip", "active_master"], runs)
        timeline = failover_timeline()
    results["duration_s"] = round(time.monotonic() - started)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    benchreport.write(results, timeline)
    progress.ok(f"bench done in {results['duration_s']} s: {OUT}/bench.md")
    return results
