"""Usage: python -m labctl {up,down,clean,status,build,scale,failback,promote,logs,lag,...} [...] (run by the Makefile)."""
import argparse
import sys

from pathlib import Path

from . import blackout, build, compose, lag, lifecycle, operations, status


def main(argv=None):
    """Parse the command line and run one labctl command."""
    parser = argparse.ArgumentParser(prog="labctl", description="Drive the scalability lab.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build every image (makes the Debian base if needed)")
    sub.add_parser("up", help="build, start, wait for health and replication, show status")
    sub.add_parser("down", help="stop and remove containers, keep data")
    sub.add_parser("clean", help="remove containers, data volumes and generated secrets")
    sub.add_parser("status", help="nodes and health, VIP holders, replication links")
    scale = sub.add_parser("scale", help="run N web nodes (1-8); removed nodes are drained first")
    scale.add_argument("n", type=int)
    sub.add_parser("failback", help="send writes back to master1 once it has caught up")
    promote = sub.add_parser("promote", help="move writes to a master (planned switchover)")
    promote.add_argument("node", help="master1 or master2")
    promote.add_argument("--force", action="store_true",
                         help="skip the checks that no acknowledged write is lost (data may be lost)")
    bench_cmd = sub.add_parser("bench", help="measure the lab against its alternatives (reports/bench/)")
    bench_cmd.add_argument("--runs", type=int, default=5, help="kills per failover measurement")
    fo = sub.add_parser("failover-times", help="measure blackouts: kill a node, time until service is back")
    fo.add_argument("--runs", type=int, default=5)
    fo.add_argument("--faults", default=",".join(blackout.FAULTS), help="comma-separated: " + ", ".join(blackout.FAULTS))
    fo.add_argument("--out", type=Path, help="also write the results as JSON here")
    logs = sub.add_parser("logs", help="follow the logs of every node, or of one")
    logs.add_argument("node", nargs="?", help="a lab node, e.g. web1 or master2")
    logs.add_argument("--no-follow", action="store_true", help="print and exit")
    lag_cmd = sub.add_parser("lag", help="replication lag per link, in ms, from heartbeats")
    lag_cmd.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lag_cmd.add_argument("--watch", action="store_true", help="refresh until interrupted (Ctrl-C)")
    lag_cmd.add_argument("--interval", type=float, default=None,
                         help="seconds between refreshes (watch: 1) or samples (sample: 0.1)")
    lag_cmd.add_argument("--sample", type=int, metavar="N",
                         help="read the lag N times and print p50/p99/max per link")
    lag_cmd.add_argument("--load", type=float, default=0, metavar="ROWS_PER_S",
                         help="with --sample: write this many rows/s on each master meanwhile")
    args = parser.parse_args(argv)

    if args.cmd == "build":
        build.all_images()
    elif args.cmd == "up":
        return 0 if lifecycle.up() else 1
    elif args.cmd == "down":
        lifecycle.down()
    elif args.cmd == "clean":
        lifecycle.clean()
    elif args.cmd == "status":
        return 0 if status.show() else 1
    elif args.cmd == "lag":
        if args.sample:
            return 0 if lag.show_sample(args.sample, args.interval or 0.1, args.load) else 1
        if args.watch:
            return 0 if lag.watch(args.json, args.interval or 1.0) else 1
        return 0 if lag.show(args.json) else 1
    elif args.cmd == "scale":
        operations.scale(args.n)
    elif args.cmd == "failback":
        operations.failback()
    elif args.cmd == "promote":
        operations.promote(args.node, args.force)
    elif args.cmd == "bench":
        from . import bench  # matplotlib and friends: only for this command
        bench.run(args.runs)
    elif args.cmd == "failover-times":
        blackout.show(args.faults.split(","), args.runs, args.out)
    elif args.cmd == "logs":
        try:
            follow = [] if args.no_follow else ["-f"]
            compose.run("logs", *follow, "--tail=200", *([args.node] if args.node else []))
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
