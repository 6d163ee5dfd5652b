"""`make autoscale`: a controller that sizes the web tier to its load, between MIN and MAX nodes.

Every second it reads the web LBs' own figures (HAProxy's `show stat`): how
many requests the nodes are working on (scur) and how many wait in HAProxy's
queue (qcur); the request rate and the mean response time are logged beside
them. From the requests in hand per node, c, it estimates how busy a node is
as a single queue would be: busy = c / (1 + c) (Little's law for M/M/1; a
node with one request in hand is about half busy, with four 80 %). The share
of request slots (c / maxconn) is not such a measure: on the first try, a
tier with 4 nodes at half their CPU had 5 % of its slots taken, the rule
took two nodes away, and the other two were at their limit.

The rule is Kubernetes' horizontal autoscaler's, with its two brakes:
- scale out when busy, averaged over REACT_S, is above TARGET by more than
  the tolerance: to ceil(serving x busy / TARGET) nodes (the work is
  conserved); while requests queue, busy says only "full", so the number
  comes from the rates instead: what the nodes get through is their
  capacity, and ceil(serving x arriving / served / TARGET) nodes carry the
  arrivals; at most 4 nodes or 100 % more at once (HPA's default bound);
- scale in only when the load stayed low for CALM_S: to the fewest nodes on
  which the busiest second of that window stays under IN_MARGIN x TARGET, at
  most halving (hysteresis: after a scale-in busy stays below the scale-out
  threshold, so the tier does not flap);
- after any change, COOLDOWN_S without a decision, and the samples taken
  before it are dropped (new nodes must first take traffic).

It acts through `make scale` (operations.scale): new nodes take traffic only
once healthy and UP in both LBs; removed nodes are drained first.

Several controllers may run (on several operators' machines, or one
restarted after a crash): they elect one leader through etcd, with a key
bound to a lease (LEASE_S) that a thread of its own renews, so a long drain
does not lose it. Before acting, the leader writes the size it is going to
(`/scalelab/autoscaler/target`), fenced by its leadership, and deletes it
when it stops; a controller that takes over first finishes what a target
left behind says (a scale-out cut off half-way leaves a node running but out
of rotation: `make scale` puts it back). Decisions are logged, with the
figures that caused them, to reports/autoscaler/decisions.jsonl (the console
and `make status` show them).
"""
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field

from . import containers, ha, haproxy, operations, progress, settings, topology

KEY = "/scalelab/autoscaler/"
LEADER_KEY = KEY + "leader"
TARGET_KEY = KEY + "target"
LOG = settings.ROOT / "reports" / "autoscaler" / "decisions.jsonl"
LEASE_S = 6          # a dead leader's key expires this long after its last renewal
SAMPLE_S = 1.0


@dataclass(frozen=True)
class Policy:
    """When to add and remove web nodes."""
    min_nodes: int = 2          # one node would be a single point of failure
    max_nodes: int = 6          # six nodes of 0.25 CPU: three quarters of this 2-CPU host
    target: float = 0.6         # how busy the nodes should be (c / (1 + c), c: requests in hand per node)
    tolerance: float = 0.15     # scale out above target x (1 + tolerance)
    in_margin: float = 0.8      # scale in while the busiest second stays under target x in_margin on fewer nodes
    react_s: float = 4.0        # scale-out: the mean over this long
    calm_s: float = 20.0        # scale-in: the busiest second of this long
    cooldown_s: float = 5.0     # no decision this long after a change (and REACT_S of new samples)

    def check(self):
        """Raise SystemExit with a reason when the bounds do not make sense."""
        most = len(topology.WEB_NODES)
        if not 1 <= self.min_nodes <= self.max_nodes <= most:
            raise SystemExit(f"❌ need 1 <= MIN ({self.min_nodes}) <= MAX ({self.max_nodes}) <= {most}")
        if not 0 < self.target < 1:
            raise SystemExit(f"❌ TARGET is how busy a node should be, between 0 and 1, not {self.target}")


@dataclass(frozen=True)
class Sample:
    """The web tier's load at one moment, as the LBs see it."""
    at: float
    serving: int         # nodes UP in the LBs' `web` backend
    in_flight: int       # requests the nodes are working on
    queued: int          # requests waiting in HAProxy for a slot
    slots: int           # request slots of the serving nodes
    rate: int            # requests/s arriving
    rtime_ms: int        # mean response time
    served: int = 0      # requests/s the serving nodes were sent (what they get through, while requests queue)

    @property
    def busy(self):
        """How busy a serving node is, 0 to 1, from the requests in hand per node (M/M/1: c / (1 + c))."""
        if not self.serving:
            return 0.0
        c = (self.in_flight + self.queued) / self.serving
        return c / (1 + c)

    @property
    def work(self):
        """The busy share summed over the serving nodes: how many fully busy nodes the load is worth."""
        return self.busy * self.serving


@dataclass(frozen=True)
class Decision:
    """What the controller does now: "out", "in" or "hold", to how many nodes, and why."""
    kind: str
    size: int
    to: int
    reason: str
    figures: dict = field(default_factory=dict)


def _figures(samples):
    last = samples[-1]
    return {"busy": round(sum(s.busy for s in samples) / len(samples), 3), "serving": last.serving,
            "in_flight": last.in_flight, "queued": last.queued, "slots": last.slots, "rate": last.rate,
            "served": last.served, "rtime_ms": last.rtime_ms}


def decide(p, size, samples, now, changed_at):
    """The decision for a tier of SIZE running nodes, from SAMPLES (oldest first) taken since the last change."""
    if size < p.min_nodes:
        return Decision("out", size, p.min_nodes, f"{size} web node(s) run, fewer than MIN {p.min_nodes}")
    if size > p.max_nodes:
        return Decision("in", size, p.max_nodes, f"{size} web nodes run, more than MAX {p.max_nodes}")
    if now - changed_at < p.cooldown_s:
        return Decision("hold", size, size, "cooling down after the last change")
    recent = [s for s in samples if s.at > now - p.react_s]
    if not recent or not any(s.serving for s in recent):
        return Decision("hold", size, size, "no node serving: nothing to measure")
    figures = _figures(recent)
    busy, serving = figures["busy"], max(figures["serving"], 1)
    high = p.target * (1 + p.tolerance)
    queueing = sum(s.queued for s in recent) / len(recent) >= 1
    if busy > high and size < p.max_nodes:
        if queueing:
            # Saturated: what the nodes get through is their capacity, and
            # the arrivals over it say how many times more is wanted.
            rate = sum(s.rate for s in recent) / len(recent)
            served = max(sum(s.served for s in recent) / len(recent), 1)
            wanted = math.ceil(serving * max(rate / served, 1) / p.target)
        else:
            wanted = math.ceil(serving * busy / p.target)
        # HPA's default bound on a scale-up: 4 nodes or 100 %, whichever is more.
        to = max(size + 1, min(wanted, max(2 * size, size + 4), p.max_nodes))
        return Decision("out", size, to, f"busy {busy:.0%} over {p.react_s:.0f} s > {high:.0%} "
                        f"({figures['in_flight']} in flight, {figures['queued']} queued on {serving} node(s), "
                        f"{figures['rate']} req/s arriving, {figures['served']} served, {figures['rtime_ms']} ms)",
                        figures)
    window = [s for s in samples if s.at > now - p.calm_s]
    covered = samples and samples[0].at <= now - p.calm_s + SAMPLE_S
    if size > p.min_nodes and covered:
        peak = max(s.work for s in window)
        low = p.target * p.in_margin
        to = max(p.min_nodes, math.ceil(size / 2), math.ceil(peak / low))
        if to < size:
            figures = {**_figures(window), "peak_work": round(peak, 2)}
            return Decision("in", size, to, f"the busiest second of {p.calm_s:.0f} s was worth {peak:.2f} busy "
                            f"node(s): on {to} each stays under {low:.0%}", figures)
    return Decision("hold", size, size, f"busy {busy:.0%}", figures)


def measure():
    """Sample the web tier from every web LB (only the VIP holder's figures move; the other's are 0)."""
    serving, in_flight, queued, slots, rate, served, rtime = set(), 0, 0, {}, 0, 0, 0
    for lb in containers.find(role="lb"):
        try:
            load = haproxy.web_load(containers.node_of(lb))
        except Exception:  # noqa: BLE001 - a stopped or frozen LB has no figures
            continue
        for name, node in load["nodes"].items():
            in_flight += node["in_flight"]
            if node["status"].startswith("UP"):
                serving.add(name)
                served += node["rate"]
                slots[name] = max(slots.get(name, 0), node["slots"] or 1)
        queued += load["queued"]
        rate += load["rate"]
        rtime = max(rtime, load["rtime_ms"])
    return Sample(time.time(), len(serving), in_flight, queued, sum(slots.values()), rate, rtime, served)


def size_now():
    """How many web nodes run (one Docker list call: this is asked every second)."""
    return sum(r["role"] == "web" for r in containers.rows(all=False))


# ---- leadership through etcd ----------------------------------------------------------------

def get(key):
    """Return KEY's value in etcd as text, or None."""
    code, out = ha.etcdctl("get", key, "--print-value-only", timeout="2s")
    if code != 0:
        raise ha.HaError(f"etcd does not answer: {out.strip()[-200:]}")
    return out.rstrip("\n") or None


def forget_target():
    """Delete a target a crashed leader left (a measurement starts from the tier as it is)."""
    ha.etcdctl("del", TARGET_KEY)


class Leadership:
    """One controller's claim to lead: a key bound to an etcd lease, renewed by a thread of its own."""

    def __init__(self, me, ttl_s=LEASE_S):
        self.me, self.ttl_s, self.lease = me, ttl_s, None
        self.lost = threading.Event()
        self._stop = threading.Event()

    def acquire(self):
        """Take the leader key if nobody holds it; return True if we lead now."""
        code, out = ha.etcdctl("lease", "grant", str(self.ttl_s), timeout="2s")
        if code != 0 or not out.startswith("lease "):
            return False
        lease = out.split()[1]
        answer = ha.txn([f'create("{LEADER_KEY}") = "0"'], [f"put {LEADER_KEY} {self.me} --lease={lease}"])
        if not answer.get("succeeded"):
            ha.etcdctl("lease", "revoke", lease)
            return False
        self.lease = lease
        self.lost.clear()
        threading.Thread(target=self._renew, daemon=True).start()
        return True

    def _renew(self):
        while not self._stop.wait(self.ttl_s / 3):
            code, out = ha.etcdctl("lease", "keep-alive", "--once", self.lease, timeout="1s")
            if code != 0 and "not found" in out:
                self.lost.set()
                return

    def _fenced(self, request):
        """Run the etcdctl txn REQUEST only while the leader key is still ours; return True if it ran."""
        ok = bool(ha.txn([f'value("{LEADER_KEY}") = "{self.me}"'], [request]).get("succeeded"))
        if not ok:
            self.lost.set()
        return ok

    def put_fenced(self, key, value):
        """Put KEY=VALUE only while the leader key is still ours; return True if it took."""
        return self._fenced(f"put {key} {value}")

    def delete_fenced(self, key):
        """Delete KEY while the leader key is still ours."""
        self._fenced(f"del {key}")

    def release(self):
        self._stop.set()
        if self.lease:
            with contextlib.suppress(Exception):
                ha.etcdctl("lease", "revoke", self.lease)
            self.lease = None


# ---- the controller -------------------------------------------------------------------------

def log(record):
    """Append RECORD (a decision or an event) to the decisions log and print it."""
    LOG.parent.mkdir(parents=True, exist_ok=True)
    record = {"at": round(time.time(), 3), **record}
    with LOG.open("a") as f:
        f.write(json.dumps(record) + "\n")
    stamp = time.strftime("%H:%M:%S", time.localtime(record["at"]))
    if record.get("kind") in ("out", "in", "repair"):
        print(f"{stamp} scale {record['kind']} {record['size']} -> {record['to']}: {record['reason']}", flush=True)
    else:
        print(f"{stamp} {record.get('event', record.get('kind'))}: {record.get('reason', '')}", flush=True)


def recent(limit=10):
    """The last LIMIT records of the decisions log (oldest first)."""
    return records(limit=limit)


def state():
    """Who leads and the size it aims at (from etcd), and the last decisions (from the log)."""
    try:
        leader, target, error = get(LEADER_KEY), get(TARGET_KEY), ""
    except ha.HaError as exc:
        leader, target, error = None, None, str(exc)
    return {"leader": leader, "target": int(target) if target and target.isdigit() else None,
            "size": size_now(), "decisions": recent(), "error": error}


class Controller:
    """One autoscaler: stands by until it leads, then measures, decides and scales."""

    def __init__(self, policy, me=None):
        policy.check()
        self.policy = policy
        self.me = me or f"{socket.gethostname()}-{os.getpid()}"
        self.stopping = threading.Event()

    def _scale(self, leadership, to, record):
        if not leadership.put_fenced(TARGET_KEY, to):
            log({"by": self.me, "event": "lost the lead", "reason": "the leader key is no longer ours"})
            return False
        log({"by": self.me, **record})
        started = time.monotonic()
        try:
            operations.scale(to)
        except (SystemExit, subprocess.CalledProcessError, haproxy.HaproxyError, progress.Timeout) as exc:
            # Logged, and tried again after the cooldown (the next leader, too, picks the target up).
            log({"by": self.me, "event": "scale failed", "to": to, "reason": str(exc) or type(exc).__name__})
            return True
        log({"by": self.me, "event": "scaled", "to": to, "took_s": round(time.monotonic() - started, 1),
             "reason": f"{to} web node(s) serving after {time.monotonic() - started:.1f} s"})
        return True

    def pick_up(self, leadership):
        """Finish what the last leader set out to do (or repair a scale cut off half-way)."""
        p = self.policy
        target = get(TARGET_KEY)   # left only by a leader that stopped without finishing (it deletes it when it stops)
        size = size_now()
        if target and target.isdigit():
            aimed = int(target)
            to = min(max(aimed, p.min_nodes), p.max_nodes)
            why = f"the last leader aimed at {aimed} and did not say it finished"
            if to != aimed:
                why += f"; within MIN {p.min_nodes} and MAX {p.max_nodes}: {to}"
        else:
            to, why = size, "no target left"
        held = operations.held_back(topology.WEB_NODES[:to])
        if to != size or held:
            kind = "out" if to > size else "in" if to < size else "repair"
            self._scale(leadership, to, {"kind": kind, "size": size, "to": to,
                                          "reason": f"picking up: {why}; {size} run"
                                                    + (f", {', '.join(held)} out of rotation" if held else "")})
        return time.time()

    def lead(self, leadership):
        p = self.policy
        samples = deque(maxlen=int(max(p.calm_s, p.react_s) / SAMPLE_S) + 5)
        changed_at = self.pick_up(leadership)
        while not self.stopping.is_set() and not leadership.lost.is_set():
            samples.append(measure())
            now = time.time()
            d = decide(p, size_now(), list(samples), now, changed_at)
            if d.kind != "hold":
                if not self._scale(leadership, d.to, asdict(d)):
                    return
                changed_at = time.time()
                samples.clear()
            self.stopping.wait(max(0.0, SAMPLE_S - (time.time() - now)))
        if leadership.lost.is_set():
            log({"by": self.me, "event": "lost the lead", "reason": "its lease was not renewed in time"})
        else:  # stopped between two scales: nothing for the next leader to finish
            leadership.delete_fenced(TARGET_KEY)

    def run(self):
        p = self.policy
        progress.ok(f"autoscaler {self.me}: web nodes between {p.min_nodes} and {p.max_nodes}, "
                    f"aiming at nodes {p.target:.0%} busy (Ctrl-C stops it; decisions in {LOG.relative_to(settings.ROOT)})")
        said = None
        while not self.stopping.is_set():
            leadership = Leadership(self.me)
            try:
                if leadership.acquire():
                    log({"by": self.me, "event": "leads", "reason": f"holds {LEADER_KEY} (lease {LEASE_S} s)"})
                    self.lead(leadership)
                    said = None
                else:
                    holder = get(LEADER_KEY)
                    if holder != said:
                        progress.step(f"standing by: {holder} leads; taking over if it stops")
                        said = holder
            except ha.HaError as exc:
                progress.fail(f"etcd: {exc}; trying again")
            finally:
                leadership.release()
            self.stopping.wait(1.0)


def argv(policy):
    """The command line of a controller with POLICY (as `make autoscale` runs it)."""
    return [sys.executable, "-m", "labctl", "autoscale", "--min", str(policy.min_nodes),
            "--max", str(policy.max_nodes), "--target", str(policy.target)]


@contextlib.contextmanager
def controllers(policy, count=2):
    """Run COUNT controllers as processes of their own for the block (chaos, tests); yield their Popen objects.

    Each is a process group of its own, as if on a machine of its own:
    killing the group kills the `make scale` it is running too. Each one's
    output goes to reports/autoscaler/controller-<pid>.log. At the end they
    get SIGTERM (a leader finishes the scale in hand) and are killed after 60 s.
    """
    LOG.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(settings.ROOT / "scripts")}
    procs = []
    try:
        for _ in range(count):
            out = open(LOG.parent / "controller.log", "a")  # noqa: SIM115 - closed with the process below
            procs.append((subprocess.Popen(argv(policy), cwd=settings.ROOT, env=env, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True), out))
            time.sleep(0.5)  # the first one started leads
        yield [p for p, _ in procs]
    finally:
        for p, _ in procs:  # the controller only: it finishes the `make scale` in hand
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        for p, out in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                kill(p)
                p.wait()
            out.close()


def kill(proc):
    """SIGKILL controller PROC and everything it started (its process group): a crashed controller's machine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def identity(proc):
    """The name controller PROC leads under (its records' "by")."""
    return f"{socket.gethostname()}-{proc.pid}"


def records(since=0.0, by=None, limit=None):
    """The decisions log's records since SINCE (time.time()), of controller BY if given; the last LIMIT only."""
    if not LOG.exists():
        return []
    with LOG.open() as f:
        lines = deque(f, maxlen=limit)
    rows = [json.loads(line) for line in lines if line.strip()]
    return [r for r in rows if r["at"] >= since and (by is None or r.get("by") == by)]


def run(policy):
    """`make autoscale`: run a controller in the foreground until Ctrl-C or SIGTERM."""
    controller = Controller(policy)
    signal.signal(signal.SIGTERM, lambda *_: controller.stopping.set())
    try:
        controller.run()
    except KeyboardInterrupt:
        controller.stopping.set()
    log({"by": controller.me, "event": "stopped", "reason": "asked to stop"})
