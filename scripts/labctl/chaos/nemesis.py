"""The nemesis: named faults, each with its heal, for `make chaos`, `make bench` and failover-times.

Every fault is a Fault object whose heal() undoes it; Nemesis remembers
what it did so that heal_all() (called from a finaliser) undoes everything
whatever happened in between. All faults act through the Docker API:
  kill / start          SIGKILL a container; start it again
  pause / unpause       freeze a container (cgroup freezer): a gray failure
  freeze / thaw         SIGSTOP every process of a container but some (its
                        helpers hang, its server runs on): a grayer failure
  reset / rejoin        answer every packet between a node and some peers
                        with a TCP reset (their connections break, and
                        break again on every reconnect until healed)
  partition / rejoin    drop traffic between a node and some peers (iptables
                        in the node's network namespace, from a sidecar:
                        haproxy/bin/lab-net)
  one_way / rejoin      drop what a node sends to some peers, or what it
                        receives from them, not both
  lossy / rejoin        lose a share of the packets between a node and some
                        peers, at random (iptables' statistic match)
  fill_disk / free      fill the filesystem under a node's directory (a small
                        volume, as a disk that runs full)
  slow / fast           add latency to a node's network: netem where the
                        kernel has it, else a delay in the db LBs' read path
  restart_lab           `make down && make up`
"""
import ipaddress
import subprocess

import docker

from labctl import containers, haproxy, lifecycle, settings
from labctl.containers import addresses


def peer_addresses(peer):
    """The addresses of PEER: a lab node's (every network), or PEER itself if it is an address (a VIP)."""
    try:
        return [str(ipaddress.ip_address(peer))]
    except ValueError:
        return addresses(peer)


def sidecar(node, cmd):
    """Run CMD in NODE's network namespace with NET_ADMIN; return its output."""
    return containers.sidecar(cmd, node=node)


class Fault:
    """A fault that was injected; heal() undoes it (and may be called twice)."""

    def __init__(self, name, heal):
        self.name, self._heal, self.healed = name, heal, False

    def heal(self):
        """Undo the fault once."""
        if not self.healed:
            self._heal()
            self.healed = True


class Nemesis:
    """Injects faults and keeps their heals for heal_all()."""

    def __init__(self, log=print):
        self.faults, self.log = [], log
        self._whole_after = None   # the newest fault when the lab was last found whole

    def _record(self, name, heal):
        self.log(f"   nemesis: {name}")
        fault = Fault(name, heal)
        self.faults.append(fault)
        return fault

    def kill(self, node):
        """SIGKILL NODE; its heal starts it again."""
        containers.get(node).kill()
        return self._record(f"kill {node}", lambda: self._restore("start", node))

    def pause(self, node):
        """Freeze NODE (it keeps its connections but answers nothing)."""
        containers.get(node).pause()
        return self._record(f"pause {node}", lambda: self._restore("unpause", node))

    def _restore(self, verb, node):
        self.log(f"   nemesis: {verb} {node}")
        lifecycle.restore(containers.get(node))

    def freeze(self, node, keep=("mariadbd",)):
        """SIGSTOP every process in NODE's container except those named in KEEP; its heal sends SIGCONT."""
        container = containers.get(node)
        pids = [pid for pid, argv in containers.processes(container)
                if pid != 1 and argv[0].rsplit("/", 1)[-1] not in keep]
        if not pids:
            raise LookupError(f"{node} has no process to freeze but {', '.join(keep)}")
        code, out = containers.sh(container, ["kill", "-STOP", *map(str, pids)])
        if code != 0:
            raise RuntimeError(f"freezing {node}: {out.strip()}")

        def thaw():
            self.log(f"   nemesis: thaw {node}")
            containers.sh(containers.get(node), ["kill", "-CONT", *map(str, pids)])
        return self._record(f"freeze {node} but {', '.join(keep)} ({len(pids)} processes)", thaw)

    def _in_namespace(self, name, node, steps):
        """Run lab-net STEPS in NODE's namespace, one sidecar for all: [(verb, peers), ...] or a number
        (seconds to sleep, timed there, not by a host that takes a second to start each sidecar).
        Its heal is one `lab-net join` of every peer named.
        """
        script, joined = [], []
        for step in steps:
            if isinstance(step, (int, float)):
                script.append(f"sleep {step:.3f}")
                continue
            verb, peers = step
            found = [ip for p in peers for ip in peer_addresses(p)]
            script.append(" ".join(["lab-net", verb, *found]))
            joined += found
        sidecar(node, " && ".join(script))

        def rejoin():
            self.log(f"   nemesis: undo {name}")
            sidecar(node, ["lab-net", "join", *joined])
        return self._record(name, rejoin)

    def partition_in_two_steps(self, node, first, then, after_s):
        """Cut NODE from FIRST, and AFTER_S seconds later from THEN too."""
        return self._in_namespace(f"partition {node} from {', '.join(first)}, then {after_s} s later "
                                  f"from {', '.join(then)}", node, [("cut", first), after_s, ("cut", then)])

    def reset(self, node, peers):
        """Answer all TCP between NODE and PEERS with a reset (haproxy/bin/lab-net in NODE's namespace)."""
        return self._in_namespace(f"reset {node}'s connections with {', '.join(peers)}", node, [("reset", peers)])

    def partition(self, node, peers):
        """Drop all traffic between NODE and PEERS, both ways (haproxy/bin/lab-net in NODE's namespace)."""
        return self._in_namespace(f"partition {node} from {', '.join(peers)}", node, [("cut", peers)])

    def one_way(self, node, peers, direction):
        """Drop what NODE sends to PEERS (DIRECTION "to") or what it receives from them ("from"), not both."""
        verb = {"to": "drop-to", "from": "drop-from"}[direction]
        return self._in_namespace(f"drop what {node} {'sends to' if direction == 'to' else 'receives from'} "
                                  f"{', '.join(peers)}", node, [(verb, peers)])

    def lossy(self, node, peers, percent):
        """Lose PERCENT % of the packets between NODE and PEERS, both ways, at random."""
        if not 0 < percent < 100:
            raise ValueError(f"a loss of {percent} % is not a lossy link")
        return self._in_namespace(f"lose {percent} % of the packets between {node} and {', '.join(peers)}",
                                  node, [(f"lossy {int(percent)}", peers)])

    def fill_disk(self, node, directory):
        """Fill the filesystem holding DIRECTORY in NODE (a file of zeros until ENOSPC); its heal deletes the file."""
        filler = f"{directory}/lab-disk-filler"
        code, out = containers.sh(containers.get(node), f"dd if=/dev/zero of={filler} bs=1M status=none 2>&1; "
                                  f"test -f {filler} && df -k --output=avail {directory} | tail -n 1")
        if code != 0 or not out.strip().splitlines()[-1:] or out.strip().splitlines()[-1].strip() != "0":
            raise RuntimeError(f"filling {directory} on {node} left space free: {out.strip()}")

        def free():
            self.log(f"   nemesis: free {directory} on {node}")
            containers.sh(containers.get(node), ["rm", "-f", filler])
        return self._record(f"fill {node}'s {directory}", free)

    def cut_dns(self, node):
        """Leave Docker's embedded DNS unanswered in NODE's namespace (as when the engine's DNS hangs)."""
        sidecar(node, ["lab-net", "dns-off"])
        return self._record(f"cut {node} off from Docker's DNS", lambda: sidecar(node, ["lab-net", "dns-on"]))

    def slow(self, node, delay_ms):
        """Add DELAY_MS of latency to NODE's network (netem), or to the read path to it."""
        if "no-netem" not in sidecar(node, ["lab-net", "slow", str(int(delay_ms))]):
            return self._record(f"slow {node} by {delay_ms} ms (netem)",
                                lambda: sidecar(node, ["lab-net", "fast"]))
        # No netem in this kernel: delay every new read connection at the db
        # LBs instead (haproxy/conf/delay.lua), the path to the replica that users feel.
        self._set_read_delay(delay_ms)
        return self._record(f"slow the read path to {node} by {delay_ms} ms (HAProxy delay; no netem here)",
                            lambda: self._set_read_delay(0))

    @staticmethod
    def _set_read_delay(ms):
        for c in containers.find(role="dblb"):
            haproxy.set_var(containers.node_of(c), "proc.lab_delay_ms", ms)

    def restart_lab(self):
        """Run `make down && make up` (blocks until the lab is up again)."""
        self.log("   nemesis: make down && make up")
        for target in ("down", "up"):
            r = subprocess.run(["make", target], cwd=settings.ROOT, capture_output=True, text=True,
                               timeout=900, check=False)
            if r.returncode != 0:
                raise AssertionError(f"make {target} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        return self._record("restart the lab", lambda: None)

    def heal_all(self):
        """Undo every fault (newest first), then wait until the lab is whole again.

        A second call with no fault injected since the last one found the lab
        whole returns at once (a scenario heals itself; its finaliser calls
        this again only as a safety net).
        """
        if self.faults and self.faults[-1] is self._whole_after:
            return
        for fault in reversed(self.faults):
            try:
                fault.heal()
            except (docker.errors.APIError, LookupError, RuntimeError, haproxy.HaproxyError) as exc:
                self.log(f"   nemesis: healing {fault.name} failed: {exc}")
        lifecycle.heal()
        self._whole_after = self.faults[-1] if self.faults else None

