"""Render `make bench` results: bench.md, plots, and the README's Results section."""
import re

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

from . import progress, settings  # noqa: E402

OUT = settings.ROOT / "reports" / "bench"
README = settings.ROOT / "README.md"
MARK_START, MARK_END = "<!-- bench:start -->", "<!-- bench:end -->"


def table(r):
    """Return the results as Markdown (the table the README and the closing notes show)."""
    m = r["machine"]
    lines = [f"Measured {r['measured_at']} on {m['cpus']} CPUs ({m['cpu_model'] or 'unknown model'}), "
             f"{m['memory_gib']} GiB, Docker {m['docker']} ({m['storage_driver']}), kernel {m['kernel']}; "
             f"load from the host, which shares those CPUs. `make bench` took {r['duration_s']} s.", "",
             "| measurement | figure |", "|---|---|"]
    h = r["horizontal"]
    for route in h:
        for n in ("1", "3", "5"):
            x = h[route][n]
            lines.append(f"| {route} route, {n} web node(s) | {x['saturation']['throughput_rps']} req/s max; "
                         f"at {x['offered_rps']} req/s p50 {x['at_offered']['p50_ms']} ms, "
                         f"p99 {x['at_offered']['p99_ms']} ms |")
        lines.append(f"| {route} route, speedup 3 / 1 nodes, 5 / 1 nodes | "
                     f"{h[route]['speedup_3_vs_1']}×, {h[route]['speedup_5_vs_1']}× |")
    lb = r["lb_cost"]
    lines.append(f"| LB cost: p50 via gateway+HAProxy / direct to web1 (100 req/s) | "
                 f"{lb['p50_ratio_via_lb_over_direct']}× ({lb['via_gateway_and_lb']['at_100_rps']['p50_ms']} ms "
                 f"vs {lb['direct_to_web1']['at_100_rps']['p50_ms']} ms) |")
    lines.append(f"| LB cost: max throughput via LB / direct | {lb['throughput_ratio_via_lb_over_direct']}× |")
    c = r["cache"]
    lines.append(f"| cache: p50 of GET /products/1, miss / hit | {c['p50_ratio_miss_over_hit']}× "
                 f"({c['miss']['p50_ms']} ms vs {c['hit']['p50_ms']} ms) |")
    lines.append(f"| cache: DB SELECTs per read, miss vs hit | {c['miss']['db_selects_per_request']} vs "
                 f"{c['hit']['db_selects_per_request']} ({c['db_selects_saved_per_1000_reads']} saved per 1000 reads) |")
    rr = r["replica_reads"]
    lines.append(f"| SQL reads at 300/s: p50 read port (slave1) / write port (master) | "
                 f"{rr['p50_ratio_read_over_write']}× ({rr['read_port_3307']['p50_ms']} ms vs "
                 f"{rr['write_port_3306']['p50_ms']} ms) |")
    if "calm_under_load" in r:
        u = r["calm_under_load"]
        lines.append(f"| load spike: {u['clients']} cookie-less visitors on GET / for {u['seconds']} s | "
                     f"{u['answers']} answers ({u['rps']}/s), {u['errors_5xx']} 5xx, {u['down_marks']} servers "
                     f"marked down, writer {'/'.join(u['writer_before'])} → {'/'.join(u['writer_after'])} |")
    for name, f in r["failover"].items():
        lines.append(f"| failover blackout, {name.replace('_', ' ')} ({f['runs']} runs) | "
                     f"median {f['median_s'] * 1000:.0f} ms, max {f['max_s'] * 1000:.0f} ms |")
    return "\n".join(lines)


def _plots(r, timeline):
    fig, axes = plt.subplots(1, len(r["horizontal"]), figsize=(10, 3.5), dpi=100)
    for ax, (route, res) in zip(axes, r["horizontal"].items()):
        ns = ["1", "3", "5"]
        ax.plot([int(n) for n in ns], [res[n]["saturation"]["throughput_rps"] for n in ns], marker="o")
        ax.set_title(f"{route} route")
        ax.set_xlabel("web nodes")
        ax.set_ylabel("max throughput (req/s)")
        ax.set_xticks([1, 3, 5])
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(OUT / "throughput_vs_nodes.png")
    plt.close(fig)

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
    """Write bench.md and the plots, and replace the README's Results section."""
    OUT.mkdir(parents=True, exist_ok=True)
    md = table(results)
    (OUT / "bench.md").write_text("# make bench\n\n" + md + "\n\n![throughput](throughput_vs_nodes.png)\n"
                                  "![failover](failover_timeline.png)\n", encoding="utf-8")
    _plots(results, timeline)
    text = README.read_text(encoding="utf-8")
    if MARK_START in text and MARK_END in text:
        section = f"{MARK_START}\n{md}\n{MARK_END}"
        README.write_text(re.sub(re.escape(MARK_START) + ".*?" + re.escape(MARK_END), lambda _: section,
                                 text, flags=re.S), encoding="utf-8")
        progress.ok("updated README.md's Results section")
