"""The db LBs' decider (haproxy/bin/db-decider), seen from the host through the Docker API."""
import json

from . import containers, haproxy, topology


def holder():
    """Return the db LB that holds the db VIP (the one whose decider acts), or None."""
    _, holders = topology.vip_holders("dblb")
    return holders[0] if len(holders) == 1 else None


def view(node):
    """Return db LB NODE's published view (its decision, route, the masters it sees), or {} if none."""
    code, out = containers.sh(containers.get(node), ["db-decider", "status"])
    try:
        return json.loads(out) if code == 0 else {}
    except ValueError:
        return {}


def routed(node):
    """Return the masters db LB NODE's write port sends traffic to (not in maintenance)."""
    return sorted(name for name, row in haproxy.servers(node, "sources").items()
                  if not row["status"].startswith("MAINT"))


def switchover(target, force=False):
    """Ask the deciding db LB to move writes to TARGET; return (ok, message)."""
    node = holder()
    if node is None:
        return False, "no db LB holds the db VIP (make status)"
    cmd = ["db-decider", "switchover", target] + (["--force"] if force else [])
    code, out = containers.sh(containers.get(node), cmd)
    try:
        answer = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return False, f"{node}: {out.strip()}"
    return code == 0 and answer.get("ok", False), answer.get("message", "")
