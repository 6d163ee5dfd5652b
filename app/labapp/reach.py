"""Whether this web process reaches the database: what the web LBs check before sending it users.

A web node alive but cut off from the db VIP would answer 503 to every
user stuck to it. So each process probes the database's LBs every
DB_REACH_EVERY_S (SELECT 1 on the read port and on the write port, apart:
either one answering will do, so a writer failover, or a replica lost,
which every node sees, takes no node out of the rotation) and `GET /readyz?for=lb`
answers 503 once no probe succeeded for DB_REACH_GRACE_S. The answer is the
last probe's, never a probe of its own: a check from the LBs costs no
database round trip and cannot hang behind a dead one.

When every node fails this check (the db LBs are down for everyone), the
web LBs fall back to the same nodes checked for liveness only
(haproxy/conf/lb.cfg, backend web_degraded): cached pages still serve, and
the rest get the app's own 503 with Retry-After.
"""
import threading
import time

from . import background, db

PATHS = ("read", "write")


class Probe:
    """When this process last reached the database's LBs: one loop per port, each every DB_REACH_EVERY_S.

    The two ports are probed apart, each in its own thread, so that one that
    hangs (a read replica killed under a pooled connection waits out the
    read timeout) does not hold the other's answer back.
    """

    def __init__(self, app):
        self.app = app
        now = time.monotonic()
        self.ok_at = {path: now for path in PATHS}   # a process just started is given the grace period
        self.errors = {path: None for path in PATHS}
        self.stopping = threading.Event()

    @property
    def error(self):
        """The latest errors, or None while either port answers."""
        if any(e is None for e in self.errors.values()):
            return None
        return "; ".join(f"{e}" for e in self.errors.values())

    def probe_once(self, path):
        """Send SELECT 1 to PATH; record the time of a success or the error (logged when it changes)."""
        was = self.error
        with self.app.app_context():
            error = db.ping(path)
        if error is None:
            self.ok_at[path] = time.monotonic()
        self.errors[path] = error
        now = self.error
        if (now is None) != (was is None):   # log the changes, not every probe
            log = self.app.logger.info if now is None else self.app.logger.warning
            log("db reach: %s", "the database's LBs answer again" if now is None else now)

    def _loop(self, path):
        while not self.stopping.wait(self.app.config["DB_REACH_EVERY_S"]):
            self.probe_once(path)

    def run(self):
        """Probe the write port in another thread and the read port in this one, until stopped."""
        threading.Thread(target=self._loop, args=("write",), name="db-reach-write", daemon=True).start()
        self._loop("read")

    def verdict(self):
        """(reachable, why): unreachable once neither port answered a probe for DB_REACH_GRACE_S."""
        silent_s = time.monotonic() - max(self.ok_at.values())
        if silent_s <= self.app.config["DB_REACH_GRACE_S"]:
            return True, "the database's LBs answer"
        return False, f"no answer from the database's LBs for {silent_s:.1f} s: {self.error}"


def verdict(app):
    """(reachable, why) for this process; with DB_REACH_EVERY_S 0 (tests), a probe made now."""
    if not app.config["DB_REACH_EVERY_S"]:
        probe = Probe(app)
        for path in PATHS:
            probe.probe_once(path)
        return (True, "the database's LBs answer") if probe.error is None else (False, probe.error)
    return background.start_per_process(app, "db-reach", Probe).verdict()
