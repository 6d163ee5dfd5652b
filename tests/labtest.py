"""Helpers shared by the lab's tests: one HTTP client, reachability and replication probes."""
import json
import os
import shlex
import time

import requests

from labctl import containers, dbnodes, progress, settings

# Tests reach the site only through the ports the lab publishes on loopback.
BASE_URL = os.environ.get("LAB_URL", f"http://127.0.0.1:{settings.HTTP_PORT}")


class Client(requests.Session):
    """An HTTP client for the lab's site, with a timeout on every request.

    With BROWSER, it does what browsers do when a kept-alive connection is
    closed before any answer came (RFC 9110, 9.2.2; Chromium resends in
    that case): it sends an idempotent request once more. The lab closes
    connections that way on purpose at one moment: when HAProxy marks a web
    node down, it cuts every request still on that node, including one
    whose 100 ms connect attempt to the dead node had not yet failed over
    (`on-marked-down shutdown-sessions`, chosen so that requests stuck on a
    frozen node fail in a second; README, "Web nodes"). Timeouts and error
    answers are never resent. The chaos workload records raw outcomes and
    does not use this.
    """

    IDEMPOTENT = ("GET", "HEAD", "OPTIONS")

    def __init__(self, base_url=BASE_URL, timeout=10, browser=False):
        super().__init__()
        self.base_url, self.timeout, self.browser = base_url, timeout, browser

    def request(self, method, url, *args, **kwargs):  # noqa: D102 - requests' signature
        kwargs.setdefault("timeout", self.timeout)
        # Per request: requests lets REQUESTS_CA_BUNDLE override a session's CA file.
        kwargs.setdefault("verify", self.verify)
        try:
            return super().request(method, self.base_url + url, *args, **kwargs)
        except requests.ConnectionError as exc:
            if not (self.browser and method.upper() in self.IDEMPOTENT and _closed_without_answer(exc)):
                raise
            return super().request(method, self.base_url + url, *args, **kwargs)


def _closed_without_answer(exc):
    """True when EXC is a connection closed or reset by the far end before any answer (not a timeout)."""
    text = repr(exc)
    return "RemoteDisconnected" in text or "Connection reset by peer" in text


def can_connect(node, address, port, timeout_s=2):
    """Return True when NODE's container can open TCP to ADDRESS:PORT (bounded)."""
    probe = f"exec 3<>/dev/tcp/{address}/{port}"
    code, _ = containers.sh(containers.get(node),
                            f"timeout {timeout_s} bash -c {shlex.quote(probe)} 2>/dev/null")
    return code == 0


def probe_count(node, token):
    """Return how many replication_probe rows with TOKEN NODE holds."""
    return int(dbnodes.value(node, f"SELECT COUNT(*) FROM lab.replication_probe WHERE token = '{token}'"))


def write_probe(node, token):
    """Insert a replication_probe row with TOKEN on NODE, as the operator (root)."""
    dbnodes.query(node, f"INSERT INTO lab.replication_probe (origin, token) VALUES ('{node}', '{token}')",
                  root=True)


def wait_for_probe(node, token, timeout_s=30):
    """Wait (bounded) until the replication_probe row TOKEN is on NODE; return the seconds taken."""
    start = time.monotonic()
    progress.wait_until(lambda: (probe_count(node, token) == 1, None), timeout_s, interval_s=0.1)
    return time.monotonic() - start


def app_sql(port, sql, node="web1"):
    """Run SQL as the app user from web NODE through the db VIP on PORT.

    Returns [server_id of the MariaDB node that answered, MySQL error code
    or None]: the path and the outcome the app itself would get
    (app/bin/lab-sql, in the web image).
    """
    code, out = containers.sh(containers.get(node), ["lab-sql", str(port), sql])
    assert code == 0, out
    return json.loads(out.strip().splitlines()[-1])
