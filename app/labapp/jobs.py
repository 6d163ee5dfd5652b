"""The job queue: work off the request path, in the database itself.

A checkout puts an "invoice" job in the `jobs` table in the same
transaction as the order (mysql/schema/30-jobs.sql), so the two commit, fail
over and replicate together: no order without its job, no acknowledged job
lost with a broker. Workers (labapp.worker, containers of their own) claim
the oldest ready job with SELECT ... FOR UPDATE SKIP LOCKED (two workers
never wait on, or take, the same row) and hold it under a lease:

- delivery is at least once: a worker that dies or freezes mid-job stops
  renewing nothing, its lease runs out (JOB_LEASE_S) and the next claim
  takes the job again, one attempt more;
- the effect is exactly once: an invoice's key is its order, so a job run
  twice (its first worker died after the effect, before marking it done)
  leaves one invoice; and a worker whose lease ran out (it was frozen past
  it) finds so when it finishes, and commits nothing;
- a job that keeps failing (a poisoned job) is retried JOB_MAX_ATTEMPTS
  times, JOB_RETRY_S apart and doubling, then parked with its last error
  (`make status` lists the parked jobs).

Every function takes a cursor inside a transaction of labapp.db.run and
may run more than once (db.run's retries): each reads what it changes.
"""
import hashlib
import json

INVOICE = "invoice"


def enqueue(cur, kind, order_id):
    """Queue a job of KIND for ORDER_ID (once: a second enqueue of the same pair is a no-op)."""
    cur.execute("INSERT IGNORE INTO jobs (kind, order_id) VALUES (%s, %s)", (kind, order_id))


def claim(cur, owner, lease_s, max_attempts):
    """Lease the oldest ready job to OWNER for LEASE_S; return it, {"parked": id} or None.

    Ready: queued and due, or running under a lease that ran out (its
    worker died). A job that already had MAX_ATTEMPTS tries is parked
    instead of run again.
    """
    cur.execute("SELECT id, kind, order_id, attempts, state FROM jobs"
                " WHERE (state = 'queued' AND run_after <= NOW(6))"
                "    OR (state = 'running' AND lease_until < NOW(6))"
                " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")
    job = cur.fetchone()
    if job is None:
        return None
    if job["attempts"] >= max_attempts:
        # A running one's worker was lost; a queued one keeps the error of its last try.
        cur.execute("UPDATE jobs SET last_error = IF(state = 'running', CONCAT('its worker was lost on attempt ',"
                    " attempts, IFNULL(CONCAT('; before that: ', last_error), '')), last_error),"
                    " state = 'parked', lease_owner = NULL, lease_until = NULL, finished_at = NOW(6)"
                    " WHERE id = %s", (job["id"],))
        return {"parked": job["id"]}
    cur.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = %s,"
                " lease_until = NOW(6) + INTERVAL %s SECOND WHERE id = %s", (owner, lease_s, job["id"]))
    job["attempts"] += 1
    job["owner"] = owner
    return job


def _still_mine(cur, job):
    """Lock JOB's row; True if it is still leased to its owner on this attempt (the lease did not run out)."""
    cur.execute("SELECT state, lease_owner, attempts, lease_until >= NOW(6) AS valid FROM jobs"
                " WHERE id = %s FOR UPDATE", (job["id"],))
    row = cur.fetchone()
    return bool(row and row["state"] == "running" and row["lease_owner"] == job["owner"]
                and row["attempts"] == job["attempts"] and row["valid"])


def finish(cur, job, effect):
    """Commit JOB's EFFECT(cur, job) and mark it done, if it is still ours; return whether it was."""
    if not _still_mine(cur, job):
        return False
    effect(cur, job)
    cur.execute("UPDATE jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, finished_at = NOW(6),"
                " last_error = NULL WHERE id = %s", (job["id"],))
    return True


def fail(cur, job, error, max_attempts, retry_s):
    """Record that JOB failed with ERROR: queue it again after a back-off, or park it; return the new state."""
    if not _still_mine(cur, job):
        return None
    state = "parked" if job["attempts"] >= max_attempts else "queued"
    delay = retry_s * 2 ** (job["attempts"] - 1)
    cur.execute("UPDATE jobs SET state = %s, lease_owner = NULL, lease_until = NULL, last_error = %s,"
                " run_after = NOW(6) + INTERVAL %s SECOND,"
                " finished_at = IF(%s = 'parked', NOW(6), NULL) WHERE id = %s",
                (state, str(error)[:500], delay, state, job["id"]))
    return state


class PoisonedOrder(Exception):
    """The order of an invoice job cannot be invoiced (it is gone, or it has no items)."""


def invoice_document(cur, order_id):
    """Return the order ORDER_ID as the canonical JSON text its invoice is computed from."""
    cur.execute("SELECT id, user_id, total_cents FROM orders WHERE id = %s", (order_id,))
    order = cur.fetchone()
    if order is None:
        raise PoisonedOrder(f"order {order_id} does not exist")
    cur.execute("SELECT product_id, qty, unit_price_cents FROM order_items WHERE order_id = %s"
                " ORDER BY product_id", (order_id,))
    order["items"] = cur.fetchall()
    if not order["items"]:
        raise PoisonedOrder(f"order {order_id} has no items")
    return json.dumps(order, sort_keys=True, separators=(",", ":"))


def invoice_digest(document, rounds):
    """The invoice's seconds of CPU: a key stretch of the order's text (what a PDF render costs, in a lab)."""
    return hashlib.pbkdf2_hmac("sha256", document.encode(), b"scalelab-invoice", rounds).hex()


def invoice_effect(digest, made_by):
    """Return the effect that stores the invoice of DIGEST, made by MADE_BY; the order is its key (idempotent)."""
    def store(cur, job):
        cur.execute("SELECT total_cents FROM orders WHERE id = %s", (job["order_id"],))
        order = cur.fetchone()
        if order is None:
            raise PoisonedOrder(f"order {job['order_id']} does not exist")
        cur.execute("INSERT IGNORE INTO invoices (order_id, job_id, total_cents, digest, made_by, attempt)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    (job["order_id"], job["id"], order["total_cents"], digest, made_by, job["attempts"]))
    return store


def status_of_order(cur, order_id):
    """Return what the page shows of ORDER_ID's invoice: its job's state, and the invoice once made."""
    cur.execute("SELECT j.state, j.attempts, j.last_error, i.made_by, i.attempt, i.created_at, i.digest"
                " FROM jobs j LEFT JOIN invoices i ON i.order_id = j.order_id"
                " WHERE j.kind = %s AND j.order_id = %s", (INVOICE, order_id))
    row = cur.fetchone()
    if row is None:
        return None
    out = {"state": row["state"], "attempts": row["attempts"]}
    if row["state"] == "parked":
        out["error"] = row["last_error"]
    if row["made_by"] is not None:
        out.update(made_by=row["made_by"], attempt=row["attempt"], number=f"INV-{order_id:08d}",
                   digest=row["digest"][:16], made_at=row["created_at"].isoformat())
    return out

