"""The home page, the health endpoints, and a CPU-heavy page for benchmarks."""
import hashlib
import re

from flask import Blueprint, abort, current_app, jsonify, render_template, request

from . import cache, catalogue, db, inputs, reach, sessions

bp = Blueprint("views", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: the process serves requests (dependencies are not checked)."""
    return jsonify(status="ok", node=current_app.config["LAB_NODE"])


def _state(name, error):
    """Return "ok" or "unavailable" for dependency NAME; log ERROR, which may name internal hosts."""
    if error is None:
        return "ok"
    current_app.logger.warning("readyz: %s: %s", name, error)
    return "unavailable"


@bp.get("/readyz")
def readyz():
    """Readiness: 200 while the write path answers (reads and cache can fall back), else 503.

    `?for=lb` is the web LBs' check instead: 200 while this process reaches
    the database's LBs at all, from its last probe (labapp.reach).
    """
    if request.args.get("for") == "lb":
        ok, _why = reach.verdict(current_app._get_current_object())
        return jsonify(node=current_app.config["LAB_NODE"], ready=ok), 200 if ok else 503
    write, read = db.ping("write"), db.ping("read")
    # Numbered, not host:port: the answer may leave the internal network.
    caches = {f"memcached {i}": _state(f"memcached {i} ({server})", err)
              for i, (server, err) in enumerate(cache.ping().items(), start=1)}
    status = {
        "node": current_app.config["LAB_NODE"],
        "write_path": _state("write path", write),
        "read_path": _state("read path", read),
        "cache": caches,
        "ready": write is None,
    }
    return jsonify(status), 200 if write is None else 503


# The LB's id of this request (unique-id in haproxy/conf/lb.cfg): the same
# on a request HAProxy retries on another node after a timeout.
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def _visit():
    """Count this visit in the session once, even when the LB retries the request; return the count."""
    rid = request.headers.get("X-Request-ID", "")
    rid = rid if _REQUEST_ID.fullmatch(rid) else None

    def bump(values, _cur):
        if rid is None or values.get("last_request") != rid:
            values["visits"] = values.get("visits", 0) + 1
            if rid is not None:
                values["last_request"] = rid
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


# PBKDF2-SHA256 runs about 4,400 rounds per ms of CPU on a web node: the
# default costs about 5 ms, the cap about 23 ms, so no single request can
# hold a CPU for long (the page is public, behind only the LB's rate limit).
BURN_DEFAULT, BURN_MAX = 20_000, 100_000
# ASCII digits only: str.isdigit() also accepts "²" (int() then fails) and "１".
_ROUNDS = re.compile(r"[0-9]{1,6}")


def _rounds():
    """Return the ROUNDS query argument, or abort 400."""
    raw = request.args.get("rounds", str(BURN_DEFAULT))
    if not _ROUNDS.fullmatch(raw) or not 1 <= int(raw) <= BURN_MAX:
        abort(400, f"rounds must be a whole number from 1 to {BURN_MAX}")
    return int(raw)


@bp.get("/burn")
def burn():
    """A CPU-heavy page for `make bench`: ROUNDS of PBKDF2-SHA256 (default 20000, about 5 ms of CPU)."""
    rounds = _rounds()
    digest = hashlib.pbkdf2_hmac("sha256", b"scalelab", current_app.config["LAB_NODE"].encode(), rounds)
    return jsonify(node=current_app.config["LAB_NODE"], rounds=rounds, digest=digest.hex()[:16])
