"""The console's web server: the page, its state API, and the fault buttons.

It binds to 127.0.0.1 only. Every API call needs the access token printed
at start (header X-Console-Token, which a page on another site can neither
read nor send without the browser asking first), and the Host header must
name 127.0.0.1 or localhost (no DNS rebinding). Actions are POSTs with a
JSON body; bad input gets a 4xx with a message and changes nothing.
"""
import hmac
import json
import queue
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker

from .. import autoscale, containers, ha, lifecycle, settings, topology
from ..chaos.nemesis import Nemesis
from ..chaos.scenarios import SCENARIOS
from .probe import Events, probe
from .watch import Lab

PAGE = Path(__file__).with_name("index.html")
ACTIONS = ("kill", "start", "pause", "resume", "partition", "heal")
# How often the containers' states are read (one Docker API call).
REFRESH_S = 1.0
# How often the autoscaler's leader is asked of etcd (a `docker exec`); its decisions log is read every refresh.
AUTOSCALER_S = 5.0


class Console:
    """The state the page shows, and the actions it may ask for."""

    def __init__(self, token):
        self.token = token
        self.lab, self.probe, self.events = Lab(), probe(), Events()
        self.nemesis = Nemesis(log=lambda _: None)
        self.partitions = {}              # node -> the nemesis's partition fault
        self.scenarios, self.running = [sc.name for sc in SCENARIOS], None
        self.stopping = threading.Event()
        self.actions = queue.Queue()
        self.autoscaler = {"leader": None, "decisions": [], "asked_at": 0.0}

    def start(self):
        """Start the watchers, the probe and the refresh loop."""
        self.lab.refresh()
        self.probe.__enter__()
        threading.Thread(target=self._refresh_loop, daemon=True).start()
        threading.Thread(target=self._work, daemon=True).start()

    def _refresh_loop(self):
        while not self.stopping.wait(REFRESH_S):
            before = dict(self.lab.nodes)
            try:
                self.lab.refresh()
            except docker.errors.DockerException as exc:
                self.events.add("error", f"Docker: {exc}")
                continue
            self.events.seen(before, self.lab.nodes)
            self._autoscaler()

    def _autoscaler(self):
        """Who leads the autoscalers (etcd, every AUTOSCALER_S) and their last decisions (the log)."""
        now = time.time()
        if now - self.autoscaler["asked_at"] >= AUTOSCALER_S:
            try:
                self.autoscaler["leader"] = autoscale.get(autoscale.LEADER_KEY)
            except (ha.HaError, docker.errors.DockerException):
                self.autoscaler["leader"] = None
            self.autoscaler["asked_at"] = now
        self.autoscaler["decisions"] = [r for r in autoscale.recent(40) if r.get("kind") or "event" in r][-6:]

    def stop(self):
        """Stop everything; heal the partitions made here (invisible otherwise); say what stays broken."""
        self.stopping.set()
        self.probe.__exit__()
        self.lab.stop()
        for node, fault in list(self.partitions.items()):
            fault.heal()
        if self.running and self.running.poll() is None:
            self.running.terminate()
        down = [n for n, info in self.lab.nodes.items() if not info["state"].startswith("running")]
        if down:
            print(f"left as they are: {', '.join(down)} (`make up` starts them again)")

    def state(self, since_event=0, since_t=0.0):
        """The page's view: the lab's snapshot, new probe samples and events, fault windows."""
        now = time.time()
        return {**self.lab.snapshot(), "samples": self.probe.since(since_t),
                "events": self.events.since(since_event), "windows": self.events.windows(now - 120),
                "partitioned": sorted(self.partitions), "scenarios": self.scenarios,
                "scenario_running": self.running is not None and self.running.poll() is None,
                "standard_web_nodes": list(topology.WEB_NODES[:topology.STANDARD_WEB_NODES]),
                "autoscaler": {"leader": self.autoscaler["leader"], "decisions": self.autoscaler["decisions"],
                               "web_nodes": sum(1 for i in self.lab.nodes.values()
                                                if i.get("role") == "web" and i["state"].startswith("running"))}}

    def act(self, action, node):
        """Queue ACTION on NODE (validated by the caller) and return at once; the event log says how it went.

        Docker's kill can take seconds to return (it cleans up the node's
        networks after the process is gone), so actions run one after the
        other in a worker thread, and a node being killed or paused is shown
        so at once: the page never waits on Docker.
        """
        if action == "kill":
            self.events.add("fault", f"kill {node}", node)
            self.lab.mark(node, "killing")
        elif action == "pause":
            self.events.add("fault", f"pause {node}", node)
            self.lab.mark(node, "pausing")
        self.actions.put((action, node))
        return f"{action} {node}: on its way"

    def _work(self):
        while True:
            action, node = self.actions.get()
            try:
                self._do(action, node)
            except (docker.errors.DockerException, LookupError, RuntimeError) as exc:
                self.events.add("error", f"{action} {node} failed: {exc}", node)

    def _do(self, action, node):
        if action == "kill":
            self.nemesis.kill(node)
        elif action == "pause":
            self.nemesis.pause(node)
        elif action == "partition":
            if node in self.partitions:
                self.events.add("error", f"{node} is already cut off", node)
                return
            others = [n for n, info in self.lab.nodes.items() if n != node and info["state"] != "exited"]
            self.events.add("fault", f"cut {node} off from every other node", node)
            self.partitions[node] = self.nemesis.partition(node, others)
        elif action == "heal":
            fault = self.partitions.pop(node, None)
            if fault is None:
                self.events.add("error", f"{node} is not cut off", node)
                return
            fault.heal()
            self.events.add("heal", f"{node} rejoined the network", node)
        elif lifecycle.restore(containers.get(node)):  # start, resume
            self.events.add("heal", f"{action} {node}", node)

    def run_scenario(self, name):
        """Start chaos scenario NAME (`make chaos SCENARIO=name`) in the background; its steps go to the log."""
        if self.running is not None and self.running.poll() is None:
            raise ValueError("a scenario is already running")
        self.events.add("scenario", f"scenario {name}: starting")
        # The chaos runner in a process of its own (its timer, its output), as `make chaos SCENARIO=name`.
        self.running = subprocess.Popen(
            [sys.executable, "-m", "labctl", "chaos", "--scenario", name],
            cwd=settings.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._follow, args=(name, self.running), daemon=True).start()

    def _follow(self, name, proc):
        for line in proc.stdout:
            if "nemesis:" in line or line.startswith(("✔ " + name, "❌ " + name)):
                self.events.add("scenario", line.strip())
        code = proc.wait()
        self.events.add("scenario", f"scenario {name}: {'passed' if code == 0 else f'failed (exit {code})'}; "
                                    "the report is in reports/chaos/")


class Handler(BaseHTTPRequestHandler):
    """GET / (the page), GET /api/state, POST /api/action and /api/scenario."""

    console = None   # set by serve()
    port = None
    server_version = "labconsole"

    def log_message(self, *args):  # quiet: the console prints its own lines
        pass

    def _send(self, code, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.end_headers()
        self.wfile.write(data)

    def _refused(self):
        """Return an error message when the request must be refused, else None."""
        host = self.headers.get("Host", "")
        if host not in (f"127.0.0.1:{self.port}", f"localhost:{self.port}"):
            return 403, "unknown Host: open the console at the URL it printed"
        origin = self.headers.get("Origin")
        if origin and origin not in (f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}"):
            return 403, "cross-site request refused"
        if self.path.startswith("/api/") and not hmac.compare_digest(
                self.headers.get("X-Console-Token", ""), self.console.token):
            return 403, "missing or wrong access token (X-Console-Token): use the URL the console printed"
        return None

    def do_GET(self):  # noqa: N802 - http.server's name
        """Serve the page or the state."""
        refused = self._refused()
        if refused:
            return self._send(refused[0], {"error": refused[1]})
        path, _, query = self.path.partition("?")
        if path == "/":
            return self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
        if path == "/api/state":
            params = dict(p.partition("=")[::2] for p in query.split("&") if p)
            try:
                since_event, since_t = int(params.get("events", 0)), float(params.get("t", 0))
            except ValueError:
                return self._send(400, {"error": "events must be a whole number and t a number"})
            return self._send(200, self.console.state(since_event, since_t))
        return self._send(404, {"error": f"no such page: {path}"})

    def do_POST(self):  # noqa: N802 - http.server's name
        """Run an action or a scenario."""
        refused = self._refused()
        if refused:
            return self._send(refused[0], {"error": refused[1]})
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return self._send(415, {"error": "send JSON (Content-Type: application/json)"})
        try:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(min(length, 10_000)) or b"{}")
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            return self._send(400, {"error": "the body must be a JSON object"})
        if self.path == "/api/action":
            return self._action(body)
        if self.path == "/api/scenario":
            return self._scenario(body)
        return self._send(404, {"error": f"no such action: {self.path}"})

    def _action(self, body):
        action, node = body.get("action"), body.get("node")
        if action not in ACTIONS:
            return self._send(400, {"error": f"action must be one of {', '.join(ACTIONS)}"})
        if node not in self.console.lab.nodes:
            return self._send(400, {"error": f"no lab node {node!r}"})
        return self._send(202, {"ok": True, "message": self.console.act(action, node)})

    def _scenario(self, body):
        name = body.get("name")
        if name not in self.console.scenarios:
            return self._send(400, {"error": f"no chaos scenario {name!r}"})
        try:
            self.console.run_scenario(name)
        except ValueError as exc:
            return self._send(409, {"error": str(exc)})
        return self._send(200, {"ok": True, "message": f"scenario {name} started"})


def serve(port, token):
    """Run the console on 127.0.0.1:PORT until Ctrl-C."""
    console = Console(token)
    Handler.console, Handler.port = console, port
    try:
        httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError as exc:
        raise SystemExit(f"❌ cannot listen on 127.0.0.1:{port}: {exc} (another console? set PORT=...)") from exc
    httpd.daemon_threads = True
    console.start()
    print(f"console: http://127.0.0.1:{port}/?token={token}   (Ctrl-C stops it)", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping the console", flush=True)
        httpd.server_close()
        console.stop()
    return True
