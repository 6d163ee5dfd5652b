"""db-ha's daemon: the HA loop of one DB node, its lease renewer and guard, and its HTTP face.

Threads:
  loop     every LOOP_S: poll the local server, read the cluster from
           etcd, plan (labha.plan, pure), carry the plan out, publish
  renewer  every RENEW_S while leading: renew the leader key's lease; a
           renewal that succeeds moves the deadline to (when it was SENT +
           TTL - MARGIN), on the monotonic clock: before the lease can
           lapse in etcd, which counts from when etcd got the renewal
  guard    every 20 ms: past the deadline, fence this server (read_only
           on; the sessions that hold it up killed if it has not taken in
           50 ms); while writable, keep the deadline in the server
           (ha.lease) for its own dead-man switch (watchdog.sql)
  http     port 9200: /alive (Docker's health check), /primary (200 only
           on the writable leader: HAProxy's write check), /read, /status;
           POST /switchover, /rebuild and /hold from loopback (db-ha's CLI)
"""
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pymysql

from . import cluster as clusters
from . import dcs, gtid, mariadb
from .plan import Me, Term, catchup_target, plan

NODE = os.environ.get("LAB_NODE", "")
ROLE = os.environ.get("DB_ROLE", "source")
CLUSTER = os.environ.get("DB_CLUSTER", "a-m")
# Every DB node of the cluster as name:server_id:address (fixed addresses:
# Docker's DNS takes seconds to fail for a stopped container).
NODES = {n: (int(i), a) for n, i, a in (item.split(":") for item in
                                         os.environ.get("DB_NODES", "").split(",") if item)}
SOURCES = tuple(s for s in os.environ.get("DB_SOURCES", "").split(",") if s)
PREFERRED = os.environ.get("DB_PREFERRED_WRITER") or (SOURCES[0] if SOURCES else "")
ENDPOINTS = [e for e in os.environ.get("DCS_ENDPOINTS", "").split(",") if e]
PORT = int(os.environ.get("DB_AGENT_PORT", "9200"))
MAX_LAG_MS = int(os.environ.get("DB_READ_MAX_LAG_MS", "5000"))

# Timing (README, "How the pairs fail over", has the measurements behind them).
TTL_S = int(os.environ.get("DB_LEASE_TTL_S", "1"))            # the shortest lease etcd 3.4 grants here
RENEW_S = float(os.environ.get("DB_RENEW_S", "0.1"))
# A renewal not answered this fast is sent again (a healthy member answers in
# milliseconds): while etcd elects a raft leader, the renewal that succeeds
# is one sent after the election, so shorter tries mean a shorter gap.
RENEW_BOUND_S = 0.2
MARGIN_S = float(os.environ.get("DB_DEMOTE_MARGIN_S", "0.15"))  # demote this long before the lease can lapse
# A source must notice a lost leader key fast (it may be the one to take over);
# a read replica only follows, so it looks less often (every look costs etcd
# and the node CPU, at idle too).
LOOP_S = float(os.environ.get("DB_LOOP_S", "0.2" if ROLE == "source" else "0.4"))
ETCD_TIMEOUT_S = float(os.environ.get("DCS_TIMEOUT_S", "0.2"))  # per member tried
CATCHUP_S = float(os.environ.get("DB_CATCHUP_S", "5"))
# A deposed writer that does not accept a connection this fast is taken as
# unreachable: its own deadline (and its dead-man switch) fenced it already.
FENCE_CONNECT_S = float(os.environ.get("DB_FENCE_CONNECT_S", "0.2"))
MEMBER_TTL_S = 3
# MariaDB: "not allowed if any GTID has been logged to the binary log".
ER_BINLOG_NOT_EMPTY = 1956
PUBLISH_S = 2.0
LEASE_WRITE_S = 0.25      # how often the guard refreshes ha.lease
LATE_RENEWAL_S = 0.3      # a lease renewal this long after the last one is logged
SWITCHOVER_WAIT_S = 12.0
SYNC_WAIT_S = 10.0        # how long a switchover waits for the leader to count its target in sync


def log(msg):
    """Print one line to the container's log."""
    print(f"db-ha {NODE}: {msg}", file=sys.stderr, flush=True)


def key(rel):
    """The etcd key REL of this node's cluster."""
    return clusters.prefix(CLUSTER) + rel


class Refused(Exception):
    """A step that cannot be taken safely; the message says why."""


class Daemon:
    """One node's HA loop and its helpers."""

    def __init__(self):
        ids = {n: i for n, (i, _) in NODES.items()}
        self.me = Me(NODE, ROLE, ids.get(NODE, 0), SOURCES, PREFERRED)
        self.ids = ids
        # Each node asks a different member first, so the load is spread (any member answers).
        first = ids.get(NODE, 0) % max(1, len(ENDPOINTS))
        spread = ENDPOINTS[first:] + ENDPOINTS[:first]
        self.dcs = dcs.Client(spread, ETCD_TIMEOUT_S)          # the loop's (connections are per thread)
        self.renew_dcs = dcs.Client(spread, ETCD_TIMEOUT_S)    # the renewer's (the member lease)
        self.racing = dcs.Racing(spread, ETCD_TIMEOUT_S)        # the renewer's (the leader key's lease)
        self.lock = threading.RLock()
        self.term = Term()
        self.deadline = 0.0                 # monotonic: the term's demotion deadline
        self.local, self.local_at = None, 0.0
        self.links, self.links_at = None, 0.0
        self.cluster = clusters.Cluster()
        self.plan = None
        self.conn = None
        self.member_lease = 0
        self.published, self.published_at = None, 0.0
        self.ack_seen = (0, 0.0)            # (semi-sync yes_tx, monotonic time it last moved)
        self.yes_tx_at_on = None
        self.busy = threading.Lock()        # held by a tick, or by a rebuild for its whole length
        self.hold_links_until = 0.0         # monotonic: an operator works on the links until then
        self.started = time.monotonic()
        self.fresh, self.fresh_at = False, 0.0   # the standby streams our binlog now (standby_fresh)
        self.repl_password = mariadb._secret("mysql_repl_password")
        # Set by the renewer when a renewal lands past the deadline: the loop
        # looks at once and opens writes again (the fence lasts no longer).
        self.wake = threading.Event()

    # ---- the local server ---------------------------------------------------------

    def _local(self):
        if self.conn is None:
            self.conn = mariadb.local()
        return self.conn

    def _drop(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - gone anyway
                pass
        self.conn = None

    def poll(self, with_links):
        """Return the local server's state (see mariadb.poll), or None when it does not answer."""
        try:
            state = mariadb.poll(self._local(), with_links)
        except (mariadb.DbError, pymysql.MySQLError, OSError):
            self._drop()
            return None
        now = time.monotonic()
        if with_links:
            self.links, self.links_at = state["links"], now
        yes, moved = self.ack_seen
        if state["semi_yes_tx"] != yes or state["semi_waiting"] == 0:
            self.ack_seen = (state["semi_yes_tx"], now)
        with self.lock:
            self.term.waiting_s = now - self.ack_seen[1] if state["semi_waiting"] else 0.0
            if self.yes_tx_at_on is not None:
                self.term.acked_since_on = state["semi_on"] and state["semi_yes_tx"] > self.yes_tx_at_on
        self.local, self.local_at = state, now
        return state

    def unstick_dump_threads(self):
        """Free a binlog dump thread stuck in 'Waiting to finalize termination' (a MariaDB 10.11 bug).

        Seen here after a partition between the masters healed: the old dump
        thread of the peer never ends, and the peer's new connection waits
        behind it for ever ("A slave with the same server_uuid/server_id as
        this slave has connected"), so replication silently stops. Turning
        semi-sync on and off again restarts the acknowledgement receiver,
        which lets the old thread end; only done while semi-sync is off here
        (it is then off again at once: nothing waits, nothing is recorded).
        """
        if self.local is None or self.local["semi_enabled"]:
            return
        stuck = mariadb.one(self._local(), "SELECT COUNT(*) FROM information_schema.processlist"
                                           " WHERE command = 'Binlog Dump' AND state = 'Waiting to finalize"
                                           " termination' AND time >= 5")[0]
        if stuck:
            log("a binlog dump thread is stuck ending (MariaDB bug): restarting semi-sync to free it")
            mariadb.execute(self._local(), "SET GLOBAL rpl_semi_sync_master_enabled = ON",
                            "SET GLOBAL rpl_semi_sync_master_enabled = OFF")

    def standby_fresh(self):
        """True when the standby is streaming this node's binlog now: its copy of our heartbeat is fresh.

        Asked before semi-sync goes on, at most twice a second: a standby
        that is connected but not yet streaming (still reconnecting after a
        partition, or held up by a dump thread that has not ended) would
        make every commit wait until DEGRADE_S.
        """
        now = time.monotonic()
        if now - self.fresh_at < 0.5:
            return self.fresh
        self.fresh_at, self.fresh = now, False
        peer = next((s for s in SOURCES if s != NODE), None)
        if peer is None:
            return False
        try:
            conn = mariadb.remote(NODES[peer][1])
            try:
                row = mariadb.one(conn, "SELECT TIMESTAMPDIFF(MICROSECOND, ts, UTC_TIMESTAMP(6)) FROM lab.heartbeat"
                                        " WHERE server_id = %s", (self.me.server_id,))
            finally:
                conn.close()
            self.fresh = row is not None and row[0] < 500_000
        except (mariadb.DbError, pymysql.MySQLError, OSError):
            self.fresh = False
        return self.fresh

    def install_watchdog(self):
        """Install the dead-man switch (watchdog.sql) in the local server, until it takes."""
        sql = (Path(__file__).parent / "watchdog.sql").read_text(encoding="utf-8")
        statements = [s.strip() for s in re.split(r"^-- ;;$", sql, flags=re.M) if s.strip()]
        while True:
            try:
                mariadb.execute(self._local(), *statements)
                log("dead-man switch installed (ha.watchdog)")
                return
            except (mariadb.DbError, pymysql.MySQLError, OSError) as exc:
                self._drop()
                log(f"waiting for the local server to install the dead-man switch: {exc}")
                time.sleep(1)

    # ---- the loop --------------------------------------------------------------------

    def run(self):
        """Start the helpers and loop for ever."""
        if not ENDPOINTS:
            return self.stand_alone()
        self.install_watchdog()
        for target in (self.renew_forever, self.guard_forever, self.serve):
            threading.Thread(target=target, daemon=True).start()
        log(f"{ROLE} of cluster {CLUSTER}; etcd {', '.join(ENDPOINTS)}; lease {TTL_S} s, renewed every "
            f"{RENEW_S} s, demote {MARGIN_S} s before it can lapse")
        n = 0
        while True:
            started = time.monotonic()
            with self.busy:
                try:
                    self.tick(with_links=n % 3 == 0)
                    if n % 20 == 0:
                        self.unstick_dump_threads()
                except Exception as exc:  # noqa: BLE001 - the loop must go on
                    log(f"tick failed: {type(exc).__name__}: {exc}")
            n += 1
            self.wake.wait(max(0.0, LOOP_S - (time.monotonic() - started)))
            self.wake.clear()

    def stand_alone(self):
        """No etcd (DCS_ENDPOINTS empty): a server outside the lab's HA, as in the unit tests.

        Only the health checks are answered; nothing is fenced or promoted,
        and no dead-man switch is installed.
        """
        threading.Thread(target=self.serve, daemon=True).start()
        log("stand-alone (no DCS_ENDPOINTS): health checks only, no HA loop")
        while True:
            self.poll(with_links=False)
            time.sleep(LOOP_S)

    def term_now(self):
        """A copy of the term with deadline_ok as of now."""
        with self.lock:
            t = Term(**vars(self.term))
            t.deadline_ok = bool(t.token) and time.monotonic() < self.deadline
        return t

    def tick(self, with_links):
        """One round: poll, read etcd, plan, act, publish."""
        local = self.poll(with_links)
        held = time.monotonic() < self.hold_links_until
        if local is not None and (held or not with_links):
            # Link actions need fresh link states, and none while an operator holds the links.
            local = {**local, "links": self.links, "links_fresh": False}
        self.cluster = clusters.read(self.dcs, CLUSTER, deadline=time.monotonic() + 0.3)
        if local is not None:
            local = {**local, "uptime_s": time.monotonic() - self.started}
        if local is not None and self.term.token and not local["semi_enabled"] and local["semi_clients"]:
            local = {**local, "standby_fresh": self.standby_fresh()}
        p = plan(self.me, self.term_now(), local, self.cluster, time.time())
        for name, args in p.actions:
            try:
                getattr(self, "act_" + name)(**args)
            except (Refused, mariadb.DbError, dcs.DcsError, pymysql.MySQLError, OSError) as exc:
                log(f"{name} {args or ''}: {exc}")
                self._drop()
        if p.actions and any(n == "link" for n, _ in p.actions):
            self.links_at = 0.0
        if held:
            p.reason += f"; links held by an operator for {self.hold_links_until - time.monotonic():.0f} s more"
        if self.plan is None or (p.state, p.reason.split("; links held")[0]) != (
                self.plan.state, self.plan.reason.split("; links held")[0]):
            log(f"{p.state}: {p.reason}")
        self.plan = p
        self.publish(p, local)

    def publish(self, p, local):
        """Keep this node's member key current (on a change, and every PUBLISH_S)."""
        view = {"role": ROLE, "state": p.state, "reason": p.reason[:300],
                "read_only": None if local is None else local["read_only"],
                "pos": None if local is None else gtid.format(local["pos"]), "term": self.term.token}
        now = time.monotonic()
        # The position moves with every heartbeat: it is refreshed every
        # PUBLISH_S, not a reason to write to etcd (each put is a raft write).
        changed = {k: v for k, v in view.items() if k != "pos"}
        if changed == self.published and now - self.published_at < PUBLISH_S:
            return
        try:
            if not self.member_lease:
                self.member_lease, _ = self.dcs.grant(MEMBER_TTL_S, deadline=now + 0.5)
            self.dcs.put(key(f"members/{NODE}"), {**view, "at": round(time.time(), 3)},
                         lease=self.member_lease, deadline=now + 0.5)
            self.published, self.published_at = changed, now
        except dcs.DcsError as exc:
            if "lease not found" in str(exc):
                self.member_lease = 0
            self.published = None

    # ---- the lease -------------------------------------------------------------------

    def renew_forever(self):
        """Renew the leader key's lease every RENEW_S while leading; the member lease every second."""
        last_member = 0.0
        last_renewed, renewing = 0.0, 0
        while True:
            started = time.monotonic()
            with self.lock:
                token, lease = self.term.token, self.term.lease
            if token != renewing:      # a new term: its first renewal is not late
                last_renewed, renewing = started, token
            if token:
                try:
                    left = self.racing.keepalive(lease, deadline=started + RENEW_BOUND_S)
                    with self.lock:
                        if self.term.token == token:
                            if left <= 0:
                                self.term.lost = True
                            else:
                                spare = self.deadline - time.monotonic()
                                self.deadline = max(self.deadline, started + min(left, TTL_S) - MARGIN_S)
                                if spare < 0:
                                    self.wake.set()
                                if started - last_renewed > LATE_RENEWAL_S:
                                    # README's figure for etcd's own faults comes from these lines.
                                    log(f"lease renewed after a gap of {started - last_renewed:.2f} s "
                                        f"({spare:.2f} s before the deadline)")
                    last_renewed = started
                except dcs.DcsError:
                    pass   # the deadline stays where it was
            if self.member_lease and started - last_member >= 1.0:
                try:
                    if self.renew_dcs.keepalive(self.member_lease, deadline=started + 0.3) <= 0:
                        self.member_lease = 0
                    last_member = started
                except dcs.DcsError:
                    pass
            time.sleep(max(0.0, RENEW_S - (time.monotonic() - started)))

    def guard_forever(self):
        """Fence this server the moment the deadline passes; keep ha.lease current while writable."""
        conn, written = None, 0.0
        while True:
            time.sleep(0.02)
            with self.lock:
                writable, deadline, token = self.term.writable, self.deadline, self.term.token
            if not writable:
                continue
            now = time.monotonic()
            try:
                if now >= deadline:
                    log("the lease was not renewed in time: fencing myself")
                    mariadb.fence(mariadb.local)
                    with self.lock:
                        if self.term.token == token:
                            self.term.writable = False
                elif now - written >= LEASE_WRITE_S:
                    conn = conn or mariadb.local()
                    self.write_lease(conn, token, deadline)
                    written = now
            except (mariadb.DbError, pymysql.MySQLError, OSError) as exc:
                log(f"guard: {exc}")
                if conn is not None:
                    conn.close()
                conn = None

    @staticmethod
    def write_lease(conn, token, deadline):
        """Keep TOKEN's deadline in the server (UTC), for its dead-man switch and the observers.

        The switch's moment is the deadline plus the guard's gentle fence
        (mariadb.GENTLE_S): a live guard asks for read_only at the deadline
        and kills sessions only past that, and the switch, which kills
        first, steps in only when the guard did not (frozen helpers). Both
        come before the lease can lapse: read_only at sent + 0.85 s,
        sessions killed by sent + 0.95 s at the latest, etcd's lease ends
        at sent + 1 s at the earliest.
        """
        left_us = max(0, int((deadline - time.monotonic() + mariadb.GENTLE_S) * 1e6))
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute("REPLACE INTO ha.lease (id, token, deadline) VALUES"
                        " (1, %s, UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND)", (token, left_us))

    # ---- actions (the plan's verbs) ------------------------------------------------------

    def act_demote(self, why):
        """Turn read_only on (sessions killed) now."""
        with self.lock:
            self.term.writable = False
        pos = mariadb.fence(mariadb.local)
        log(f"demoted ({why}): read_only on, binlog at {gtid.format(pos)}")

    def act_step_down(self, why):
        """Leave the term: read-only, lease revoked (best effort)."""
        with self.lock:
            lease, self.term = self.term.lease, Term()
            self.deadline = 0.0
        self.yes_tx_at_on = None
        if self.local is None or not self.local["read_only"]:
            try:
                mariadb.fence(mariadb.local)
            except mariadb.DbError as exc:
                log(f"stepping down, fencing failed: {exc}")
        try:
            self.dcs.revoke(lease, deadline=time.monotonic() + 0.3)
        except dcs.DcsError:
            pass
        log(f"stepped down: {why}")

    def act_semi_sync(self, on):
        """Turn the local semi-sync master side on or off."""
        mariadb.execute(self._local(), f"SET GLOBAL rpl_semi_sync_master_enabled = {'ON' if on else 'OFF'}")
        self.yes_tx_at_on = (self.local or {}).get("semi_yes_tx", 0) if on else None
        with self.lock:
            self.term.acked_since_on = False
        log(f"semi-sync {'on: commits wait for the standby' if on else 'off'}")

    def _txn_on_term(self, ops, token=None):
        """Run OPS in a transaction that succeeds only while we hold the key in TOKEN's term."""
        token = token or self.term.token
        ok, _ = self.dcs.txn([dcs.Client.compare(key("leader"), "CREATE", token)], ops,
                             deadline=time.monotonic() + 0.5)
        if not ok:
            raise Refused(f"the leader key is no longer ours (term {token})")

    def _sync_op(self, standby, **extra):
        return dcs.Client.put_op(key("sync"), {"leader": NODE, "token": self.term.token, "standby": standby,
                                               "at": round(time.time(), 3), **extra})

    def act_degrade(self, why):
        """Record that no standby is in sync, THEN stop waiting for it (record first, then degrade)."""
        self._txn_on_term([self._sync_op(None, why=why)])
        self.act_semi_sync(on=False)
        log(f"recorded no standby in sync, then went asynchronous ({why})")

    def act_record_sync(self, standby):
        """Record STANDBY as in sync (semi-sync is on and it acknowledged since), or none."""
        self._txn_on_term([self._sync_op(standby)])
        log(f"recorded {standby or 'no standby'} in sync")

    def act_link(self, source, run):
        """Make the link from SOURCE run (created if missing) or stop."""
        conn = self._local()
        if run:
            done = mariadb.configure_link(conn, source, NODES[source][1], self.repl_password, self.me.server_id)
            if done:
                log(f"{done} the link from {source}")
            try:
                peer = mariadb.remote(NODES[source][1])
                try:
                    source_pos = gtid.parse(mariadb.one(peer, "SELECT @@gtid_binlog_pos")[0])
                finally:
                    peer.close()
                if mariadb.align_own_domains(conn, source_pos, self.me.server_id):
                    log(f"asking {source} for this node's own domains where it holds them")
            except (mariadb.DbError, pymysql.MySQLError):
                pass   # it does not answer: the link retries by itself, and this again if it fails
            # Both threads stopped first: an IO thread restarted beside a running
            # SQL thread resumes from where it stopped (Gtid_IO_Pos), not from
            # the slave position, and a source rebuilt since holds no such place.
            # An IO thread still stuck connecting holds the stop: try again at
            # the next look at the links rather than hold up the loop.
            if not mariadb.stop_link(mariadb.local, source, wait_s=0.3):
                log(f"the link from {source} is still stopping; starting it later")
                return
            mariadb.start_link(conn, source)
            log(f"replicating from {source}")
        else:
            mariadb.stop_link(mariadb.local, source)
            log(f"stopped the link from {source} (it is not clean: deposed or quarantined)")

    def act_open_writes(self):
        """Turn read_only off, if the term's deadline is still ahead (after ha.lease holds it)."""
        with self.lock:
            token, deadline = self.term.token, self.deadline
        if time.monotonic() >= deadline:
            raise Refused("the lease deadline has passed")
        conn = self._local()
        self.write_lease(conn, token, deadline)
        mariadb.execute(conn, "SET GLOBAL read_only = OFF")
        with self.lock:
            if self.term.token == token:
                self.term.writable = True
        log(f"writable (term {token})")

    def act_quarantine(self, why, errant, deposed, cutoff):
        """Record that this node must not be replicated from (WHY), until it is rebuilt."""
        value = {"why": why, "errant": errant, "deposed": deposed, "cutoff": cutoff,
                 "pos": gtid.format(self.local["pos"]), "at": round(time.time(), 3)}
        self.dcs.txn([dcs.Client.compare(key(f"quarantine/{NODE}"), "CREATE", 0)],
                     [dcs.Client.put_op(key(f"quarantine/{NODE}"), value)], deadline=time.monotonic() + 0.5)
        log(f"QUARANTINED: {why}; nobody replicates from {NODE} until `make rebuild NODE={NODE}`")

    def act_rejoin(self):
        """Clear this node's deposed marker: it holds nothing past the cut-off."""
        marker, revision = self.cluster.deposed[NODE]
        ok, _ = self.dcs.txn([dcs.Client.compare(key(f"deposed/{NODE}"), "MOD", revision)],
                             [dcs.Client.delete_op(key(f"deposed/{NODE}"))], deadline=time.monotonic() + 0.5)
        if ok:
            log(f"rejoined: nothing past the cut-off {marker['cutoff']} of term {marker['token']}")

    # ---- taking over -------------------------------------------------------------------

    def act_take_over(self, old, force):
        """Take the leader key if nobody holds it, then promote this node; release the key on failure."""
        sent = time.monotonic()
        lease, ttl = self.dcs.grant(TTL_S, deadline=sent + 0.5)
        ok, token = self.dcs.txn([dcs.Client.compare(key("leader"), "CREATE", 0)],
                                 [dcs.Client.put_op(key("leader"), {"node": NODE, "at": round(time.time(), 3)},
                                                    lease)], deadline=sent + 0.5)
        if not ok:
            self.dcs.revoke(lease, deadline=time.monotonic() + 0.3)
            return
        with self.lock:
            self.term = Term(token=token, lease=lease)
            self.deadline = sent + min(ttl, TTL_S) - MARGIN_S
        log(f"took the leader key (term {token}){f' from {old}' if old else ''}{' (FORCED)' if force else ''}")
        try:
            self.promote(old, token, force)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the key must not stay with a non-writer
            log(f"promotion failed, releasing the key: {type(exc).__name__}: {exc}")
            try:
                self.dcs.txn([dcs.Client.compare(key("leader"), "CREATE", token)],
                             [dcs.Client.delete_op(key("leader"))], deadline=time.monotonic() + 0.5)
            except dcs.DcsError:
                pass
            self.act_step_down("promotion failed")

    def _parallel(self, jobs, timeout_s=4.0):
        """Run JOBS ({name: function}) in threads; return {name: result or the exception}."""
        out = {}

        def run(name, fn):
            try:
                out[name] = fn()
            except Exception as exc:  # noqa: BLE001 - returned to the caller
                out[name] = exc
        threads = [threading.Thread(target=run, args=item, daemon=True) for item in jobs.items()]
        for t in threads:
            t.start()
        deadline = time.monotonic() + timeout_s
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return {n: out.get(n, TimeoutError("no answer in time")) for n in jobs}

    def _replica_cut(self, node, old):
        """On replica NODE: stop its link from OLD (nothing more of OLD's arrives), then read its position."""
        address = NODES[node][1]
        conn = mariadb.remote(address)
        try:
            if old and old != NODE:
                mariadb.stop_link(lambda: mariadb.remote(address), old, io_only=True)
            return gtid.parse(mariadb.one(conn, "SELECT @@gtid_binlog_pos")[0])
        finally:
            conn.close()

    def promote(self, old, token, force):
        """Become the writer after taking the key: fence OLD, catch up, cut OLD off, record, open writes."""
        conn = self._local()
        replicas = [n for n in NODES if n not in SOURCES]
        jobs = {r: (lambda r=r: self._replica_cut(r, old)) for r in replicas}
        if old and old != NODE:
            jobs["old"] = lambda: mariadb.fence(lambda: mariadb.remote(NODES[old][1], connect_s=FENCE_CONNECT_S))
        got = self._parallel(jobs)
        fenced = got.get("old") if isinstance(got.get("old"), dict) else None
        if old and old != NODE:
            log(f"{old}: {'fenced through its server, binlog at ' + gtid.format(fenced) if fenced else 'unreachable (' + str(got['old'])[:100] + '): its own deadline has passed'}")
            if fenced is None:
                # Nothing more may arrive from it; what did arrive is applied.
                # A connected IO thread stops at once; one stuck connecting to
                # a vanished node receives nothing and stops later by itself.
                mariadb.stop_link(mariadb.local, old, io_only=True, wait_s=0.05)
        positions = [p for p in got.values() if isinstance(p, dict)]
        received = gtid.union(*(link["io_pos"] for link in mariadb.links(conn).values()))
        target = catchup_target(self.me, old, [received, *positions])
        if not self._catch_up(conn, old, fenced, target, got, force):
            raise Refused(f"could not reach {gtid.format(target)} in {CATCHUP_S} s")
        if old and old != NODE and fenced is not None:
            mariadb.stop_link(mariadb.local, old, io_only=True)
        pos = gtid.parse(mariadb.one(conn, "SELECT @@gtid_binlog_pos")[0])
        ops = [self._sync_op(None),
               dcs.Client.put_op(key("promotion"), {"token": token, "leader": NODE, "previous": old,
                                                    "cutoff": gtid.format(gtid.app_domains(pos)),
                                                    "forced": force, "at": round(time.time(), 3)})]
        if old and old != NODE:
            domain = self.ids[old]
            ops.append(dcs.Client.put_op(key(f"deposed/{old}"), {
                "token": token, "domain": domain, "cutoff": pos.get(domain, (0, 0))[1], "by": NODE,
                "at": round(time.time(), 3)}))
        self._txn_on_term(ops, token)
        if (self.local or {}).get("semi_enabled"):
            self.act_semi_sync(on=False)
        with self.lock:
            self.term.promoted = True
        self.act_open_writes()
        log(f"promoted (term {token}): caught up to {gtid.format(target) or 'nothing to catch up'}")

    def _catch_up(self, conn, old, fenced, target, got, force):
        """Apply everything up to TARGET: from the relay log, the fenced OLD, or the replica that has most."""
        if mariadb.wait_applied(conn, target, 0.3):
            return True
        if fenced is not None:
            mariadb.start_link(conn, old)
            if mariadb.wait_applied(conn, target, CATCHUP_S):
                return True
        else:
            ahead = [r for r, p in got.items() if r != "old" and isinstance(p, dict) and gtid.covers(p, target)]
            if ahead:
                log(f"catching up from {ahead[0]}, which holds more of {old}'s writes than this node")
                if self._catch_up_from(conn, ahead[0], target):
                    return True
        if force:
            log(f"FORCED: promoting without {gtid.format(target)}; writes only {old} had are lost")
            return True
        return False

    def _catch_up_from(self, conn, node, target):
        """Replicate from NODE over a temporary link until TARGET is applied."""
        name = "catchup"
        with conn.cursor() as cur:
            cur.execute(f"CHANGE MASTER '{name}' TO MASTER_HOST=%s, MASTER_PORT=3306, MASTER_USER='lab_repl',"
                        " MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
                        (NODES[node][1], self.repl_password))
        try:
            mariadb.start_link(conn, name)
            return mariadb.wait_applied(conn, target, CATCHUP_S)
        finally:
            mariadb.stop_link(mariadb.local, name, wait_s=5)
            mariadb.execute(conn, f"RESET SLAVE '{name}' ALL")

    # ---- operator requests -----------------------------------------------------------------

    def act_hand_over(self, to, force, id):  # noqa: A002 - the request's field
        """Planned switchover to TO: refuse unless TO is in sync; else fence, then give the key up."""
        sync = self.cluster.sync or {}
        kv = self.cluster.switchover
        if not force and sync.get("standby") != to:
            value = {**kv.value, "result": f"refused by {NODE}: {to} is not in sync with it (its standby in sync: "
                                           f"{sync.get('standby') or 'none'})"}
            self.dcs.txn([dcs.Client.compare(key("switchover"), "MOD", kv.mod_revision)],
                         [dcs.Client.put_op(key("switchover"), value)], deadline=time.monotonic() + 0.5)
            log(value["result"])
            return
        with self.lock:
            self.term.writable = False
        pos = mariadb.fence(mariadb.local)
        self._txn_on_term([dcs.Client.delete_op(key("leader"))])
        log(f"handing over to {to}: fenced at {gtid.format(pos)}, leader key given up")
        self.act_step_down(f"handed over to {to}")

    def switchover(self, force):
        """Make THIS node the writer (make promote / make failback): a planned switchover, or FORCE."""
        store = dcs.Client(ENDPOINTS, ETCD_TIMEOUT_S)   # this request's own: the loop's is not shared
        c = clusters.read(store, CLUSTER)
        leader = c.leader_node
        if not c.reachable:
            return False, f"etcd does not answer: {c.error}"
        if leader == NODE:
            return True, f"writes already go to {NODE}"
        if ROLE != "source":
            return False, f"{NODE} is not a source"
        if NODE in c.quarantine:
            return False, f"{NODE} is quarantined: make rebuild NODE={NODE} first"
        if not force:
            if leader is None:
                return False, "no leader to hand over from; the HA loops promote the node that cannot lack a write"
            link = (self.links or {}).get(leader, {})
            stamp = (self.local or {}).get("heartbeats", {}).get(self.ids.get(leader))
            age = round(self.local["now"] - stamp[0], 3) if stamp else None
            if link.get("io") != "Yes" or link.get("sql") != "Yes" or age is None or age > 1.0:
                return False, (f"{NODE} is not keeping up with {leader} (link io={link.get('io')} "
                               f"sql={link.get('sql')}, newest heartbeat {age} s old): refused")
            if not self._counted_in_sync(store, leader):
                return False, (f"{leader} has not counted {NODE} as its standby in sync within {SYNC_WAIT_S:.0f} s "
                               "(make status: leader ... in sync): refused")
        request_id = secrets.token_hex(6)
        request = {"to": NODE, "from": leader, "force": force, "id": request_id, "at": round(time.time(), 3)}
        store.put(key("switchover"), request)
        try:
            if force and leader:
                store.delete(key("leader"))
                log(f"FORCED: deleted {leader}'s leader key")
            deadline = time.monotonic() + SWITCHOVER_WAIT_S
            while time.monotonic() < deadline:
                time.sleep(0.1)
                now = clusters.read(store, CLUSTER)
                sw = now.switchover.value if now.switchover is not None else {}
                if sw.get("id") == request_id and sw.get("result"):
                    return False, sw["result"]
                if now.leader_node == NODE and self.term.promoted and self.term.writable:
                    return True, f"{NODE} takes writes (term {self.term.token}){' (FORCED)' if force else ''}"
            return False, f"{NODE} did not take over within {SWITCHOVER_WAIT_S} s (make status, make logs NODE={NODE})"
        finally:
            kv = store.get(key("switchover"))
            if kv is not None and (kv.value or {}).get("id") == request_id:
                store.txn([dcs.Client.compare(key("switchover"), "MOD", kv.mod_revision)],
                             [dcs.Client.delete_op(key("switchover"))])

    @staticmethod
    def _counted_in_sync(store, leader):
        """Wait (bounded) until LEADER's sync key names this node in LEADER's term; return whether it did.

        A node keeping up again (restarted, rejoined after being deposed) is
        counted in sync by the leader a round or two later; a switchover asked
        in between would be refused by the leader for no lasting reason.
        """
        deadline = time.monotonic() + SYNC_WAIT_S
        while True:
            c = clusters.read(store, CLUSTER)
            sync = c.sync or {}
            if c.leader_node == leader and sync.get("standby") == NODE and sync.get("token") == c.token:
                return True
            if c.leader_node != leader or time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def rebuild(self):
        """Re-seed this node from the leader (a dump), drop its quarantine and rejoin; return (ok, message)."""
        store = dcs.Client(ENDPOINTS, ETCD_TIMEOUT_S)
        c = clusters.read(store, CLUSTER)
        leader = c.leader_node
        if leader is None or leader == NODE:
            return False, "a rebuild needs another node as the leader" if leader else "no leader to rebuild from"
        with self.busy:        # no tick runs until the rebuild is done
            return self._rebuild(store, leader)

    def _rebuild(self, store, leader):
        try:
            with self.lock:
                self.term.writable = False
            conn = self._local()
            mariadb.fence(mariadb.local)
            for source in mariadb.links(conn):
                mariadb.execute(conn, f"STOP SLAVE '{source}'", f"RESET SLAVE '{source}' ALL")
            dump = Path("/var/lib/mysql/lab-rebuild.sql")
            password = mariadb._secret("mysql_ha_password")
            with open(dump, "wb") as out:
                r = subprocess.run(["mariadb-dump", f"--host={NODES[leader][1]}", f"--user={mariadb.HA_USER}",
                                    f"--password={password}", "--single-transaction", "--gtid", "--master-data=2",
                                    "--triggers", "--databases", "lab"], stdout=out, stderr=subprocess.PIPE,
                                   timeout=300, check=False)
            if r.returncode != 0:
                return False, f"the dump from {leader} failed: {r.stderr.decode(errors='replace')[-300:]}"
            # mariadb-dump puts the snapshot's GTID position near the end, commented out.
            pos = next((line.split("'")[1] for line in reversed(dump.read_text(encoding="utf-8", errors="replace")
                                                                 .splitlines()) if "gtid_slave_pos='" in line), None)
            if pos is None:
                return False, "the dump carries no GTID position"
            # The errant transactions go with the binary log; this node's
            # domains then go on after what the others have of them (never
            # from 1), and it replicates from the snapshot's position. In
            # one go: the heartbeat writer (killed here) needs a second to
            # come back, and its next stamp must follow the new state.
            # (The slave position first: MariaDB checks it against a binary log
            # that is empty only until the state is set.)
            self._reset_binlog(conn, pos)
            with open(dump, "rb") as src:
                r = subprocess.run(["mariadb", "--init-command=SET SESSION sql_log_bin = 0"], stdin=src,
                                   stderr=subprocess.PIPE, timeout=300, check=False)
            dump.unlink()
            if r.returncode != 0:
                return False, f"loading the dump failed: {r.stderr.decode(errors='replace')[-300:]}"
            store.delete(key(f"quarantine/{NODE}"))
            store.delete(key(f"deposed/{NODE}"))
            log(f"rebuilt from {leader} at {pos}")
            return True, f"{NODE} rebuilt from {leader} at {pos}; it rejoins as a replica of {leader}"
        finally:
            self._drop()
            self.links_at = 0.0

    @staticmethod
    def _reset_binlog(conn, pos, tries=5):
        """Empty the binary log and set the GTID state to POS, with no heartbeat in between.

        KILL returns before the killed session is gone: a beat it was
        running may still reach the binary log after RESET MASTER (MariaDB
        then refuses the slave position, error 1956). So wait until the
        heartbeat writer's sessions are gone, and go again if one slipped
        in (the writer naps a second before it reconnects).
        """
        for attempt in range(1, tries + 1):
            mariadb.kill_sessions(conn, ("lab_beat",))
            deadline = time.monotonic() + 2.0
            while mariadb.rows(conn, "SELECT id FROM information_schema.processlist WHERE user = 'lab_beat'") \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            try:
                with conn.cursor() as cur:
                    cur.execute("RESET MASTER")
                    cur.execute("SET GLOBAL gtid_slave_pos = %s", (pos,))
                    cur.execute("SET GLOBAL gtid_binlog_state = %s", (pos,))
                return
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != ER_BINLOG_NOT_EMPTY or attempt == tries:
                    raise
                log(f"rebuild: a transaction reached the binary log during its reset ({exc}); again")

    # ---- what HAProxy and operators see ---------------------------------------------------

    def alive(self):
        """True while the local server answered a poll within 2 s."""
        return self.local is not None and time.monotonic() - self.local_at < 2.0

    def primary(self):
        """(True, why) only on the writable leader, before its deadline."""
        with self.lock:
            t, deadline = self.term, self.deadline
        if not (t.token and t.promoted and t.writable):
            return False, "not the writer"
        if time.monotonic() >= deadline:
            return False, "the lease deadline has passed"
        if not self.alive() or self.local["read_only"]:
            return False, "the server is read-only or does not answer"
        return True, f"the writer (term {t.token})"

    def readable(self):
        """(True, why) while this node may serve reads."""
        if not self.alive():
            return False, "the server does not answer"
        if NODE in self.cluster.quarantine:
            return False, "quarantined"
        if ROLE == "source":
            return True, "a source"
        others = [ts for sid, (ts, _) in self.local["heartbeats"].items() if sid != self.local["server_id"]]
        lag = round((self.local["now"] - max(others)) * 1000) if others else None
        if lag is not None and lag <= MAX_LAG_MS:
            return True, f"replica, lag {lag} ms"
        return False, f"replica lag {lag} ms > {MAX_LAG_MS} ms (or no heartbeat)"

    def status(self):
        """Everything as JSON-able data (GET /status, make status)."""
        with self.lock:
            t = dict(vars(self.term))
            left = round(self.deadline - time.monotonic(), 3) if self.term.token else None
        local = self.local or {}
        c = self.cluster
        return {"node": NODE, "role": ROLE, "cluster": CLUSTER, "alive": self.alive(),
                "state": self.plan.state if self.plan else "starting",
                "reason": self.plan.reason if self.plan else "", "term": t, "deadline_left_s": left,
                "primary": self.primary()[0], "read_only": local.get("read_only"),
                "pos": gtid.format(local.get("pos", {})), "semi_sync": {
                    k: local.get(k) for k in ("semi_enabled", "semi_on", "semi_clients", "semi_waiting")},
                "links": {s: {k: v for k, v in link.items() if k != "io_pos"} for s, link in (self.links or {}).items()},
                "etcd": {"reachable": c.reachable, "leader": c.leader_node, "token": c.token, "sync": c.sync,
                         "deposed": {n: v for n, (v, _) in c.deposed.items()}, "quarantine": c.quarantine,
                         "error": c.error}}

    def serve(self):
        """Answer HTTP on PORT."""
        Handler.daemon = self
        server = Server(("0.0.0.0", PORT), Handler)
        server.serve_forever()


class Handler(BaseHTTPRequestHandler):
    """The HTTP face of the daemon."""

    daemon = None
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):  # noqa: D102 - checks arrive many times a second
        pass

    def _reply(self, code, body):
        data = (json.dumps(body) if not isinstance(body, str) else body + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json" if not isinstance(body, str) else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 - http.server's name
        """Health checks and the status, from memory: no query per check."""
        d = self.daemon
        if self.path == "/status":
            return self._reply(200, d.status())
        if self.path == "/alive":
            return self._reply(200, "up") if d.alive() else self._reply(503, "down: the server does not answer")
        checks = {"/primary": d.primary, "/read": d.readable}
        if self.path in checks:
            ok, why = checks[self.path]()
            return self._reply(200 if ok else 503, ("up: " if ok else "down: ") + why)
        return self._reply(404, "unknown path; see labha/daemon.py")

    def do_POST(self):  # noqa: N802 - http.server's name
        """Operator requests, from inside the container only (db-ha's CLI)."""
        if self.client_address[0] != "127.0.0.1":
            return self._reply(403, {"ok": False, "message": "operator requests come from inside the node only"})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        except ValueError as exc:
            return self._reply(400, {"ok": False, "message": f"the body is not JSON: {exc}"})
        d = self.daemon
        try:
            if self.path == "/switchover":
                ok, message = d.switchover(bool(body.get("force")))
            elif self.path == "/hold":
                seconds = float(body.get("seconds", 0))
                if not 0 <= seconds <= 3600:
                    return self._reply(400, {"ok": False, "message": "seconds must be between 0 and 3600"})
                d.hold_links_until = time.monotonic() + seconds
                ok, message = True, (f"links held for {seconds:.0f} s: the HA loop starts and stops none"
                                     if seconds else "links released")
            elif self.path == "/rebuild":
                ok, message = d.rebuild()
            else:
                return self._reply(404, {"ok": False, "message": "unknown request"})
        except Exception as exc:  # noqa: BLE001 - tell the operator
            ok, message = False, f"{type(exc).__name__}: {exc}"
        return self._reply(200 if ok else 409, {"ok": ok, "message": message})


class Server(ThreadingHTTPServer):
    """The HTTP server; a client that hangs up early (HAProxy's checks do) is no error."""

    daemon_threads = True

    def handle_error(self, request, client_address):  # noqa: D102 - socketserver's hook
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


