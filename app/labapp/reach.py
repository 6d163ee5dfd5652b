"""Whether this web process reaches the database: what the web LBs check before sending it users.

A web node alive but cut off from the db VIP would answer 503 to every
user stuck to it. So each process probes the database's LBs (the read port
and the write port, apart: either one answering will do, so a writer
failover, or a replica lost, which every node sees, takes no node out of
the rotation) and `GET /readyz?for=lb` answers 503 once no probe succeeded
for DB_REACH_GRACE_S. The answer is the last probes', never a probe of its
own: a check from the LBs costs no database round trip and cannot hang
behind a dead one.

Each port is probed every DB_REACH_EVERY_S by PROBERS threads in turn, each
on a connection of its own, each probe bounded by DB_REACH_TIMEOUT_S (a
COM_PING, or a new connection once the last one failed). One probe that
hangs therefore silences that port for at most a timeout, never for the
grace: with one connection and the request path's 5 s timeout, a 30 %
lossy link (TCP's backoff stalled a ping for up to 4.9 s, measured) or a
connection black-holed when the db VIP moved left a node that new
connections reached unready, and the LBs moved its users for nothing.

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
    """When this process last reached each of the database's LBs' ports."""

    PROBERS = 3

    def __init__(self, app):
        self.app = app
        now = time.monotonic()
        self.ok_at = {path: now for path in PATHS}   # a process just started is given the grace period
        self.errors = {path: None for path in PATHS}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    @property
    def error(self):
        """The latest errors, or None while either port answers."""
        if any(e is None for e in self.errors.values()):
            return None
        return "; ".join(f"{e}" for e in self.errors.values())

    def probe_once(self, pinger):
        """Probe PINGER's path once; record the time of a success or the error (logged when it changes)."""
        with self.app.app_context():
            error = pinger.ping()
        with self.lock:
            was = self.error
            if error is None:
                self.ok_at[pinger.path] = time.monotonic()
            self.errors[pinger.path] = error
            now = self.error
        if (now is None) != (was is None):   # log the changes, not every probe
            log = self.app.logger.info if now is None else self.app.logger.warning
            log("db reach: %s", "the database's LBs answer again" if now is None else now)

    def _prober(self, path, turn):
        """Probe PATH on a connection of this thread's, at TURN of PROBERS, every PROBERS x DB_REACH_EVERY_S."""
        cfg = self.app.config
        pinger = db.Pinger(path, cfg["DB_REACH_TIMEOUT_S"])
        every = cfg["DB_REACH_EVERY_S"]
        try:
            if not self.stopping.wait(every * turn):
                while True:
                    started = time.monotonic()
                    self.probe_once(pinger)
                    if self.stopping.wait(max(0.0, every * self.PROBERS - (time.monotonic() - started))):
                        break
        finally:
            pinger.close()

    def run(self):
        """Start PROBERS probing threads per port (the last in this thread), until stopped."""
        probers = [(path, turn) for turn in range(self.PROBERS) for path in PATHS]
        for path, turn in probers[:-1]:
            threading.Thread(target=self._prober, args=(path, turn), name=f"db-reach-{path}-{turn}",
                             daemon=True).start()
        self._prober(*probers[-1])

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
            pinger = db.Pinger(path, app.config["DB_REACH_TIMEOUT_S"])
            probe.probe_once(pinger)
            pinger.close()
        return (True, "the database's LBs answer") if probe.error is None else (False, probe.error)
    return background.start_per_process(app, "db-reach", Probe).verdict()
