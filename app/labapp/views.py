"""Routes of the web node."""
from flask import Blueprint, current_app, jsonify, render_template_string, request

from . import sessions

bp = Blueprint("views", __name__)

_HOME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>scalelab</title></head>
<body>
<h1>scalelab</h1>
<p>Served by web node <strong>{{ node }}</strong> through load balancer <strong>{{ lb }}</strong>.</p>
<p>Visits in this session: <strong>{{ visits }}</strong> (stored in MariaDB, so any web node can count them).</p>
</body></html>
"""


@bp.get("/healthz")
def healthz():
    """Liveness: the process serves requests (dependencies are not checked)."""
    return jsonify(status="ok", node=current_app.config["LAB_NODE"])


@bp.get("/")
def home():
    """Count this session's visits in MySQL; JSON for programs, HTML for browsers."""
    visits = sessions.increment("visits")
    info = {"node": current_app.config["LAB_NODE"],
            "lb": request.headers.get("X-Lab-LB", ""),
            "visits": visits}
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        return render_template_string(_HOME, **info)
    return jsonify(info)
