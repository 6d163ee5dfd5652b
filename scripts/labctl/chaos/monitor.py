"""Safety samples taken while a scenario runs: who is writable, in which term, and which orders each node holds.

An observer container (mysql/bin/db-observe, the lab's MariaDB image) on
the db network reads every DB node ten times a second over long-lived
connections and streams its readings through the Docker API; it sits
outside every node's fault domain (a node frozen or cut off from its
peers is still read). The checker (chaos.checker) judges the samples: at
most one writable master per tick, never a writer of an older term after
one of a newer term, and a writable master never lacks an order that was
acknowledged, or seen on a writer, before the sample.

A node counts as writable when read_only is off AND its writer's lease
(ha.lease, kept by its HA loop) is valid by the server's own clock: a
writer frozen past its deadline thaws with read_only still off for the few
ms its dead-man switch takes to fence it, and can acknowledge nothing
meanwhile (its semi-sync standby was cut off at the promotion).
"""
import contextlib
import json
import threading
import time

import docker

from labctl import containers, progress, settings, topology

INTERVAL_S = 0.1
# A scenario must have read every DB node at least this many times per second
# of the run on average (at 10 a second, a node may be unreachable a while).
MIN_RATE_PER_S = 4.0


class SafetySampler(progress.Background):
    """Observe every DB node every INTERVAL_S for the length of a `with` block."""

    def __init__(self, usernames, clock, interval_s=INTERVAL_S, nodes=topology.DB_NODES):
        super().__init__()
        self.usernames, self.clock, self.interval_s, self.nodes = list(usernames), clock, interval_s, nodes
        self.readings = []             # every reading, with "t" and "t_end" on the workload clock
        self.offset = time.time() - clock()
        self.container = None
        self.observed_s = 0.0          # seconds the observer ran (suspensions excluded)
        self.started_at = None
        self.generation = 0            # one per observer container (a suspension starts a new one)
        self.lock = threading.Lock()
        self._follow_done = threading.Event()

    # ---- the observer container -------------------------------------------------------

    def _start(self):
        spec = topology.LAB.db_nodes_spec(settings.LAB_NET).split(",")
        args = ["--interval", str(self.interval_s), "--users", ",".join(self.usernames),
                *(f"{n}={a}" for n, _, a in (item.split(":") for item in spec) if n in self.nodes)]
        secret = settings.SECRETS_DIR / "mysql_monitor_password"
        self.container = containers.client().containers.run(
            settings.image("mariadb"), args, entrypoint=["db-observe"], detach=True,
            network=containers.network("db"), labels={"lab.sidecar": "observer"}, healthcheck={"test": ["NONE"]},
            volumes={str(secret): {"bind": "/run/secrets/mysql_monitor_password", "mode": "ro"}})
        self.started_at = time.monotonic()
        self.generation += 1

    def _stop(self):
        if self.container is None:
            return
        with contextlib.suppress(docker.errors.APIError):
            self.container.remove(force=True)
        self.container = None
        self.observed_s += time.monotonic() - self.started_at

    def __enter__(self):
        self._start()
        entered = super().__enter__()
        # Begin once every node has been read (bounded): a fault right after
        # the start must not find a node the observer never saw.
        try:
            progress.wait_until(lambda: (all(c["answered"] for c in self.counts().values()), None), 10,
                                interval_s=0.05)
        except progress.Timeout:
            pass   # every_node_sampled reports it
        return entered

    def __exit__(self, *exc):
        super().__exit__(*exc)
        self._stop()

    @contextlib.contextmanager
    def suspended(self):
        """Stop observing for the block (a whole-lab restart removes the networks the observer is on)."""
        container = self.container
        self._stop()
        if self._thread.is_alive():
            self._follow_done.wait(10)
        try:
            yield
        finally:
            if container is not None:
                self._start()
                self._follow_done.clear()

    def run(self):
        while not self.stopping.is_set():
            container = self.container
            if container is None:
                time.sleep(0.1)
                continue
            generation = self.generation
            try:
                for line in container.logs(stream=True, follow=True, stdout=True, stderr=False):
                    self._add(line, generation)
                    if self.stopping.is_set():
                        break
            except docker.errors.APIError:
                pass
            self._follow_done.set()
            if self.container is container:
                time.sleep(0.1)

    def _add(self, line, generation):
        try:
            r = json.loads(line)
        except ValueError:
            return
        r["gen"] = generation
        r["t"], r["t_end"] = r["sent"] - self.offset, r["recv"] - self.offset
        r["writable"] = "error" not in r and r["ro"] == 0 and r["lease_ok"]
        with self.lock:
            self.readings.append(r)

    # ---- what the checker reads --------------------------------------------------------

    @property
    def writer_samples(self):
        """Per tick: {"t", "writable": [nodes], "unreachable": [nodes], "terms": {node: term}} (sources only)."""
        with self.lock:
            readings = [r for r in self.readings if r["node"] in topology.SOURCES]
        ticks = {}
        for r in readings:
            ticks.setdefault((r["gen"], r["tick"]), []).append(r)
        out = []
        for tick in sorted(ticks):
            rs = ticks[tick]
            out.append({"t": min(r["t"] for r in rs),
                        "writable": sorted(r["node"] for r in rs if r["writable"]),
                        "unreachable": sorted(r["node"] for r in rs if "error" in r),
                        "terms": {r["node"]: r["term"] for r in rs if r["writable"]}})
        return out

    @property
    def order_samples(self):
        """Per reading of a source: {"t", "node", "writable", "orders": set of order ids}."""
        with self.lock:
            return [{"t": r["t"], "node": r["node"], "writable": r["writable"], "orders": set(r["orders"])}
                    for r in self.readings if "error" not in r and r["node"] in topology.SOURCES]

    @property
    def writer_readings(self):
        """Every writable reading: {"node", "term", "t", "t_end"} (what the term check judges)."""
        with self.lock:
            return [{k: r[k] for k in ("node", "term", "t", "t_end")} for r in self.readings if r["writable"]]

    def counts(self):
        """Per node: readings answered, readings that failed, and answered readings per second observed."""
        with self.lock:
            readings = list(self.readings)
        seconds = self.observed_s + (time.monotonic() - self.started_at if self.container is not None else 0)
        out = {}
        for node in self.nodes:
            ok = sum(1 for r in readings if r["node"] == node and "error" not in r)
            failed = sum(1 for r in readings if r["node"] == node and "error" in r)
            out[node] = {"answered": ok, "failed": failed, "per_s": round(ok / seconds, 1) if seconds else 0.0}
        return out

    def assert_one_writer_at_most(self):
        """Fail with the first tick in which two masters were writable, or when nothing was sampled."""
        samples = self.writer_samples
        counts = self.counts()
        assert all(c["answered"] for n, c in counts.items() if n in topology.SOURCES), f"a node was never read: {counts}"
        both = [(round(s["t"], 2), s["writable"]) for s in samples if len(s["writable"]) > 1]
        assert not both, f"two writable masters at once: {both[:3]}"
