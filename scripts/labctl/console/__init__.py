"""`make console`: the lab's diagram, live in a browser, with faults a click away.

    make console      ->  console: http://127.0.0.1:8405/?token=...

A local web server (127.0.0.1 only, an access token like a notebook
server's) draws the topology once a second from what the nodes say
(`watch`): every node with its role and health, who holds each VIP, which
source takes writes, each replication link's lag in ms, requests and
errors per web node, the caches' hit ratios. Under it runs a latency strip
from a small probe (`probe`): reads and writes through 127.0.0.1:8080,
coloured by the web node that served them, failures marked, fault windows
shaded. Buttons kill, start, pause, resume, cut off and heal each node
through the chaos suite's own nemesis, or run a whole chaos scenario
(`server`). Everything is served from this folder: no asset comes from
the internet.
"""
import os
import secrets

from .server import serve

DEFAULT_PORT = int(os.environ.get("LAB_CONSOLE_PORT", "8405"))


def run(port=DEFAULT_PORT):
    """Serve the console on 127.0.0.1:PORT with a fresh access token, until Ctrl-C."""
    return serve(port, os.environ.get("LAB_CONSOLE_TOKEN") or secrets.token_urlsafe(18))
