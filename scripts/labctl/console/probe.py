"""The console's latency probe, and its event log.

The probe is one user browsing through 127.0.0.1:8080 a few times a
second, with the availability poller `make failover-times` uses
(labctl.poller): a product page (a read: cache, then the read replica)
and the home page (a write: the visit counter in the session row), with a
cookie jar, so it sticks to one web node like a browser. Each sample records when it
was sent, how long it took, whether it worked and which web node answered:
the chaos report's latency plot, live.

Events are what the console did (a fault, a heal, a scenario) and what it
saw happen (a container stopped, paused or came back); a fault opens a
window on the strip until its heal, or until the node is back.
"""
import threading
import time

from ..poller import Poller


def probe():
    """The probe user: a product page and the home page in turn, 4 a second, one cookie jar (labctl.poller)."""
    return Poller([("read", "/products/1"), ("write", "/")], interval_s=0.25, timeout_s=2.0, sticky=True,
                  keep_s=180)


class Events:
    """What happened, in order; each event has an id so the page asks only for new ones."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []
        self.open = {}   # node -> the fault event whose window is open

    def add(self, kind, text, node=None):
        """Record an event (kind: fault, heal, seen, scenario, error); return it."""
        with self.lock:
            event = {"id": len(self.items) + 1, "t": round(time.time(), 3), "kind": kind, "text": text, "node": node}
            if kind == "fault" and node:
                event["until"] = None
                self.open.setdefault(node, event)
            if kind == "heal" and node in self.open:
                self.open.pop(node)["until"] = event["t"]
            self.items.append(event)
            return event

    def seen(self, before, after):
        """Record container state changes between two {node: {"state": ...}} views.

        A node that stops or freezes opens a fault window (unless the
        console's own fault already did); one that runs again closes it.
        """
        for node in sorted(set(before) | set(after)):
            old = before.get(node, {}).get("state", "gone")
            new = after.get(node, {}).get("state", "gone")
            was_up, is_up = old.startswith("running"), new.startswith("running")
            if was_up == is_up and (is_up or old == new) or new in ("killing", "pausing"):
                continue  # no change, or the console's own action (logged already)
            if is_up:
                self.add("heal", f"{node} runs again", node)
            else:
                self.add("seen" if node in self.open else "fault", f"{node} is {new}", node)

    def since(self, event_id):
        """Return the events after EVENT_ID."""
        with self.lock:
            return [dict(e) for e in self.items if e["id"] > event_id]

    def windows(self, since_t):
        """Return every fault window that ends after SINCE_T: {node, from, until (None: still open), text}."""
        with self.lock:
            return [{"node": e["node"], "from": e["t"], "until": e["until"], "text": e["text"]}
                    for e in self.items if e["kind"] == "fault" and e.get("node")
                    and (e["until"] is None or e["until"] > since_t)]
