"""Whether this web process reaches the database: what the web LBs check before sending it users.

A web node alive but cut off from the db VIP would answer 503 to every
user stuck to it. So each process probes the database's LBs every
DB_REACH_EVERY_S (SELECT 1 on the read port, else the write port: during a
writer failover the read port still answers, and no node leaves the
rotation for a failover that every node sees) and `GET /readyz?for=lb`
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


class Probe:
    """The last time this process reached the database's LBs, refreshed every DB_REACH_EVERY_S."""

    def __init__(self, app):
        self.app = app
        self.ok_at = time.monotonic()   # a process just started is given the grace period
        self.error = None
        self.stopping = threading.Event()

    def probe_once(self):
        """Try the read port, then the write port; record the time of a success or the error."""
        with self.app.app_context():
            error = db.ping("read")
            if error is not None and db.ping("write") is None:
                error = None
        if error is None:
            self.ok_at = time.monotonic()
        if (error is None) != (self.error is None):   # log the changes, not every probe
            log = self.app.logger.info if error is None else self.app.logger.warning
            log("db reach: %s", "the database's LBs answer again" if error is None else error)
        self.error = error

    def run(self):
        while not self.stopping.wait(self.app.config["DB_REACH_EVERY_S"]):
            self.probe_once()

    def verdict(self):
        """(reachable, why): unreachable once no probe succeeded for DB_REACH_GRACE_S."""
        silent_s = time.monotonic() - self.ok_at
        if silent_s <= self.app.config["DB_REACH_GRACE_S"]:
            return True, "the database's LBs answer"
        return False, f"no answer from the database's LBs for {silent_s:.1f} s: {self.error}"


def verdict(app):
    """(reachable, why) for this process; with DB_REACH_EVERY_S 0 (tests), a probe made now."""
    if not app.config["DB_REACH_EVERY_S"]:
        probe = Probe(app)
        probe.probe_once()
        return (True, "the database's LBs answer") if probe.error is None else (False, probe.error)
    return background.start_per_process(app, "db-reach", Probe).verdict()
