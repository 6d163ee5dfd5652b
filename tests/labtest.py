"""Helpers shared by the lab's tests: one HTTP client, reachability and replication probes."""
import json
import shlex
import time

from labctl import containers, dbnodes, progress
from labctl.client import BASE_URL, Client  # noqa: F401 - the tests' client, shared with the chaos workload


def can_connect(node, address, port, timeout_s=2):
    """Return True when NODE's container can open TCP to ADDRESS:PORT (bounded)."""
    probe = f"exec 3<>/dev/tcp/{address}/{port}"
    code, _ = containers.sh(containers.get(node),
                            f"timeout {timeout_s} bash -c {shlex.quote(probe)} 2>/dev/null")
    return code == 0


def probe_count(node, token):
    """Return how many replication_probe rows with TOKEN NODE holds."""
    return int(dbnodes.value(node, f"SELECT COUNT(*) FROM lab.replication_probe WHERE token = '{token}'"))


def write_probe(node, token):
    """Insert a replication_probe row with TOKEN on NODE, as the operator (root)."""
    dbnodes.query(node, f"INSERT INTO lab.replication_probe (origin, token) VALUES ('{node}', '{token}')",
                  root=True)


def wait_for_probe(node, token, timeout_s=30):
    """Wait (bounded) until the replication_probe row TOKEN is on NODE; return the seconds taken."""
    start = time.monotonic()
    progress.wait_until(lambda: (probe_count(node, token) == 1, None), timeout_s, interval_s=0.1)
    return time.monotonic() - start


def app_sql(port, sql, node="web1"):
    """Run SQL as the app user from web NODE through the db VIP on PORT.

    Returns [server_id of the MariaDB node that answered, MySQL error code
    or None]: the path and the outcome the app itself would get
    (app/bin/lab-sql, in the web image).
    """
    code, out = containers.sh(containers.get(node), ["lab-sql", str(port), sql])
    assert code == 0, out
    return json.loads(out.strip().splitlines()[-1])
