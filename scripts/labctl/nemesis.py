"""The nemesis: named faults, each with its heal, for `make chaos`, `make bench` and failover-times.

Every fault is a Fault object whose heal() undoes it; Nemesis remembers
what it did so that heal_all() (called from a finaliser) undoes everything
whatever happened in between. All faults act through the Docker API:
  kill / start          SIGKILL a container; start it again
  pause / unpause       freeze a container (cgroup freezer): a gray failure
  partition / rejoin    drop traffic between a node and some peers (iptables
                        in the node's network namespace, from a sidecar:
                        haproxy/bin/lab-net)
  slow / fast           add latency to a node's network: netem where the
                        kernel has it, else a delay in the db LBs' read path
  restart_lab           `make down && make up`
"""
import subprocess

import docker

from . import containers, haproxy, lifecycle, settings
from .containers import addresses


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

    def partition(self, node, peers):
        """Drop all traffic between NODE and PEERS, both ways (haproxy/bin/lab-net in NODE's namespace)."""
        peer_addresses = [ip for p in peers for ip in addresses(p)]
        sidecar(node, ["lab-net", "cut", *peer_addresses])

        def rejoin():
            self.log(f"   nemesis: rejoin {node} with {', '.join(peers)}")
            sidecar(node, ["lab-net", "join", *peer_addresses])
        return self._record(f"partition {node} from {', '.join(peers)}", rejoin)

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
        """Undo every fault (newest first), then wait until the lab is whole again."""
        for fault in reversed(self.faults):
            try:
                fault.heal()
            except (docker.errors.APIError, LookupError, RuntimeError, haproxy.RuntimeError_) as exc:
                self.log(f"   nemesis: healing {fault.name} failed: {exc}")
        lifecycle.heal()

