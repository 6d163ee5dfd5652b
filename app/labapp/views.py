"""The home page, the health endpoints, and a CPU-heavy page for benchmarks."""
import hashlib

from flask import Blueprint, abort, current_app, jsonify, render_template, request

from . import cache, catalogue, db, inputs, sessions

bp = Blueprint("views", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: the process serves requests (dependencies are not checked)."""
    return jsonify(status="ok", node=current_app.config["LAB_NODE"])


@bp.get("/readyz")
def readyz():
    """Readiness: 200 while the write path answers (reads and cache can fall back), else 503."""
    write, read = db.ping("write"), db.ping("read")
    servers = cache.ping()
    status = {
        "node": current_app.config["LAB_NODE"],
        "write_path": write or "ok",
        "read_path": read or "ok",
        "cache": {server: err or "ok" for server, err in servers.items()},
    }
    status["ready"] = write is None
    return jsonify(status), 200 if write is None else 503


def _visit():
    """Count this visit in the session; return the new count."""
    def bump(values, _cur):
        values["visits"] = values.get("visits", 0) + 1
        return values["visits"]
    return sessions.modify(bump)


@bp.get("/")
def home():
    """Count this session's visits in MySQL; JSON for programs, HTML for browsers."""
    info = {"node": current_app.config["LAB_NODE"],
            "lb": request.headers.get("X-Lab-LB", ""),
            "visits": _visit()}
    if inputs.wants_html():
        products, hit = catalogue.products()
        return render_template("home.html", **info, user=sessions.user(), products=products,
                               hit=hit, session_id=sessions.short_id())
    return jsonify(info)


BURN_DEFAULT, BURN_MAX = 20_000, 500_000


@bp.get("/burn")
def burn():
    """A CPU-heavy page for `make bench`: ROUNDS of PBKDF2-SHA256 (default 20000, a few ms of CPU)."""
    raw = request.args.get("rounds", str(BURN_DEFAULT))
    if not raw.isdigit() or not 1 <= int(raw) <= BURN_MAX:
        abort(400, f"rounds must be a whole number from 1 to {BURN_MAX}")
    rounds = int(raw)
    digest = hashlib.pbkdf2_hmac("sha256", b"scalelab", current_app.config["LAB_NODE"].encode(), rounds)
    return jsonify(node=current_app.config["LAB_NODE"], rounds=rounds, digest=digest.hex()[:16])
