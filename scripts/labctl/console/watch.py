"""What the console shows, gathered cheaply: one long-lived `docker exec` per node, not several per second.

Each LB runs haproxy/bin/lb-watch, each MariaDB node mysql/bin/db-watch,
each cache node memcached/memcached-watch: a loop in the node that prints
one round of facts a second and ends by itself after a minute (the watcher
here starts it again), so a console that went away leaves nothing behind
for long. The containers' states come from one Docker API call a second (the list
call's own rows: no inspect per container). A web LB reports a VIP move at
once, not at its next round.
`Lab.snapshot()` turns the newest rounds into the console's state.
"""
import csv
import io
import threading
import time

import docker

from .. import containers, lag, progress, topology

SCRIPTS = {"lb": "lb-watch", "dblb": "lb-watch", "db-source": "db-watch", "db-replica": "db-watch",
           "memcached": "memcached-watch"}
ROUND_S = 1.0
RUN_S = 60
# How long a node marked killing or pausing keeps that mark while Docker still says running.
MARK_S = 10


class Watcher(progress.Background):
    """Keep NODE's watch script running; hand each round of lines to ON_ROUND(node, lines)."""

    def __init__(self, node, script, on_round):
        super().__init__()
        self.node, self.script, self.on_round = node, script, on_round

    def run(self):
        while not self.stopping.is_set():
            try:
                self._one_run()
            except (docker.errors.DockerException, LookupError, OSError):
                pass  # stopped, paused or gone: try again in a moment
            self.stopping.wait(ROUND_S)

    def _one_run(self):
        c = containers.get(self.node)
        if c.status != "running":
            return
        api = containers.client().api
        ex = api.exec_create(c.id, [self.script, str(ROUND_S), str(RUN_S)], stdout=True, stderr=False)
        pending, lines = "", []
        for chunk in api.exec_start(ex["Id"], stream=True):
            if self.stopping.is_set():
                return
            pending += chunk.decode("utf-8", "replace")
            *complete, pending = pending.split("\n")
            for line in complete:
                if line == "end":
                    self.on_round(self.node, lines)
                    lines = []
                elif line:
                    lines.append(line)


def parse_lb(lines):
    """Return (holds_vip, {web node: stats row}) from one round of lb-watch."""
    holds = "vip 1" in lines
    header = next((l[len("stathdr "):] for l in lines if l.startswith("stathdr ")), None)
    rows = [l[len("stat "):] for l in lines if l.startswith("stat ")]
    servers = {}
    if header and rows:
        for row in csv.DictReader(io.StringIO("\n".join([header, *rows]))):
            servers[row["svname"]] = row
    return holds, servers


def parse_db(lines):
    """Return (read_only or None, {server_id: (age_ms, apply_ms or None)}) from one round of db-watch."""
    read_only, stamps = None, {}
    for line in lines:
        cells = line.split("\t")
        if cells[0] == "ro" and len(cells) == 2:
            read_only = cells[1] == "1"
        elif cells[0] == "hb" and len(cells) == 4:
            apply_us = int(cells[3])
            stamps[cells[1]] = (int(cells[2]) / 1000, apply_us / 1000 if apply_us >= 0 else None)
    return read_only, stamps


def parse_cache(lines):
    """Return {get_hits: n, get_misses: n} from one round of memcached-watch."""
    out = {}
    for line in lines:
        name, _, value = line.partition(" ")
        if value.isdigit():
            out[name] = int(value)
    return out


def link_lags(rounds):
    """Return [{source, replica, lag_ms, note}] for every replication link, from the DB nodes' rounds."""
    out = []
    for source, replica in topology.LINKS:
        sid = str(topology.LAB.server_id(source))
        own = rounds.get(source, {}).get("stamps", {}).get(sid)
        held = rounds.get(replica, {}).get("stamps", {}).get(sid)
        if own is None or own[0] > lag.WRITER_STALE_MS:
            out.append({"source": source, "replica": replica, "lag_ms": None,
                        "note": f"{source} is not stamping (standby, or down)"})
        elif held is None:
            out.append({"source": source, "replica": replica, "lag_ms": None, "note": f"{replica} does not answer"})
        else:
            out.append({"source": source, "replica": replica, "lag_ms": max(0, round(lag.link_lag_ms(*held))),
                        "note": ""})
    return out


class Lab:
    """The lab as the console sees it: the nodes' newest rounds, and their containers' states."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rounds = {}          # node -> {"at": time, ...parsed facts}
        self.nodes = {}           # node -> {"role", "state"}
        self.rates = {}           # LB -> (at, {web node: (responses total, 5xx total)})
        self.watchers = {}
        self.marks = {}           # node -> when the console marked it killing or pausing

    def _on_round(self, node, lines):
        role = self.nodes.get(node, {}).get("role")
        now = time.time()
        if role in ("lb", "dblb"):
            holds, servers = parse_lb(lines)
            facts = {"vip": holds, "servers": servers, "rates": self._rates(node, now, servers)}
        elif role == "memcached":
            facts = {"cache": parse_cache(lines)}
        else:
            read_only, stamps = parse_db(lines)
            facts = {"read_only": read_only, "stamps": stamps}
        with self.lock:
            self.rounds[node] = {"at": now, **facts}

    def refresh(self):
        """Read the containers' states (one API call); start a watcher for every new node that has one."""
        found = {r["node"]: {"role": r["role"], "state": _state(r["state"], r["status"])} for r in containers.rows()}
        with self.lock:
            # A node the console is killing or pausing stays so until Docker
            # says it stopped (or a few seconds pass: the action failed).
            for node, at in list(self.marks.items()):
                if node in found and found[node]["state"].startswith("running") and time.time() - at < MARK_S:
                    found[node]["state"] = self.nodes[node]["state"]
                else:
                    del self.marks[node]
            self.nodes = found
        for node, info in found.items():
            script = SCRIPTS.get(info["role"])
            if script and node not in self.watchers:
                self.watchers[node] = Watcher(node, script, self._on_round).__enter__()

    def mark(self, node, state):
        """Record NODE's new STATE at once (the console just changed it), ahead of the next refresh."""
        with self.lock:
            if node in self.nodes:
                self.nodes = {**self.nodes, node: {**self.nodes[node], "state": state}}
                self.marks[node] = time.time()

    def stop(self):
        """Stop every watcher."""
        for w in self.watchers.values():
            w.stopping.set()

    def _fresh(self, node, max_age_s=3):
        r = self.rounds.get(node)
        return r if r and time.time() - r["at"] <= max_age_s and self.nodes.get(node, {}).get("state") == "running" \
            else None

    def snapshot(self):
        """Return the state the page draws: nodes, VIP holders, writer, links, web rates, cache hits."""
        with self.lock:
            nodes, rounds = dict(self.nodes), {n: r for n in self.rounds if (r := self._fresh(n))}
        vips = {role: [lb for lb in pair if rounds.get(lb, {}).get("vip")]
                for role, pair in topology.LB_PAIRS.items()}
        writers = [s for s in topology.SOURCES if rounds.get(s, {}).get("read_only") is False]
        web = self._web_rates(rounds, vips["lb"])
        cache = {}
        for node in topology.MEMCACHED_NODES:
            c = rounds.get(node, {}).get("cache")
            if c:
                total = c.get("get_hits", 0) + c.get("get_misses", 0)
                cache[node] = {"hits": c.get("get_hits", 0), "misses": c.get("get_misses", 0),
                               "hit_ratio": round(c.get("get_hits", 0) / total, 3) if total else None}
        return {"at": time.time(), "nodes": nodes, "vips": vips, "writers": writers,
                "links": link_lags(rounds), "web": web, "cache": cache}

    def _rates(self, lb, now, servers):
        """Requests/s and 5xx/s per web node on LB since its previous round (HAProxy's counters)."""
        totals = {n: (sum(int(r.get(f"hrsp_{k}xx") or 0) for k in range(1, 6)), int(r.get("hrsp_5xx") or 0))
                  for n, r in servers.items()}
        before_at, before = self.rates.get(lb, (None, {}))
        self.rates[lb] = (now, totals)
        rates = {}
        for n, (total, errors) in totals.items():
            old = before.get(n)
            if before_at and old and total >= old[0] and now > before_at:
                rates[n] = ((total - old[0]) / (now - before_at), (errors - old[1]) / (now - before_at))
        return rates

    @staticmethod
    def _web_rates(rounds, holders):
        """Per web node: its state in the VIP holder's HAProxy, requests/s and 5xx/s through it."""
        holder = rounds.get(holders[0], {}) if holders else {}
        out = {}
        for node, row in holder.get("servers", {}).items():
            rps, eps = holder.get("rates", {}).get(node, (0.0, 0.0))
            out[node] = {"status": row.get("status", "?"), "rps": round(rps, 1), "errors_per_s": round(eps, 2)}
        return out


def _state(state, status):
    """running, paused, exited, ... and, for a running container that is not healthy, its health.

    From the list call's own fields: its status text says "(healthy)",
    "(health: starting)" or "(unhealthy)".
    """
    if state == "running" and "(unhealthy)" in status:
        return "running (unhealthy)"
    if state == "running" and "(health: starting)" in status:
        return "running (starting)"
    return state
