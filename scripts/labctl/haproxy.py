"""HAProxy's runtime API on the lab's load balancers, through the Docker API."""
import csv
import io
import shlex

from . import containers


class RuntimeError_(Exception):
    """A runtime API command failed."""


def runtime(node, command):
    """Send COMMAND to NODE's HAProxy admin socket; return the reply text."""
    code, out = containers.sh(containers.get(node),
                              f"echo {shlex.quote(command)} | socat -t 5 stdio /run/haproxy/admin.sock")
    if code != 0:
        raise RuntimeError_(f"{node}: {command!r} failed: {out.strip()}")
    return out


def servers(node, backend):
    """Return {server: row} from NODE's `show stat` for BACKEND (status, scur, ...)."""
    text = runtime(node, "show stat").lstrip("# ")
    rows = csv.DictReader(io.StringIO(text))
    return {r["svname"]: r for r in rows if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")}
