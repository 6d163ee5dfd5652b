"""The MariaDB side of the HA loop: the local server, and the other DB nodes over the db network.

Local: root over the unix socket (the node's own server). Remote: the
`lab_ha` user over TCP, to fence a deposed writer through its own server
(read_only on, client sessions killed: this works while that node's
helpers are frozen), to read how far a replica got, and to catch up from
it. Every remote call is bounded (connect, read and write timeouts).
"""
import os
import threading
import time

import pymysql

from . import gtid

SOCKET = "/run/mysqld/mysqld.sock"
HA_USER = "lab_ha"
# Sessions a fence kills: the app's, and the heartbeat writer's (its commit
# may wait for a semi-sync ack too, and would hold SET GLOBAL read_only up).
FENCED_USERS = ("lab_app", "lab_beat")
# How long a fence waits for read_only to take before it kills sessions (fence()).
GENTLE_S = 0.05
STATUS_VARS = ("Rpl_semi_sync_master_status", "Rpl_semi_sync_master_clients",
               "Rpl_semi_sync_master_wait_sessions", "Rpl_semi_sync_master_yes_tx")


class DbError(Exception):
    """A MariaDB server did not answer, or refused."""


def _secret(name):
    path = f"/run/secrets/{name}"
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return os.environ.get(name.upper(), "")


def local(timeout_s=5):
    """Open a root connection to this node's server over its socket (UTC clock)."""
    try:
        conn = pymysql.connect(unix_socket=SOCKET, user="root", autocommit=True,
                               connect_timeout=timeout_s, read_timeout=timeout_s, write_timeout=timeout_s)
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
        return conn
    except pymysql.MySQLError as exc:
        raise DbError(f"local server: {exc}") from exc


def remote(address, connect_s=0.3, io_s=3.0):
    """Open a lab_ha connection to the server at ADDRESS; raise DbError fast when it does not answer.

    CONNECT_S bounds the TCP connect AND the server's greeting: a frozen
    server (docker pause) accepts the connection in the kernel but never
    greets. Statements may then take IO_S (a fence waits for commits).
    """
    try:
        conn = pymysql.connect(host=address, port=3306, user=HA_USER, password=_secret("mysql_ha_password"),
                               autocommit=True, connect_timeout=connect_s, read_timeout=connect_s,
                               write_timeout=io_s, ssl_disabled=True)
    except (pymysql.MySQLError, OSError) as exc:
        raise DbError(f"{address}: {exc}") from exc
    conn._read_timeout = io_s   # pymysql applies it at each read; no public setter
    return conn


def one(conn, sql, args=None):
    """Run SQL; return its first row (or None)."""
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchone()


def rows(conn, sql, args=None):
    """Run SQL; return its rows as dicts."""
    with conn.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def execute(conn, *statements):
    """Run each statement (no result wanted)."""
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


# ---- reading a server's state -------------------------------------------------------

def poll(conn, with_links):
    """Return the server's state as plain data; replication links only WITH_LINKS (they change slowly)."""
    ro, binlog, slave, server_id, semi_on, now = one(
        conn, "SELECT @@global.read_only, @@gtid_binlog_pos, @@gtid_slave_pos, @@server_id,"
              " @@global.rpl_semi_sync_master_enabled, UNIX_TIMESTAMP(NOW(6))")
    status = {r["Variable_name"]: r["Value"] for r in rows(
        conn, "SHOW GLOBAL STATUS WHERE Variable_name IN (%s)" % ",".join(["%s"] * len(STATUS_VARS)), STATUS_VARS)}
    beats = {int(r["server_id"]): (float(r["ts"]), float(r["applied"]) if r["applied"] is not None else None)
             for r in rows(conn, "SELECT server_id, UNIX_TIMESTAMP(ts) AS ts, UNIX_TIMESTAMP(applied_at) AS applied"
                                 " FROM lab.heartbeat")}
    state = {"read_only": bool(int(ro)), "pos": gtid.parse(binlog), "slave_pos": gtid.parse(slave),
             "server_id": int(server_id), "now": float(now), "heartbeats": beats,
             "semi_enabled": bool(int(semi_on)),
             "semi_on": status.get("Rpl_semi_sync_master_status") == "ON",
             "semi_clients": int(status.get("Rpl_semi_sync_master_clients") or 0),
             "semi_waiting": int(status.get("Rpl_semi_sync_master_wait_sessions") or 0),
             "semi_yes_tx": int(status.get("Rpl_semi_sync_master_yes_tx") or 0)}
    if with_links:
        state["links"] = links(conn)
    return state


def links(conn):
    """Return {source: {"io", "sql", "io_pos", "sql_error", "io_error"}} of every replication link of the server."""
    out = {}
    for r in rows(conn, "SHOW ALL SLAVES STATUS"):
        out[r["Connection_name"]] = {"io": r["Slave_IO_Running"], "sql": r["Slave_SQL_Running"],
                                     "io_pos": gtid.parse(r["Gtid_IO_Pos"]),
                                     "sql_error": r["Last_SQL_Error"] or "", "io_error": r["Last_IO_Error"] or "",
                                     "ignore": r.get("Replicate_Ignore_Domain_Ids") or ""}
    return out


# ---- fencing ---------------------------------------------------------------------------

def kill_sessions(conn, users=FENCED_USERS):
    """Kill every session of USERS; return how many."""
    found = rows(conn, "SELECT id FROM information_schema.processlist WHERE user IN (%s)"
                 % ",".join(["%s"] * len(users)), users)
    killed = 0
    for r in found:
        try:
            execute(conn, f"KILL CONNECTION {int(r['id'])}")
            killed += 1
        except pymysql.MySQLError:
            pass  # it ended on its own meanwhile
    return killed


def fence(open_conn, timeout_s=3.0, gentle_s=GENTLE_S):
    """Make a server stop taking writes now; return its binlog position afterwards.

    OPEN_CONN() opens a connection to it. read_only is asked for first:
    SET GLOBAL read_only waits for the commits in flight and takes as they
    end (a healthy writer's commits take milliseconds), and from then on
    MariaDB refuses any commit of the app's with error 1290, a transaction
    left open included: nothing of it was done, and the app runs it again.
    So a fence that lasts a moment (a lease renewal late while etcd elects
    a leader) kills no session and leaves no outcome in doubt. A commit
    waiting for a semi-sync acknowledgement that does not come would hold
    read_only up for ever: if it has not taken after GENTLE_S, the sessions
    that could be committing are killed, again and again, until it has. A
    killed commit is never acknowledged to its client (it gets an error:
    an outcome in doubt).
    """
    done, errors = threading.Event(), []

    def set_read_only():
        try:
            conn = open_conn()
            try:
                execute(conn, "SET SESSION lock_wait_timeout = 2", "SET GLOBAL read_only = ON")
            finally:
                conn.close()
        except (DbError, pymysql.MySQLError, OSError) as exc:
            errors.append(str(exc))
        finally:
            done.set()

    conn = open_conn()
    try:
        threading.Thread(target=set_read_only, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        if not done.wait(gentle_s):
            while True:
                kill_sessions(conn)
                if done.wait(0.05) or time.monotonic() > deadline:
                    break
            kill_sessions(conn)
        ro, pos = one(conn, "SELECT @@global.read_only, @@gtid_binlog_pos")
    except (pymysql.MySQLError, OSError) as exc:
        raise DbError(f"fencing failed: {exc}") from exc
    finally:
        conn.close()
    if not int(ro):
        raise DbError(f"read_only did not take: {errors or 'timed out'}")
    return gtid.parse(pos)


# ---- replication links -------------------------------------------------------------------

def configure_link(conn, source, address, password, server_id):
    """Create the link from SOURCE if missing, or fix its settings; return what was done ('' if nothing).

    GTID from this node's slave position, and IGNORE_DOMAIN_IDS its own
    domains: a node never takes its own transactions back from a peer (its
    position in them would be what it last saw come back, which a peer
    rebuilt since may no longer hold). MASTER_HEARTBEAT_PERIOD under
    slave_net_timeout (3 s, common.cnf) makes a silent, dead source visible
    within seconds.
    """
    ignore = ",".join(str(d) for d in gtid.own_domains(server_id))
    existing = links(conn).get(source)
    if existing is not None and ignored(existing) == set(gtid.own_domains(server_id)):
        return ""
    if existing is not None:
        execute(conn, f"STOP SLAVE '{source}'")
    with conn.cursor() as cur:
        cur.execute(f"CHANGE MASTER '{source}' TO MASTER_HOST=%s, MASTER_PORT=3306, MASTER_USER='lab_repl',"
                    " MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1,"
                    f" MASTER_HEARTBEAT_PERIOD=1, IGNORE_DOMAIN_IDS=({ignore})", (address, password))
    return "reconfigured" if existing is not None else "created"


def ignored(link):
    """The set of GTID domains LINK ignores."""
    return {int(d) for d in link["ignore"].replace(" ", "").split(",") if d}


def align_own_domains(conn, source_pos, server_id):
    """Make this node ask a source for its own domains where the source has them; return True if it changed.

    A node never takes its own transactions back (IGNORE_DOMAIN_IDS), but
    it still sends its position in them when it connects, and the source
    refuses a position it does not hold: one older than its binary log
    (after the source was rebuilt) or newer (the source has not yet
    received this node's newest heartbeats). So the position in its own
    domains is set to the source's. gtid_strict_mode refuses a slave
    position behind this node's own binary log for a moment here: these
    are its own domains, which no peer ever writes.
    """
    slave = gtid.parse(one(conn, "SELECT @@gtid_slave_pos")[0])
    want = dict(slave)
    for d in gtid.own_domains(server_id):
        if d in source_pos:
            want[d] = source_pos[d]
        else:
            want.pop(d, None)
    if want == slave:
        return False
    for name in links(conn):
        execute(conn, f"STOP SLAVE '{name}'")
    with conn.cursor() as cur:
        cur.execute("SET GLOBAL gtid_strict_mode = OFF")
        try:
            cur.execute("SET GLOBAL gtid_slave_pos = %s", (gtid.format(want),))
        finally:
            cur.execute("SET GLOBAL gtid_strict_mode = ON")
    return True


def start_link(conn, source):
    """Start the link from SOURCE (both threads)."""
    execute(conn, f"START SLAVE '{source}'")


def stop_link(open_conn, source, io_only=False, wait_s=0.3):
    """Stop the link from SOURCE (nothing more arrives from it); IO_ONLY: what arrived is still applied.

    Returns whether the stop completed within WAIT_S. An IO thread stuck
    connecting to a node that vanished (no answer, not even a refusal)
    holds STOP SLAVE until its connect attempt times out, seconds later;
    the stop then goes on in the background, on a connection of its own
    (OPEN_CONN()), and the thread, once its connect returns, sees that it
    was told to stop and reads nothing.
    """
    done = threading.Event()

    def run():
        try:
            conn = open_conn()
            try:
                execute(conn, f"STOP SLAVE '{source}'" + (" IO_THREAD" if io_only else ""))
            finally:
                conn.close()
        except (DbError, pymysql.MySQLError, OSError):
            pass   # no such link, or the server went away: nothing arrives either way
        finally:
            done.set()
    threading.Thread(target=run, daemon=True).start()
    return done.wait(wait_s)


def wait_applied(conn, pos, timeout_s):
    """Wait until POS is applied here; return True if it was within TIMEOUT_S."""
    if not pos:
        return True
    got = one(conn, "SELECT MASTER_GTID_WAIT(%s, %s)", (gtid.format(pos), timeout_s))[0]
    return got == 0
