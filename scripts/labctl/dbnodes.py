"""Queries on the MariaDB nodes, run inside their containers over the Docker API.

The host never connects to a DB node's address: it runs the `mariadb`
client in the node's container, as the monitoring user (default) or as
root over the local socket (operator access, for setup and tests).
"""
from . import containers


class DbError(Exception):
    """A query on a DB node failed (or the node is down)."""


def query(node, sql, root=False):
    """Run SQL on NODE; return the last result set as a list of dicts of strings."""
    # --defaults-extra-file must be the client's first option.
    auth = [] if root else ["--defaults-extra-file=/run/lab/monitor.cnf"]
    args = ["mariadb", *auth, "-B", "--connect-timeout=3"]
    try:
        container = containers.get(node)
        code, out = containers.sh(container, [*args, "-e", sql])
    except Exception as exc:  # noqa: BLE001 - docker errors: the node is unreachable
        raise DbError(f"{node}: {exc}") from exc
    if code != 0:
        raise DbError(f"{node}: {out.strip()}")
    lines = out.splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        values = [None if v == "NULL" else v.replace("\\t", "\t").replace("\\n", "\n")
                  for v in line.split("\t")]
        rows.append(dict(zip(header, values)))
    return rows


def value(node, sql, root=False):
    """Run SQL on NODE and return the first column of the first row (or None)."""
    rows = query(node, sql, root=root)
    return next(iter(rows[0].values())) if rows else None
