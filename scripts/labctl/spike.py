"""A load spike of new visitors, and what it did to the lab: shared by make bench and the tests.

N closed-loop clients each send GET / without a cookie, again and again:
every visit is a new user, so every one writes a new session row through
the write path. That is the load that once knocked the DB tier over.
"""
import collections
import datetime
import threading
import time

import requests

from . import containers, settings, topology

URL = f"http://127.0.0.1:{settings.HTTP_PORT}/"


def _visit_until(stop, statuses, timeout_s):
    with requests.Session() as s:
        while not stop.is_set():
            s.cookies.clear()
            try:
                statuses.append(s.get(URL, timeout=timeout_s).status_code)
            except requests.RequestException:
                statuses.append(0)  # no answer


def down_marks(since):
    """Return every LB log line since SINCE (UTC datetime) that marks a server DOWN."""
    lines = []
    for c in containers.find(role="lb") + containers.find(role="dblb"):
        log = c.logs(since=since).decode("utf-8", "replace")
        lines += [f"{containers.node_of(c)}: {line}" for line in log.splitlines() if " is DOWN" in line]
    return lines


def run(clients=32, seconds=20, timeout_s=10):
    """Run the spike; return {answers, by_status, errors_5xx, rps, down_marks, writer_before/after}."""
    writer_before = topology.writers()
    since = datetime.datetime.now(datetime.timezone.utc)
    statuses, stop = [], threading.Event()
    threads = [threading.Thread(target=_visit_until, args=(stop, statuses, timeout_s), daemon=True)
               for _ in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=timeout_s + 5)
    elapsed = time.monotonic() - started
    marks = down_marks(since)
    return {"clients": clients, "seconds": seconds, "answers": len(statuses),
            "by_status": dict(sorted(collections.Counter(statuses).items())),
            "errors_5xx": sum(1 for s in statuses if s >= 500 or s == 0),
            "rps": round(len(statuses) / elapsed, 1), "down_marks": len(marks), "first_down_marks": marks[:5],
            "writer_before": writer_before, "writer_after": topology.writers()}
