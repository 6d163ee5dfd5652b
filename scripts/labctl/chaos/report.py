"""The chaos report: reports/chaos/report.json, report.md, and a timeline PNG per scenario."""
import collections
import dataclasses
import json
import math
import time

import matplotlib

matplotlib.use("Agg")  # no display: write files only
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

from labctl import containers, settings  # noqa: E402

REPORT_DIR = settings.ROOT / "reports" / "chaos"
BUDGET_LABELS = {"failed_requests": "≤ {} failed", "failure_span_s": "span ≤ {} s",
                 "longest_outage_s": "each outage ≤ {} s", "recovery_s": "recovery ≤ {} s"}


def budget_label(budget):
    """A budget as README and the report state it: "span ≤ 3.0 s", "≤ 0 failed"."""
    return ", ".join(BUDGET_LABELS[k].format(v) for k, v in (budget or {}).items()) or "-"


def scenario_entry(name, description, verdict, fault_start, fault_end, plot, history):
    """Return the report's record of one scenario."""
    c = verdict.counts
    failed = [n for n, chk in verdict.checks.items() if not chk["ok"]]
    return {
        "name": name,
        "description": description,
        "passed": verdict.valid,
        "failed_check": failed[0] if failed else None,
        "first_error": verdict.checks[failed[0]]["first_error"] if failed else None,
        "failed_requests": c["failed_requests"],
        "failure_span_s": c["failure_span_s"],
        "longest_outage_s": c["longest_outage_s"],
        "budget": verdict.checks["within_availability_budget"]["budget"],
        "indeterminate_requests": c["indeterminate"],
        "operations": c["operations"],
        "indeterminate_share": round(c["indeterminate"] / c["operations"], 4) if c["operations"] else 0.0,
        # How often the observer read each DB node (chaos.monitor): what the safety checks stand on.
        "samples": verdict.checks.get("every_node_sampled", {}).get("counts"),
        # How stale a product view was at worst (chaos.checker.catalogue_reads_fresh), and its bound.
        "freshness": {k: verdict.checks.get("catalogue_reads_fresh", {}).get(k)
                      for k in ("judged", "max_stale_s", "bound")},
        "recovery_s": None if math.isinf(c["recovery_s"]) else c["recovery_s"],
        "recovery_by_kind_s": {k: (None if math.isinf(v) else v) for k, v in c["recovery_by_kind_s"].items()},
        "acknowledged_writes": c["acknowledged_writes"],
        "acknowledged_orders": c["acknowledged_orders"],
        "lost_writes": c["lost_writes"],
        "duplicate_writes": c["duplicate_writes"],
        "fault_window_s": [round(fault_start, 3), round(fault_end, 3)],
        "checks": verdict.checks,
        "plot": plot,
        "history": history,
    }


def error_entry(name, description, budget, error):
    """Return the report's record of a scenario that could not be run to its verdict (it failed)."""
    return {"name": name, "description": description, "passed": False, "failed_check": "the scenario itself",
            "first_error": error, "failed_requests": None, "failure_span_s": None, "longest_outage_s": None,
            "budget": budget,
            "indeterminate_requests": None, "operations": 0, "indeterminate_share": None, "samples": None,
            "recovery_s": None, "recovery_by_kind_s": {}, "acknowledged_writes": 0, "acknowledged_orders": 0,
            "lost_writes": 0, "duplicate_writes": 0, "fault_window_s": None, "checks": {}, "plot": None,
            "history": None}


def save_history(name, history):
    """Write the scenario's history, one operation per line (for digging into a failure)."""
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    path = REPORT_DIR / f"{name}.history.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for op in sorted(history, key=lambda o: o.start):
            f.write(json.dumps(dataclasses.asdict(op), default=str) + "\n")
    return path.name


def _brief(text):
    """One log line, short: etcd's JSON lines become their message and error."""
    try:
        entry = json.loads(text)
    except ValueError:
        return text
    return " ".join(str(entry[k]) for k in ("msg", "error", "remote-peer-id") if k in entry)


def save_ha_log(name, since):
    """Write what the write path did during the scenario: every db-ha line of the database nodes and
    every etcd warning since SINCE (a UTC datetime), merged by time; return (its file name, its lines).
    """
    lines = []
    for role, keep in (("db-source", "db-ha "), ("db-replica", "db-ha "), ("etcd", "")):
        for c in containers.find(role=role, all=True):
            log = c.logs(since=since, timestamps=True).decode("utf-8", "replace")
            node = containers.node_of(c)
            lines += [f"{line[:26]} {node:<8} {_brief(line[31:])}" for line in log.splitlines() if keep in line]
    lines.sort()
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    path = REPORT_DIR / f"{name}.ha.log"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path.name, lines


def failures_summary(history, last=8):
    """Return the failed operations as text: how many of each kind and answer, and the LAST few in time."""
    failed = sorted((op for op in history if op.outcome != "ok"), key=lambda o: o.start)
    kinds = collections.Counter((op.kind, op.outcome, op.status, (op.error or "")[:80]) for op in failed)
    out = [f"  {n:4d} x {kind} {outcome} {status} {error}" for (kind, outcome, status, error), n in kinds.most_common()]
    out += [f"  t={op.start:7.3f}-{op.end:7.3f} {op.kind} {op.outcome} {op.status} via {op.served_by} {op.error[:80]}"
            for op in failed[-last:]]
    return "\n".join(out) or "  none"


def plot(name, history, fault_start, fault_end):
    """Draw latency over time, coloured by web node, failures in red, the fault window shaded."""
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    path = REPORT_DIR / f"{name}.png"
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    ax.axvspan(fault_start, fault_end, color="#f4cccc", alpha=0.6, label="fault")
    ok = [op for op in history if op.outcome == "ok"]
    for node in sorted({op.served_by or "?" for op in ok}):
        pts = [op for op in ok if (op.served_by or "?") == node]
        ax.scatter([op.start for op in pts], [max(op.latency_s * 1000, 0.1) for op in pts],
                   s=6, label=node)
    for outcome, marker, colour in (("fail", "x", "red"), ("indeterminate", "^", "darkorange")):
        pts = [op for op in history if op.outcome == outcome]
        if pts:
            ax.scatter([op.start for op in pts], [max(op.latency_s * 1000, 0.1) for op in pts],
                       s=18, marker=marker, color=colour, label=outcome)
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the workload started")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"chaos: {name}")
    ax.legend(loc="upper right", fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path.name


def write(entries):
    """Write report.json and report.md for ENTRIES (one per scenario run)."""
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    summary = {
        "scenarios": len(entries),
        "passed": sum(e["passed"] for e in entries),
        "failed": [e["name"] for e in entries if not e["passed"]],
        "acknowledged_writes": sum(e["acknowledged_writes"] or 0 for e in entries),
        "lost_writes": sum(e["lost_writes"] or 0 for e in entries),
        "duplicate_writes": sum(e["duplicate_writes"] or 0 for e in entries),
        "failed_requests": sum(e["failed_requests"] or 0 for e in entries),
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (REPORT_DIR / "report.json").write_text(
        json.dumps({"scenarios": entries, "summary": summary}, indent=2) + "\n", encoding="utf-8")
    lines = ["# Chaos report", "",
             f"{summary['passed']}/{summary['scenarios']} scenarios passed; "
             f"{summary['acknowledged_writes']} acknowledged writes, {summary['lost_writes']} lost, "
             f"{summary['duplicate_writes']} duplicated. Generated {summary['generated_at']}.", "",
             "| scenario | passed | budget | failed requests | failure span (s) | longest outage (s) "
             "| recovery (s) | acked writes | lost | duplicated | first error |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        err = (f"{e['failed_check']}: {e['first_error']}" if not e["passed"] else "").replace("|", "\\|")
        budget = budget_label(e["budget"])
        name = f"[{e['name']}]({e['plot']})" if e["plot"] else e["name"]
        lines.append(f"| {name} | {'yes' if e['passed'] else '**NO**'} | {budget} | "
                     f"{e['failed_requests']} | {e['failure_span_s']} | {e['longest_outage_s']} | {e['recovery_s']} | "
                     f"{e['acknowledged_writes']} | {e['lost_writes']} | {e['duplicate_writes']} | {err} |")
    lines += ["", "Budgets and figures cover the fault and its recovery (up to the end of the heal); "
              "the planned failback to master1 that follows is judged by the safety checks. Failed "
              "requests are those not served (no answer, a 5xx, a 429, an unknown outcome); the failure "
              "span runs from the first failed request after the fault to the end of the last; an outage is "
              "a run of failed requests less than 1 s apart (a fault that moves a VIP at the cut and again "
              "at the heal has two).",
              "", "Each scenario's timeline (latency per request, coloured by web node; red crosses "
              "failed, orange triangles unknown outcome; the fault window shaded) is the PNG of "
              "the same name in this folder.", ""]
    (REPORT_DIR / "report.md").write_text("\n".join(lines), encoding="utf-8")
    return summary
