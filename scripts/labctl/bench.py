"""`make bench`: the lectures' claims, measured side by side on this machine, in one run.

Every figure is a distribution or a ratio measured here and now:
  horizontal     throughput and latency with 1, 3 and 5 web nodes, on a
                 DB-heavy route and on a CPU-heavy one
  lb_cost        the same route through gateway + HAProxy vs straight to web1
  cache          product reads on a cache hit vs a forced miss, DB queries saved
  replica_reads  the read port (slave1) vs the write port (a master), same load
  calm_under_load  32 cookie-less visitors for 20 s: 5xx, servers marked down, writer moves
  failover       blackouts: web VIP, dead web node, dead active master (5 runs each)
Load comes from loadgen.py (open loop, no coordinated omission; see there).
Results: reports/bench/bench.json, bench.md, *.png, and README's Results section.
"""
import asyncio
import contextlib
import json
import os
import platform
import threading
import time

from . import (benchreport, blackout, containers, dbnodes, haproxy, lifecycle, loadgen, operations, progress,
               secrets, settings, spike, status)

OUT = settings.ROOT / "reports" / "bench"
URL = f"http://127.0.0.1:{settings.HTTP_PORT}"
# The routes: one that mostly waits on MariaDB (a session row upserted
# through the write path, fsync and semi-sync included), one that mostly
# burns CPU in the web node.
ROUTES = {"db_heavy": "/", "cpu_heavy": "/burn"}
DURATION_S = 8


def _load(url, **kw):
    kw.setdefault("duration", DURATION_S)
    return asyncio.run(loadgen.run(url, **kw))


def _summary(r):
    return {k: r[k] for k in ("throughput_rps", "ok", "errors", "p50_ms", "p99_ms", "max_ms") if k in r}


def _network(short):
    """Return the Docker name of the lab's network SHORT (compose prefixes it)."""
    nets = containers.client().networks.list(filters={"label": [
        f"com.docker.compose.project={settings.PROJECT}", f"com.docker.compose.network={short}"]})
    return nets[0].name


def sidecar(networks, argv, env=None, timeout_s=120):
    """Run ARGV in a throwaway web-image container on the lab NETWORKS; return its JSON output.

    This is how the bench reaches what the host cannot: a web node directly,
    or the db VIP. The container carries no lab labels, so no tool mistakes
    it for a node.
    """
    client = containers.client()
    c = client.containers.create(
        settings.image("web"), argv, entrypoint=[], environment=env or {}, working_dir="/bench",
        volumes={str(settings.ROOT / "scripts" / "labctl"): {"bind": "/bench", "mode": "ro"}},
        network=_network(networks[0]), labels={"lab.sidecar": "bench"}, healthcheck={"test": ["NONE"]})
    try:
        for n in networks[1:]:
            client.networks.get(_network(n)).connect(c)
        c.start()
        code = c.wait(timeout=timeout_s)["StatusCode"]
        out = c.logs(stdout=True, stderr=False).decode()
        if code != 0:
            raise RuntimeError(f"sidecar {argv} failed: {c.logs().decode()[-1000:]}")
        return json.loads(out.strip().splitlines()[-1])
    finally:
        c.remove(force=True)


def horizontal():
    """Throughput (closed loop) and latency at a fixed offered load (open loop) for 1, 3, 5 web nodes."""
    out = {route: {} for route in ROUTES}
    offered = {}
    for n in (1, 3, 5):
        operations.scale(n)
        time.sleep(2)
        for route, path in ROUTES.items():
            progress.step(f"horizontal: {n} web node(s), {route} ({path})")
            sat = _load(URL + path, closed=True, connections=32)
            # Latency at one offered load for every n: 60% of what 1 node sustains.
            offered.setdefault(route, max(5.0, round(0.6 * sat["throughput_rps"])))
            lat = _load(URL + path, rate=offered[route], connections=64)
            out[route][str(n)] = {"saturation": _summary(sat), "offered_rps": offered[route],
                                  "at_offered": _summary(lat)}
    operations.scale(3)
    for route in ROUTES:
        r = out[route]
        r["speedup_3_vs_1"] = round(r["3"]["saturation"]["throughput_rps"] / max(r["1"]["saturation"]["throughput_rps"], 1e-9), 2)
        r["speedup_5_vs_1"] = round(r["5"]["saturation"]["throughput_rps"] / max(r["1"]["saturation"]["throughput_rps"], 1e-9), 2)
    return out


def lb_cost():
    """The same route through gateway + HAProxy vs straight to web1, from one client container."""
    out = {}
    for name, url in (("via_gateway_and_lb", "http://gateway:8080/healthz"), ("direct_to_web1", "http://web1:8000/healthz")):
        progress.step(f"lb cost: {name}")
        sat = sidecar(["public", "web"], ["python3", "loadgen.py", url, "--closed", "--connections", "16",
                                          "--duration", str(DURATION_S), "--no-timeline"])
        lat = sidecar(["public", "web"], ["python3", "loadgen.py", url, "--rate", "100",
                                          "--duration", str(DURATION_S), "--no-timeline"])
        out[name] = {"saturation": _summary(sat), "at_100_rps": _summary(lat)}
    via, direct = out["via_gateway_and_lb"], out["direct_to_web1"]
    out["p50_ratio_via_lb_over_direct"] = round(via["at_100_rps"]["p50_ms"] / direct["at_100_rps"]["p50_ms"], 2)
    out["throughput_ratio_via_lb_over_direct"] = round(
        via["saturation"]["throughput_rps"] / direct["saturation"]["throughput_rps"], 2)
    return out


def _selects(node):
    return int(dbnodes.query(node, "SHOW GLOBAL STATUS LIKE 'Com_select'")[0]["Value"])


def cache():
    """GET /products/1 on a cache hit vs a forced miss (Cache-Control: no-cache), and DB queries per read."""
    _, [holder] = status.vip_holders("dblb")
    servers = haproxy.servers(holder, "replicas")
    reader = "slave1" if servers["slave1"]["status"].startswith("UP") else \
        next(n for n, s in servers.items() if s["status"].startswith("UP"))
    _load(URL + "/products/1", rate=20, duration=1)  # warm the cache
    out = {}
    for name, headers in (("hit", ()), ("miss", ("Cache-Control: no-cache",))):
        progress.step(f"cache: {name}")
        before = _selects(reader)
        r = _load(URL + "/products/1", rate=100, headers=headers)
        queries = _selects(reader) - before
        out[name] = {**_summary(r), "db_selects": queries,
                     "db_selects_per_request": round(queries / max(r["ok"], 1), 3)}
    out["p50_ratio_miss_over_hit"] = round(out["miss"]["p50_ms"] / out["hit"]["p50_ms"], 2)
    out["db_selects_saved_per_1000_reads"] = round(
        1000 * (out["miss"]["db_selects_per_request"] - out["hit"]["db_selects_per_request"]))
    out["read_node"] = reader
    return out


def replica_reads():
    """The same SQL read load on the read port (3307) and on the write port (3306)."""
    vip = containers.find(role="dblb")[0].labels["lab.vip"]
    env = {"DB_PASSWORD": secrets.read("mysql_app_password")}
    out = {}
    for name, port in (("read_port_3307", 3307), ("write_port_3306", 3306)):
        progress.step(f"replica reads: {name}")
        out[name] = sidecar(["app"], ["python3", "dbload.py", vip, str(port), "--rate", "300",
                                      "--duration", str(DURATION_S)], env=env)
    out["p50_ratio_read_over_write"] = round(out["read_port_3307"]["p50_ms"] / out["write_port_3306"]["p50_ms"], 2)
    return out


def failover_timeline():
    """Latency over time while the web VIP holder is killed once (for the plot)."""
    progress.step("failover timeline: 50 req/s for 20 s, the web VIP holder killed at 6 s")
    _, [holder] = status.vip_holders("lb")
    killer = threading.Timer(6, lambda: containers.get(holder).kill())
    killer.start()
    try:
        r = _load(URL + "/healthz", rate=50, duration=20, connections=32, timeout=2)
    finally:
        killer.join()
        lifecycle.heal()
    return {"killed": holder, "kill_at_s": 6, "timeline": r["timeline"], **_summary(r)}


def machine():
    """Describe the machine the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
    info = containers.client().info()
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(info["MemTotal"] / 2**30, 1),
            "kernel": platform.release(), "docker": info.get("ServerVersion"), "storage_driver": info.get("Driver")}


def run(runs=5):
    """Run every measurement; write the JSON, the Markdown table, the plots, README's Results."""
    started = time.monotonic()
    results = {"machine": machine(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "load_generator": "scripts/labctl/loadgen.py (open loop, latency from the scheduled send time)"}
    with haproxy.rate_limit_lifted():
        results["horizontal"] = horizontal()
        results["lb_cost"] = lb_cost()
        results["cache"] = cache()
        results["replica_reads"] = replica_reads()
        progress.step("calm under load: 32 cookie-less visitors on GET / for 20 s")
        results["calm_under_load"] = spike.run(clients=32, seconds=20)
        results["failover"] = blackout.measure(["web_vip", "web_node", "active_master"], runs)
        timeline = failover_timeline()
    results["duration_s"] = round(time.monotonic() - started)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    benchreport.write(results, timeline)
    progress.ok(f"bench done in {results['duration_s']} s: {OUT}/bench.md")
    return results
