"""The lab's HTTP client: the site through the port it publishes on loopback, a timeout on every request."""
import os

import requests

from . import settings

# Tests and the chaos workload reach the site only through the ports the lab publishes on loopback.
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
