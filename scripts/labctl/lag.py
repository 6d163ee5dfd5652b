"""`make lag`: replication lag per link, in milliseconds, from heartbeats.

Seconds_Behind_Master misleads: it counts whole seconds, it compares the
SQL thread with the relay log only (so it reads 0 while the IO thread
itself is behind), and it is NULL whenever a thread stops. Instead, each
master's db-heartbeat (mysql/bin/db-heartbeat) stamps its row of
lab.heartbeat with UTC_TIMESTAMP(6) every 100 ms, the stamps replicate
like any write, and a trigger on every node records when the row was
applied there (applied_at, mysql/schema/06-heartbeat.sql). On replica R,
the lag behind source S is the newest applied beat's own delay
(applied_at - ts), exact to the microsecond, or - when beats stop
arriving - that beat's age less two beats (see link_lag_ms). All
containers read the same kernel clock, so there is no clock skew to
correct for (across hosts it would need NTP, as with pt-heartbeat).

slave1 receives each master's writes over two paths: directly, and through
the other master (log_slave_updates), and applies each GTID once
(gtid_ignore_duplicates). So "master1 -> slave1" is the freshness of
master1's data on slave1 whichever link brought it, not the delay of the
direct link alone: with that link down it stays low while master2 relays.
That is why every row also carries the link's own state, and a link whose
IO or SQL thread is not running is flagged broken whatever its lag.
"""
import contextlib
import json
import math
import secrets
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from . import containers, dbnodes, progress, replication, topology
from .loadgen import percentiles

# A source whose own newest stamp is older than this is not beating (writer
# down, or read_only): its replicas' lag cannot be measured then.
WRITER_STALE_MS = 1000

# One row per stamp a node holds: the node's server_id and UTC clock, and
# the stamp's age, all in one statement (so at one instant). The outer join
# keeps the node's server_id and clock when it holds no stamp yet.
HEARTBEAT_SQL = ("SELECT @@server_id AS self_id, UTC_TIMESTAMP(6) AS now_utc, h.server_id, "
                 "TIMESTAMPDIFF(MICROSECOND, h.ts, UTC_TIMESTAMP(6)) AS age_us, "
                 "TIMESTAMPDIFF(MICROSECOND, h.ts, h.applied_at) AS apply_us "
                 "FROM (SELECT 1) AS one LEFT JOIN lab.heartbeat AS h ON TRUE")
# Beats come every 100 ms (db-heartbeat). While they arrive, the newest one
# is younger than that plus its own delay; once it is older than
# STALL_GRACE_MS more than its delay, beats have stopped arriving: a stall.
BEAT_MS = 100
STALL_GRACE_MS = 2 * BEAT_MS


def link_lag_ms(age_ms, apply_ms):
    """Return a link's lag from its newest applied beat: AGE_MS old, applied APPLY_MS after its stamp.

    While beats arrive this is the newest beat's own replication delay,
    exact to the microsecond (applied_at and ts are two clocks of one host,
    read by the database). When they stop, the delay of what is not applied
    yet grows with the newest beat's age: the figure is then that age less
    STALL_GRACE_MS, which under-reads the true delay by 100-200 ms (the next,
    unapplied beat was stamped up to one beat after the newest).
    """
    return max(apply_ms if apply_ms is not None else 0.0, age_ms - STALL_GRACE_MS)


@dataclass
class LinkLag:
    """The lag of one replication link, source -> replica, with its thread states."""
    source: str
    replica: str
    state: str
    broken: bool
    lag_ms: int | None
    seconds_behind_master: int | None
    io_running: str
    sql_running: str
    gtid_io_pos: str
    gtid_slave_pos: str
    last_error: str
    note: str = ""
    # The replica's UTC clock when it read the stamps: lag_ms is as of then.
    measured_at: str | None = None

    @property
    def name(self):
        """Return 'source -> replica'."""
        return f"{self.source} -> {self.replica}"


@dataclass
class Heartbeats:
    """What one node said about heartbeats: its server_id, its UTC clock, {server_id: stamp age in ms}."""
    self_id: str | None = None
    now_utc: str | None = None
    ages_ms: dict | None = None
    applies_ms: dict | None = None      # {server_id: apply delay in ms of the newest beat}
    error: str = ""


def heartbeats(node):
    """Return NODE's Heartbeats (error set when the node does not answer)."""
    try:
        rows = dbnodes.query(node, HEARTBEAT_SQL)
    except dbnodes.DbError as exc:
        return Heartbeats(error=str(exc).splitlines()[0])
    ages = {r["server_id"]: int(r["age_us"]) / 1000 for r in rows if r["server_id"] is not None}
    applies = {r["server_id"]: int(r["apply_us"]) / 1000 for r in rows
               if r["server_id"] is not None and r["apply_us"] is not None}
    first = rows[0] if rows else {}
    return Heartbeats(self_id=first.get("self_id"), now_utc=first.get("now_utc"), ages_ms=ages,
                      applies_ms=applies)


def nodes():
    """Return every DB node that is a source or a replica of some link."""
    return sorted({node for link in topology.LINKS for node in link})


def read_heartbeats():
    """Return {node: Heartbeats}, read on every DB node at (nearly) the same moment."""
    names = nodes()
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return dict(zip(names, pool.map(heartbeats, names)))


def _lag(link, beats):
    """Return (lag_ms, note) for LINK from the heartbeats of every node."""
    source, replica = beats[link.source], beats[link.replica]
    if replica.error:
        # The replica's own error is in the link's last_error already.
        return None, f"{link.replica} does not answer"
    # Prefer the id the link itself saw: it is known even while the source is down.
    server_id = link.master_server_id if link.master_server_id not in (None, "0") else source.self_id
    if server_id is None:
        return None, f"{link.source}'s server_id is unknown (never connected, and it does not answer)"
    if not source.error:
        own = source.ages_ms.get(server_id)
        if own is None or own > WRITER_STALE_MS:
            # Without fresh stamps the figure would grow with the writer's
            # silence, not with replication: do not report it as lag.
            age = "none" if own is None else f"newest {own:.0f} ms old"
            return None, f"{link.source} is not stamping heartbeats ({age}): read_only, or db-heartbeat is down"
    age = replica.ages_ms.get(server_id)
    if age is None:
        return None, f"no heartbeat from {link.source} has reached {link.replica} yet"
    return max(0, round(link_lag_ms(age, replica.applies_ms.get(server_id)))), ""


def collect():
    """Return a LinkLag for every expected link (thread states first, then heartbeats)."""
    links = replication.links()
    beats = read_heartbeats()
    result = []
    for link in links:
        lag_ms, note = _lag(link, beats)
        sbm = link.seconds_behind_master
        result.append(LinkLag(
            source=link.source, replica=link.replica, state=link.state, broken=not link.running,
            lag_ms=lag_ms, seconds_behind_master=int(sbm) if sbm is not None else None,
            io_running=link.io_running, sql_running=link.sql_running,
            gtid_io_pos=link.gtid_io_pos, gtid_slave_pos=link.gtid_slave_pos,
            last_error=link.last_error, note=note, measured_at=beats[link.replica].now_utc,
        ))
    return result


def to_json(lags, indent=2):
    """Return LAGS as a JSON list of objects."""
    return json.dumps([asdict(l) for l in lags], indent=indent)


def table(lags):
    """Return LAGS as a text table, broken links in capitals."""
    header = ("link", "status", "lag_ms", "SBM_s", "io", "sql", "gtid_io_pos", "gtid_slave_pos",
              "last error / note")
    rows = [(
        l.name,
        ("BROKEN" if l.state == "broken" else f"BROKEN ({l.state})") if l.broken else "ok",
        "-" if l.lag_ms is None else str(l.lag_ms),
        # Show the server's NULL as it is: that is part of the lesson.
        "NULL" if l.seconds_behind_master is None else str(l.seconds_behind_master),
        l.io_running, l.sql_running, l.gtid_io_pos or "-", l.gtid_slave_pos or "-",
        "; ".join(x for x in (l.last_error, l.note) if x),
    ) for l in lags]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    right = {2, 3}  # numbers
    lines = []
    for r in [header, *rows]:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join([*cells, r[-1]]).rstrip())
    return "\n".join(lines)


def show(as_json=False):
    """Print the lag of every link once; return True when every link runs and has a lag figure."""
    lags = collect()
    print(to_json(lags) if as_json else table(lags), flush=True)
    return all(not l.broken and l.lag_ms is not None for l in lags)


def watch(as_json=False, interval_s=1.0):
    """Refresh the lag of every link every INTERVAL_S until interrupted (JSON: one line per refresh).

    Ctrl-C (SIGINT) or SIGTERM ends it after the refresh in progress: an
    interrupt raised in the middle of one (while threads share the Docker
    client's connections) could leave a worker waiting forever, and the
    command would hang instead of exiting.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.is_set():
            started = time.monotonic()
            lags = collect()
            if as_json:
                print(json.dumps({"at": time.time(), "links": [asdict(l) for l in lags]}), flush=True)
            else:
                # Clear the screen and home the cursor, like watch(1).
                print("\033[H\033[2J" + time.strftime("%H:%M:%S") + f"  replication lag, every {interval_s:g} s"
                      " (Ctrl-C to stop)\n\n" + table(lags), flush=True)
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return True


class WriteLoad:
    """A steady, bounded write load: RATE rows/s into lab.replication_probe on a master.

    Runs inside the master's container (mysql/bin/db-write-load: one bash
    loop feeding one long-lived `mariadb` client, root over the socket), so
    the rate is not limited by a docker exec per row. Bounded by COUNT rows and by a
    timeout; stop() ends it early through a stop file (no kill by name),
    then deletes its rows, which replicates like the inserts did.
    """

    def __init__(self, node, rate_per_s, max_s):
        self.node, self.rate, self.max_s = node, rate_per_s, max_s
        self.token = "load-" + secrets.token_hex(6)
        self.stop_file = f"/tmp/{self.token}.stop"
        self.count = math.ceil(rate_per_s * max_s)
        self.rows, self.rate_achieved = 0, 0.0
        self.exit_code, self.output = None, ""
        self._thread = None

    def _run(self):
        # mysql/bin/db-write-load: one client, rows due on a fixed schedule.
        self.exit_code, self.output = containers.sh(containers.get(self.node), [
            "db-write-load", self.node, self.token, str(round(self.rate)), str(self.count),
            str(math.ceil(self.max_s)), self.stop_file])

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, name=f"load-{self.node}", daemon=True)
        self._thread.start()
        return self

    def wait_flowing(self, timeout_s=20):
        """Wait (bounded) until rows of this load have reached every DB node."""
        def check():
            self._raise_if_failed()
            missing = [n for n in nodes() if dbnodes.value(
                n, f"SELECT COUNT(*) FROM lab.replication_probe WHERE token = '{self.token}'") == "0"]
            return not missing, missing
        progress.wait_until(check, timeout_s, interval_s=0.2)
        return self

    def _raise_if_failed(self):
        if self.exit_code not in (None, 0):
            raise dbnodes.DbError(f"{self.node}: the write load exited with {self.exit_code}: "
                                  f"{self.output.strip()[-500:]}")

    def stop(self):
        """End the load (bounded), measure its rate, and delete its rows; return rows per second."""
        if self._thread is None:
            return self.rate_achieved
        containers.sh(containers.get(self.node), ["touch", self.stop_file])
        self._thread.join(timeout=self.max_s + 20)
        self._thread = None
        try:
            row = dbnodes.query(self.node, "SELECT COUNT(*) AS n, TIMESTAMPDIFF(MICROSECOND, MIN(created_at), "
                                f"MAX(created_at)) AS span_us FROM lab.replication_probe "
                                f"WHERE token = '{self.token}'")[0]
            self.rows = int(row["n"])
            span_s = int(row["span_us"] or 0) / 1e6
            self.rate_achieved = (self.rows - 1) / span_s if span_s > 0 else 0.0
            dbnodes.query(self.node, f"DELETE FROM lab.replication_probe WHERE token = '{self.token}'",
                          root=True)
        finally:
            containers.sh(containers.get(self.node), ["rm", "-f", self.stop_file])
        self._raise_if_failed()
        return self.rate_achieved

    def __exit__(self, *exc):
        self.stop()


def sample(count, interval_s=0.1):
    """Read every link's heartbeat lag COUNT times; return {link name: [(lag_ms or None, note)]}."""
    links = replication.links()
    samples = {f"{l.source} -> {l.replica}": [] for l in links}
    for _ in range(count):
        started = time.monotonic()
        beats = read_heartbeats()
        for link in links:
            samples[f"{link.source} -> {link.replica}"].append(_lag(link, beats))
        time.sleep(max(0.0, interval_s - (time.monotonic() - started)))
    return samples


def sources():
    """Return every node that some link replicates from (the masters)."""
    return sorted({source for source, _ in topology.LINKS})


def show_sample(count, interval_s=0.1, load_rate=0):
    """Print lag p50/p99/max per link over COUNT samples, optionally under a write load on each master."""
    masters = sources() if load_rate else []
    # Reading three nodes through docker exec takes a few tenths of a
    # second, so samples may come slower than INTERVAL_S: bound the load
    # generously; stop() ends it as soon as sampling is done.
    load_s = count * max(interval_s, 1.0) + 30
    try:
        with contextlib.ExitStack() as stack:
            loads = [stack.enter_context(WriteLoad(m, load_rate, load_s)) for m in masters]
            for load in loads:
                load.wait_flowing()
            started = time.monotonic()
            samples = sample(count, interval_s)
            elapsed = time.monotonic() - started
    except (dbnodes.DbError, progress.Timeout) as exc:
        # Figures taken while the load failed would not be "under load".
        raise SystemExit(f"❌ no sample: {exc}") from exc
    what = f"under {load_rate:g} rows/s on each of {', '.join(masters)}" if loads else "at idle"
    print(f"replication lag {what}: {count} samples in {elapsed:.0f} s "
          f"(one every {elapsed / count:.2f} s)")
    print(f"{'link':<20} {'n':>5} {'p50_ms':>7} {'p99_ms':>7} {'max_ms':>7}  missing (first reason)")
    complete = True
    for name, values in samples.items():
        got = [lag_ms for lag_ms, _ in values if lag_ms is not None]
        notes = [note for lag_ms, note in values if lag_ms is None]
        complete &= not notes
        missing = f"{len(notes)} ({notes[0]})" if notes else "0"
        if not got:
            print(f"{name:<20} {0:>5} {'-':>7} {'-':>7} {'-':>7}  {missing}")
            continue
        # The lab's one percentile helper (make bench's), which takes seconds.
        pct = percentiles([ms / 1000 for ms in got])
        print(f"{name:<20} {len(got):>5} {pct['p50_ms']:>7.0f} {pct['p99_ms']:>7.0f} "
              f"{pct['max_ms']:>7.0f}  {missing}")
    for load in loads:
        print(f"load: {load.node} wrote {load.rows} rows at {load.rate_achieved:.1f} rows/s")
    return complete
