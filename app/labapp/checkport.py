"""The web LBs' health checks on a port of their own (CHECK_PORT, 8001), answered by a thread of each worker.

Why not the request port: there a check waits for a free request thread
like any request. A burst of sign-ups (a password hash is ~0.4 s of a
0.25-CPU node) held all eight threads, the checks ran out of their 500 ms,
and the LBs marked live nodes down: a failover caused by load, which moved
users and emptied the rotation. Saturation is HAProxy's to handle (maxconn
8 per node, then its queue, then 503 after `timeout queue`); the check says
only whether the process is alive, reaches the database (labapp.reach) and
makes progress.

Progress: a worker holding requests of which none finished for
CHECK_STALL_S (its request threads all stuck) answers 503 "stalled", so a
hung request path still leaves the rotation, as it did when the check went
through it.

Each gunicorn worker binds the port with SO_REUSEPORT (gunicorn.conf.py's
post_worker_init starts it); the kernel spreads the checks over them.
"""
import http.server
import json
import sys
import threading
import time

from . import reach


class Progress:
    """Requests in hand in this process, and when one last finished (or the busy spell began)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.in_hand = 0
        self.moved_at = time.monotonic()

    def began(self):
        with self.lock:
            if self.in_hand == 0:
                self.moved_at = time.monotonic()
            self.in_hand += 1

    def ended(self):
        with self.lock:
            self.in_hand -= 1
            self.moved_at = time.monotonic()

    def stalled_s(self):
        """Seconds without a finished request while some are in hand (0 when idle or moving)."""
        with self.lock:
            return time.monotonic() - self.moved_at if self.in_hand > 0 else 0.0


def init_app(app):
    """Count this process's requests in hand (before_request / teardown_request)."""
    progress = app.extensions["progress"] = Progress()
    app.before_request(progress.began)
    app.teardown_request(lambda _exc: progress.ended())


def answer(app, path):
    """(status, body) of a check: /healthz (alive and making progress) or /readyz?for=lb (also reaching the DB)."""
    node = app.config["LAB_NODE"]
    stalled = app.extensions["progress"].stalled_s()
    if stalled > app.config["CHECK_STALL_S"]:
        return 503, {"node": node, "ready": False, "why": f"stalled: no request finished for {stalled:.0f} s"}
    if path == "/healthz":
        return 200, {"node": node, "status": "ok"}
    if path == "/readyz?for=lb":
        ok, why = reach.verdict(app)
        return (200 if ok else 503), {"node": node, "ready": ok, **({} if ok else {"why": why})}
    return 404, {"error": "checks: /healthz or /readyz?for=lb"}


def server(app, port):
    """An HTTP server on PORT answering the checks from APP's state (SO_REUSEPORT: one per worker)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            status, body = answer(app, self.path)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):  # two checks a second from each LB: not worth a log line each
            pass

    class Server(http.server.ThreadingHTTPServer):
        allow_reuse_port = True
        daemon_threads = True

        def handle_error(self, request, client_address):
            # HAProxy resets a check's connection once it has read the status
            # line: expected twice a second, not worth a traceback each.
            if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
                super().handle_error(request, client_address)

    return Server(("0.0.0.0", port), Handler)


def start(app):
    """Serve the checks in a daemon thread of this process (gunicorn's post_worker_init)."""
    s = server(app, app.config["CHECK_PORT"])
    threading.Thread(target=s.serve_forever, name="checks", daemon=True).start()
    return s
