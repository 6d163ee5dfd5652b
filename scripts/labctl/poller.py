"""The availability poller: one client asking the site, over and over, and remembering every answer.

Shared by `make failover-times` and `make bench` (labctl.blackout: how long
a kill blacks the site out) and by the console's latency strip
(labctl.console: a probe user, live). It asks through 127.0.0.1:8080 as a
user would; every sample records when it was sent and answered, whether it
worked (a status under 400), which web node served it (X-Served-By), and
which of the paths it asked for. Samples older than KEEP_S are dropped.
"""
import collections
import threading
import time

import requests

from . import progress, settings

URL = f"http://127.0.0.1:{settings.HTTP_PORT}"


class Poller(progress.Background):
    """Ask PATHS ([(kind, path)], in turn) every INTERVAL_S in a thread; keep the samples.

    STICKY keeps one cookie jar and connection, like a browser (the console's
    probe user); otherwise every request is a new visitor on a new
    connection unless COOKIES pins one (the blackout measurements).
    """

    def __init__(self, paths, interval_s=0.02, timeout_s=5.0, cookies=None, sticky=False, keep_s=600):
        super().__init__()
        self.paths, self.interval_s, self.timeout_s = list(paths), interval_s, timeout_s
        self.cookies, self.sticky, self.keep_s = cookies or {}, sticky, keep_s
        self.samples = collections.deque()
        self.lock = threading.Lock()

    def run(self):
        session = requests.Session() if self.sticky else None
        turn = 0
        while not self.stopping.is_set():
            kind, path = self.paths[turn % len(self.paths)]
            turn += 1
            sample = self._ask(session, kind, path)
            with self.lock:
                self.samples.append(sample)
                while self.samples and self.samples[0]["t"] < sample["t"] - self.keep_s:
                    self.samples.popleft()
            self.stopping.wait(max(0.0, self.interval_s - (sample["end"] - sample["t"])))

    def _ask(self, session, kind, path):
        sent = time.time()
        try:
            if session is not None:
                r = session.get(URL + path, timeout=self.timeout_s, headers={"Accept": "application/json"})
            else:
                r = requests.get(URL + path, cookies=self.cookies, timeout=self.timeout_s,
                                 headers={"Connection": "close"})
            ok, node, status = r.status_code < 400, r.headers.get("X-Served-By"), r.status_code
        except requests.RequestException as exc:
            ok, node, status = False, None, type(exc).__name__
        end = time.time()
        return {"t": round(sent, 4), "end": round(end, 4), "ms": round((end - sent) * 1000, 1), "ok": ok,
                "node": node, "kind": kind, "status": status}

    def since(self, t):
        """Return the samples sent after T (time.time())."""
        with self.lock:
            return [s for s in self.samples if s["t"] > t]

    def first_ok_after(self, t0, unless_served_by=None, timeout_s=30):
        """Wait for the first answer sent after T0 (not from UNLESS_SERVED_BY); return when it came, from T0.

        A request sent just after the kill that a retry rescued a second later
        counts as a second of blackout: that is what its user waited.
        """
        def check():
            done = [s["end"] for s in self.since(t0) if s["ok"] and s["node"] != unless_served_by]
            return bool(done), (min(done) - t0 if done else None)
        return progress.wait_until(check, timeout_s, interval_s=0.05)

    def failures_after(self, t0):
        """Count failed requests sent after T0."""
        return sum(1 for s in self.since(t0) if not s["ok"])
