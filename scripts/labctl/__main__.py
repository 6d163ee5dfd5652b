"""Usage: python -m labctl {up,down,clean,status,build,logs} [...] (run by the Makefile)."""
import argparse
import sys

from . import build, compose, lifecycle, status


def main(argv=None):
    """Parse the command line and run one labctl command."""
    parser = argparse.ArgumentParser(prog="labctl", description="Drive the scalability lab.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="build every image (makes the Debian base if needed)")
    sub.add_parser("up", help="build, start, wait for health and replication, show status")
    sub.add_parser("down", help="stop and remove containers, keep data")
    sub.add_parser("clean", help="remove containers, data volumes and generated secrets")
    sub.add_parser("status", help="nodes and health, VIP holders, replication links")
    logs = sub.add_parser("logs", help="follow the logs of every node, or of one")
    logs.add_argument("node", nargs="?", help="a lab node, e.g. web1 or master2")
    logs.add_argument("--no-follow", action="store_true", help="print and exit")
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
    elif args.cmd == "logs":
        try:
            follow = [] if args.no_follow else ["-f"]
            compose.run("logs", *follow, "--tail=200", *([args.node] if args.node else []))
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
