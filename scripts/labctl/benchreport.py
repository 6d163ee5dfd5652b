"""Render `make bench` results: bench.md and the plots, under reports/bench/ only.

README's Results section shows one committed run: copy bench.md's table
there by hand (a bench run never edits tracked files).
"""
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

from . import settings  # noqa: E402

OUT = settings.ROOT / "reports" / "bench"


def _row(what, figure):
    return f"| {what} | {figure} |"


def _scaling_rows(r):
    h, v = r["horizontal"], r["vertical"]
    rows = []
    for n in ("1", "2", "3", "4"):
        x = h[n]
        rows.append(_row(f"horizontal, /burn, {n} web node(s) of {r['machine']['web_node_cpus']} CPU",
                         f"{x['saturation']['throughput_rps']} req/s max (efficiency {h['efficiency'][n]}); "
                         f"at {x['offered_rps']} req/s p99 {x['at_offered']['p99_ms']} ms"))
    stop = h["stops_scaling_at"]
    rows.append(_row("horizontal: where scaling stops",
                     f"efficiency under 0.8 at {stop} nodes; host CPUs {int(h['host_cpu_busy'] * 100)} % busy "
                     "at 4 nodes" if stop else f"efficiency ≥ 0.8 up to 4 nodes; host CPUs "
                     f"{int(h['host_cpu_busy'] * 100)} % busy at 4 nodes"))
    for c in ("0.25", "0.5", "1.0"):
        rows.append(_row(f"vertical, /burn, one web node of {c} CPU",
                         f"{v[c]['throughput_rps']} req/s max ({v['speedup'][c]}×), p99 {v[c]['p99_ms']} ms"))
    d = r["db_bound"]
    for n in ("1", "2", "3", "4"):
        rows.append(_row(f"DB-bound, GET / (a session write), {n} web node(s)",
                         f"{d[n]['saturation']['throughput_rps']} req/s (efficiency {d['efficiency'][n]}); "
                         f"the writer ({d[n]['writer']}) commits {d[n]['writer_commits_per_s']}/s, "
                         f"{d[n]['writer_fsyncs_per_s']} fsyncs/s, semi-sync wait {d[n]['semi_sync_wait_us']} µs"))
    return rows


def _other_rows(r):
    m, lb, x, u = r["read_mix"], r["lb_cost"], r["cross_check"], r["calm_under_load"]
    rows = [_row(f"read mix (product pages, 4 nodes): {name.replace('_', ' ')}",
                 f"{m[name]['throughput_rps']} req/s, p99 {m[name]['p99_ms']} ms"
                 + (f" ({m['lift_over_master_only'][name]}× master only)" if name in m["lift_over_master_only"] else ""))
            for name in ("cache_and_replica", "replica_no_cache", "master_only")]
    rows.append(_row("LB cost: web1 alone through gateway + HAProxy vs straight",
                     f"{lb['via_gateway_and_lb']['saturation']['throughput_rps']} vs "
                     f"{lb['direct_to_web1']['saturation']['throughput_rps']} req/s "
                     f"({lb['throughput_loss_via_lb'] * 100:.1f} % lost); p50 +{lb['p50_added_ms']} ms at 20 req/s"))
    hey = x["hey"]["throughput_rps"] if x.get("hey") else None
    rows.append(_row("cross-check on /burn (4 nodes, 32 connections): loadgen vs hey",
                     f"{x['loadgen']['throughput_rps']} vs {hey} req/s ({x.get('ratio_loadgen_over_hey')}×)"
                     if hey else x.get("note", "hey not run")))
    rows.append(_row(f"load spike: {u['clients']} cookie-less visitors on GET / for {u['seconds']} s",
                     f"{u['answers']} answers ({u['rps']}/s), {u['errors_5xx']} 5xx, {u['down_marks']} servers "
                     f"marked down, writer {'/'.join(u['writer_before'])} → {'/'.join(u['writer_after'])}"))
    rows.append(_row("VIP moves nobody asked for, during all the load above", str(r["spurious_vip_moves"])))
    if "idle_cpu" in r:
        i = r["idle_cpu"]
        rows.append(_row(f"the idle lab ({i['containers']} containers), host CPUs busy over {i['seconds']} s",
                         f"{i['busy'] * 100:.0f} %"))
    if "job_queue" in r:
        j = r["job_queue"]
        for n in ("1", "2", "4"):
            f = j[n]
            rows.append(_row(f"job queue: a burst of {j['orders']} orders ({j['shoppers']} shoppers), {n} worker(s)",
                             f"invoice made p50 {f['p50_ms'] / 1000:.1f} s, p99 {f['p99_ms'] / 1000:.1f} s after "
                             f"the checkout; {f['jobs_per_s']} jobs/s ({f['retried']} retried)"))
    if "autoscaler" in r:
        rows.extend(autoscaler_rows(r["autoscaler"]))
    for link, f in r["lag"].items():
        rows.append(_row(f"replication lag at idle, {link} ({f['n']} readings)",
                         f"p50 {f.get('p50_ms')} ms, p99 {f.get('p99_ms')} ms, max {f.get('max_ms')} ms"))
    for name, f in r["failover"].items():
        rows.append(_row(f"failover blackout, {name.replace('_', ' ')} ({f['runs']} runs)",
                         f"median {f['median_s'] * 1000:.0f} ms, max {f['max_s'] * 1000:.0f} ms"))
    return rows


def autoscaler_rows(a):
    """The step load's rows: how fast the autoscaler followed, what users saw, what it cost."""
    p = a["policy"]
    what = (f"autoscaler (MIN {p['min_nodes']}, MAX {p['max_nodes']}, target {p['target']:.0%} busy): "
            f"/burn {a['light_rps']} → {a['step_rps']} req/s (one node serves {a['capacity_rps']}) for "
            f"{a['seconds'][1]} s")
    return [_row(what + ", reaction",
                 f"first decision after {a['first_decision_s']} s, first new node serving after "
                 f"{a['first_node_serving_s']} s, settled at {a['most_nodes']} nodes after {a['settled_s']} s"),
            _row(what + ", p99 before / while scaling out / from 10 s after",
                 f"{a['p99_ms_before']} / {a['p99_ms_during']} / {a['p99_ms_after']} ms"),
            _row(what + ", failed requests",
                 f"{a['failed_in_scale_events']} in scale events, {a['quick_failures_in_scale_events']} of them quick "
                 f"(not a 5 s wait in the queue); {a['failed_before']} before, "
                 f"{a['failed_during']} while scaling out, {a['failed_after']} after it (the scale-in included); "
                 f"{a['down_marks']} servers marked down"),
            _row(what + ", scale-in", f"back to {p['min_nodes']} node(s) {a['back_to_min_s']} s after the step ended"
                 if a["back_to_min_s"] is not None else "not back to MIN within the bench's wait")]


def table(r):
    """Return the results as Markdown (the table the README and the closing notes show)."""
    m = r["machine"]
    head = [f"Measured {r['measured_at']} on {m['cpus']} CPUs ({m['cpu_model'] or 'unknown model'}), "
            f"{m['memory_gib']} GiB, Docker {m['docker']} ({m['storage_driver']}), kernel {m['kernel']}; "
            f"load from the host, which shares those CPUs. `make bench` took {r['duration_s']} s.", "",
            "| measurement | figure |", "|---|---|"]
    return "\n".join(head + _scaling_rows(r) + _other_rows(r))


def _scaling_plot(r):
    h, v = r["horizontal"], r["vertical"]
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    web_cpus = r["machine"]["web_node_cpus"]
    cpus_h = [int(n) * web_cpus for n in ("1", "2", "3", "4")]
    ax.plot(cpus_h, [h[n]["saturation"]["throughput_rps"] for n in ("1", "2", "3", "4")], marker="o",
            label="horizontal: 1-4 nodes of 0.25 CPU")
    ax.plot([float(c) for c in ("0.25", "0.5", "1.0")], [v[c]["throughput_rps"] for c in ("0.25", "0.5", "1.0")],
            marker="s", label="vertical: one node of 0.25, 0.5, 1 CPU")
    one = h["1"]["saturation"]["throughput_rps"]
    ax.plot(cpus_h, [one * c / web_cpus for c in cpus_h], linestyle=":", color="grey", label="linear")
    ax.set_xlabel("web tier CPUs")
    ax.set_ylabel("max throughput on /burn (req/s)")
    ax.set_ylim(bottom=0)
    ax.set_title("scaling out vs scaling up")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "scaling.png")
    plt.close(fig)


def _timeline_plot(timeline):
    fig, ax = plt.subplots(figsize=(10, 3.5), dpi=100)
    ok = [(t, ms) for t, ms, good in timeline["timeline"] if good]
    bad = [(t, ms) for t, ms, good in timeline["timeline"] if not good]
    ax.scatter([t for t, _ in ok], [ms for _, ms in ok], s=5, label="ok")
    if bad:
        ax.scatter([t for t, _ in bad], [ms for _, ms in bad], s=14, marker="x", color="red", label="failed")
    ax.axvline(timeline["kill_at_s"], color="grey", linestyle="--", label=f"kill {timeline['killed']}")
    ax.set_yscale("log")
    ax.set_xlabel("seconds")
    ax.set_ylabel("latency from scheduled send (ms)")
    ax.set_title("web VIP failover under 50 req/s (open loop)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "failover_timeline.png")
    plt.close(fig)


def write(results, timeline):
    """Write bench.md and the plots under reports/bench/."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench.md").write_text("# make bench\n\n" + table(results) + "\n\n![scaling](scaling.png)\n"
                                  "![failover](failover_timeline.png)\n", encoding="utf-8")
    _scaling_plot(results)
    _timeline_plot(timeline)
