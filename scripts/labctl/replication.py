"""Replication links between the MariaDB nodes: set them up, read their state.

Why after boot, from the host: a link needs both ends up, and the nodes
start in any order. So `make up` first waits until every DB node is
healthy, then asks each replica to create (once) and start its links with
mysql/bin/db-replicate; running that again changes nothing.
"""
from dataclasses import dataclass

from . import containers, dbnodes, topology


@dataclass
class Link:
    """The state of one replication link, source -> replica."""
    source: str
    replica: str
    io_running: str = "?"
    sql_running: str = "?"
    seconds_behind_master: str | None = None
    gtid_io_pos: str = ""
    last_error: str = ""
    # Applied GTIDs (the replica's gtid_slave_pos, shared by all its links),
    # and the source's server_id as this link last saw it (make lag finds
    # the source's heartbeat row by it, even while the source is down).
    gtid_slave_pos: str = ""
    master_server_id: str | None = None

    @property
    def running(self):
        """True when both the IO and the SQL thread run."""
        return self.io_running == "Yes" and self.sql_running == "Yes"

    @property
    def state(self):
        """A one-word summary: running, broken, connecting, stopped or unknown."""
        if self.running:
            return "running"
        if self.last_error:
            return "broken"
        if self.io_running == "Connecting":
            return "connecting"
        return "stopped" if self.io_running in ("No", "Yes") else "unknown"


def configure():
    """Create and start every link of the topology (idempotent)."""
    for replica, sources in topology.REPLICATION_LINKS.items():
        code, out = containers.sh(containers.get(replica), ["db-replicate", *sources])
        if code != 0:
            raise dbnodes.DbError(f"{replica}: db-replicate failed: {out.strip()}")
        for line in out.splitlines():
            print(f"   {replica}: {line}")


def links():
    """Return the state of every expected link, including ones that are missing."""
    result = []
    for replica, sources in topology.REPLICATION_LINKS.items():
        try:
            rows = {r["Connection_name"]: r for r in dbnodes.query(replica, "SHOW ALL SLAVES STATUS")}
        except dbnodes.DbError as exc:
            rows, down = {}, str(exc).splitlines()[0]
        else:
            down = ""
        for source in sources:
            row = rows.get(source)
            if row is None:
                result.append(Link(source, replica, last_error=down or "link not configured"))
                continue
            result.append(Link(
                source, replica,
                io_running=row["Slave_IO_Running"], sql_running=row["Slave_SQL_Running"],
                seconds_behind_master=row["Seconds_Behind_Master"],
                gtid_io_pos=row.get("Gtid_IO_Pos") or "",
                last_error=row["Last_SQL_Error"] or row["Last_IO_Error"] or "",
                gtid_slave_pos=row.get("Gtid_Slave_Pos") or "",
                master_server_id=row.get("Master_Server_Id"),
            ))
    return result
