"""Prometheus metrics of this worker process, in the text exposition format.

No client library: a few counters and one histogram under a lock. Each
gunicorn worker keeps its own, so every series carries `node` and
`worker` (the pid); sum over `worker` for a node's totals.
"""
import os
import threading
import time
from collections import defaultdict

from flask import Response, current_app, g, request

BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_lock = threading.Lock()
_requests = defaultdict(int)      # (route, method, status) -> count
_latency = {}                     # route -> [bucket counts..., count, sum]
_cache = defaultdict(int)         # result -> count
_db_errors = defaultdict(int)     # path -> count


def cache_result(hit):
    """Count one cache lookup as a hit or a miss."""
    with _lock:
        _cache["hit" if hit else "miss"] += 1


def db_error(path):
    """Count one failed database operation on PATH (write or read)."""
    with _lock:
        _db_errors[path] += 1


def _observe(route, method, status, seconds):
    with _lock:
        _requests[(route, method, status)] += 1
        h = _latency.setdefault(route, [0] * (len(BUCKETS_S) + 2))
        for i, bound in enumerate(BUCKETS_S):
            if seconds <= bound:
                h[i] += 1
        h[-2] += 1
        h[-1] += seconds


def _labels(**kv):
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in kv.items()) + "}"


def _escape(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(node):
    """Return every metric of this process as Prometheus text."""
    me = {"node": node, "worker": os.getpid()}
    out = ["# HELP lab_http_requests_total HTTP requests by route, method and status.",
           "# TYPE lab_http_requests_total counter"]
    with _lock:
        for (route, method, status), n in sorted(_requests.items()):
            out.append(f"lab_http_requests_total{_labels(**me, route=route, method=method, status=status)} {n}")
        out += ["# HELP lab_http_request_duration_seconds Request latency by route.",
                "# TYPE lab_http_request_duration_seconds histogram"]
        for route, h in sorted(_latency.items()):
            for bound, n in zip(BUCKETS_S, h):
                out.append(f"lab_http_request_duration_seconds_bucket{_labels(**me, route=route, le=bound)} {n}")
            out.append(f"lab_http_request_duration_seconds_bucket{_labels(**me, route=route, le='+Inf')} {h[-2]}")
            out.append(f"lab_http_request_duration_seconds_count{_labels(**me, route=route)} {h[-2]}")
            out.append(f"lab_http_request_duration_seconds_sum{_labels(**me, route=route)} {h[-1]:.6f}")
        out += ["# HELP lab_cache_requests_total Product cache lookups by result.",
                "# TYPE lab_cache_requests_total counter"]
        for result in ("hit", "miss"):
            out.append(f"lab_cache_requests_total{_labels(**me, result=result)} {_cache[result]}")
        out += ["# HELP lab_db_errors_total Failed database operations by path.",
                "# TYPE lab_db_errors_total counter"]
        for path in ("write", "read"):
            out.append(f"lab_db_errors_total{_labels(**me, path=path)} {_db_errors[path]}")
    return "\n".join(out) + "\n"


def _start():
    g.metrics_start = time.perf_counter()


def _finish(response):
    start = g.pop("metrics_start", None)
    if start is not None:
        # The route's rule, not the URL: /products/<int:product_id> is one
        # series, however many ids clients try.
        route = request.url_rule.rule if request.url_rule else "unmatched"
        _observe(route, request.method, response.status_code, time.perf_counter() - start)
    return response


def init_app(app):
    """Time every request and serve GET /metrics."""
    app.before_request(_start)
    app.after_request(_finish)

    @app.get("/metrics")
    def metrics():
        """Return this worker's metrics as Prometheus text."""
        return Response(render(current_app.config["LAB_NODE"]),
                        mimetype="text/plain; version=0.0.4")
