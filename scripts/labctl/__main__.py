"""Usage: python -m labctl {up,down,clean,status,build,scale,failback,promote,logs,lag,...} [...] (run by the Makefile)."""
import argparse
import sys
from pathlib import Path

from . import blackout, build, compose, lag, lifecycle, operations, status, topology


def _exit_code(ok):
    return 0 if ok else 1


def _lag(args):
    if args.sample:
        return lag.show_sample(args.sample, args.interval or 0.1, args.load)
    if args.watch:
        return lag.watch(args.json, args.interval or 1.0)
    return lag.show(args.json)


def _bench(args):
    from . import bench  # matplotlib and friends: only for this command
    bench.run(args.runs)


def _console(args):
    from . import console  # the console's server: only for this command
    return console.run(args.port or console.DEFAULT_PORT)


def _chaos(args):
    from .chaos import runner  # the workload, checker and report: only for this command
    return runner.cli(args.scenario, args.list)


def _autoscale(args):
    from . import autoscale
    d = autoscale.Policy()
    return autoscale.run(autoscale.Policy(min_nodes=d.min_nodes if args.min is None else args.min,
                                          max_nodes=d.max_nodes if args.max is None else args.max,
                                          target=d.target if args.target is None else args.target))


def _logs(args):
    try:
        compose.run("logs", *([] if args.no_follow else ["-f"]), "--tail=200", *([args.node] if args.node else []))
    except KeyboardInterrupt:
        pass


def _parser():
    parser = argparse.ArgumentParser(prog="labctl", description="Drive the scalability lab.")
    sub = parser.add_subparsers(dest="cmd", required=True)

    def command(name, func, help_text):
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        return p

    command("build", lambda a: build.all_images(), "build every image (makes the Debian base if needed)")
    command("up", lambda a: lifecycle.up(), "build, start, wait for health and replication, show status")
    command("down", lambda a: lifecycle.down(), "stop and remove containers, keep data")
    command("clean", lambda a: lifecycle.clean(), "remove containers, data volumes and generated secrets")
    status_cmd = command("status", lambda a: status.show(a.json),
                         "nodes and health, VIP holders, the writer, replication links")
    status_cmd.add_argument("--json", action="store_true", help="print JSON instead of a table")
    scale = command("scale", lambda a: operations.scale(a.n),
                    f"run N web nodes (1-{len(topology.WEB_NODES)}); removed nodes are drained first")
    scale.add_argument("n", type=int)
    scale_workers = command("scale-workers", lambda a: operations.scale_workers(a.n),
                            f"run N job workers (0-{len(topology.WORKERS)}); removed ones finish their job first")
    scale_workers.add_argument("n", type=int)
    command("failback", lambda a: operations.failback(),
            f"send writes back to {topology.USUAL_WRITER} once it has caught up")
    promote = command("promote", lambda a: operations.promote(a.node, a.force),
                      "move writes to a source (planned switchover)")
    promote.add_argument("node", choices=topology.SOURCES)
    promote.add_argument("--force", action="store_true",
                         help="skip the checks that no acknowledged write is lost (data may be lost)")
    rebuild = command("rebuild", lambda a: lifecycle.rebuild(a.node),
                      "re-seed a DB node from the writer (a quarantined node, or one whose data was lost)")
    rebuild.add_argument("node", choices=topology.DB_NODES)
    command("bench", _bench, "measure the lab against its alternatives (reports/bench/)").add_argument(
        "--runs", type=int, default=5, help="kills per failover measurement")
    fo = command("failover-times", lambda a: blackout.show(a.faults.split(","), a.runs, a.out),
                 "measure blackouts: kill a node, time until service is back")
    fo.add_argument("--runs", type=int, default=5)
    fo.add_argument("--faults", default=",".join(blackout.FAULTS),
                    help="comma-separated: " + ", ".join(blackout.FAULTS))
    fo.add_argument("--out", type=Path, help="also write the results as JSON here")
    console = command("console", _console, "the live diagram and fault buttons in a browser (127.0.0.1:8405)")
    console.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default 8405, or LAB_CONSOLE_PORT)")
    chaos = command("chaos", _chaos, "run the chaos scenarios (all, or those --scenario names); reports/chaos/")
    chaos.add_argument("--scenario", default="", help="names or parts of names, e.g. 'kill-slave or kill-gateway'")
    chaos.add_argument("--list", action="store_true", help="list the scenarios, their budgets and faults")
    autoscale = command("autoscale", _autoscale,
                        "scale the web tier with its load, between --min and --max nodes (Ctrl-C stops)")
    autoscale.add_argument("--min", type=int, default=None, help="fewest web nodes (default 2)")
    autoscale.add_argument("--max", type=int, default=None, help="most web nodes (default 6)")
    autoscale.add_argument("--target", type=float, default=None,
                           help="how busy the nodes should be, 0-1 (default 0.6)")
    logs = command("logs", _logs, "follow the logs of every node, or of one")
    logs.add_argument("node", nargs="?", help="a lab node, e.g. web1 or " + topology.SOURCES[1])
    logs.add_argument("--no-follow", action="store_true", help="print and exit")
    lag_cmd = command("lag", _lag, "replication lag per link, in ms, from heartbeats")
    lag_cmd.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lag_cmd.add_argument("--watch", action="store_true", help="refresh until interrupted (Ctrl-C)")
    lag_cmd.add_argument("--interval", type=float, default=None,
                         help="seconds between refreshes (watch: 1) or samples (sample: 0.1)")
    lag_cmd.add_argument("--sample", type=int, metavar="N",
                         help="read the lag N times and print p50/p99/max per link")
    lag_cmd.add_argument("--load", type=float, default=0, metavar="ROWS_PER_S",
                         help="with --sample: write this many rows/s on each source meanwhile")
    return parser


def main(argv=None):
    """Parse the command line and run one labctl command; a command returning False exits 1."""
    args = _parser().parse_args(argv)
    return _exit_code(args.func(args) is not False)


if __name__ == "__main__":
    sys.exit(main())
