"""`make status`: per node role and health, VIP holders, replication links."""
import docker

from . import containers, dbnodes, replication, settings


def vip_holders(role):
    """Return (vip, [nodes holding it]) for the LB pair of ROLE ('lb' or 'dblb')."""
    vip, holders = None, []
    for c in containers.find(role=role):
        vip = c.labels.get("lab.vip")
        try:
            code, out = containers.sh(c, ["ip", "-o", "-4", "addr", "show"])
        except docker.errors.APIError:  # stopped since it was listed: holds nothing
            continue
        if code == 0 and vip and f" {vip}/" in out:
            holders.append(containers.node_of(c))
    return vip, holders


def writers():
    """Return the masters that take writes (read_only off); normally exactly one."""
    out = []
    for node in ("master1", "master2"):
        try:
            if dbnodes.value(node, "SELECT @@global.read_only") == "0":
                out.append(node)
        except dbnodes.DbError:
            pass
    return out


def _decision():
    """Return what the deciding db LB says it is doing (and why writes fail, when they do)."""
    from . import decider  # decider needs this module's vip_holders
    node = decider.holder()
    if node is None:
        return "none (no single db VIP holder)"
    return f"{node}: {decider.view(node).get('decision') or 'no view yet'}"


def nodes():
    """Return [(node, role, health)] for every container of the lab, stopped ones too."""
    return [(containers.node_of(c), containers.role_of(c), containers.health(c))
            for c in containers.find(all=True)]


def show():
    """Print the lab's state; return True when everything is healthy and running."""
    good = True
    print(f"{'node':<12} {'role':<10} health")
    for node, role, health in nodes():
        good &= health == "healthy"
        print(f"{node:<12} {role:<10} {health}")
    print()
    for role, name in (("lb", "web VIP"), ("dblb", "db VIP")):
        vip, holders = vip_holders(role)
        good &= len(holders) == 1
        print(f"{name:<8} {vip or '-':<15} held by {', '.join(holders) or 'nobody'}")
    w = writers()
    good &= len(w) == 1
    print(f"{'writer':<8} {', '.join(w) or 'none: writes fail (503) until the db LBs promote a master'}")
    print(f"{'decider':<8} {_decision()}")
    print()
    print(f"{'link':<20} {'state':<11} {'io':<10} {'sql':<4} {'behind_s':<9} last error")
    for link in replication.links():
        good &= link.running
        print(f"{link.source + ' -> ' + link.replica:<20} {link.state:<11} {link.io_running:<10} "
              f"{link.sql_running:<4} {link.seconds_behind_master or '-':<9} {link.last_error[:60]}")
    print()
    print(f"site: http://127.0.0.1:{settings.HTTP_PORT}/ and https://127.0.0.1:{settings.HTTPS_PORT}/ "
          f"(lab CA: .secrets/tls/ca.crt)")
    return good
