"""Replication links between the MariaDB nodes, as the host reads them.

Each node's HA loop (mysql/ha/labha) creates, starts and stops its own
links; the host only reads their state (make status, make lag, make up's
wait).
"""
from dataclasses import dataclass

from . import dbnodes, topology


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
