"""The job queue (labapp.jobs) and its worker (labapp.worker), against a real MariaDB.

A checkout queues its invoice in the same transaction as the order; a
worker claims it under a lease and makes the invoice once in effect, even
when a worker dies or freezes mid-job; a job that keeps failing is parked
with its error.
"""
import pytest

from labapp import db as labdb, jobs
from labapp.worker import Worker
from unitstack import closed_port


@pytest.fixture
def job_app(make_app):
    """The app with a fast queue: cheap invoices, no back-off between attempts."""
    return make_app(JOB_INVOICE_ROUNDS=1000, JOB_RETRY_S=0, JOB_MAX_ATTEMPTS=3)


def order(client, product_id=1, qty=2):
    """Put QTY of PRODUCT_ID in CLIENT's cart and check out; return the answer's JSON."""
    assert client.post("/cart/items", json={"product_id": product_id, "qty": qty}).status_code == 200
    r = client.post("/orders", content_type="application/json")
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def claim(app, owner, lease_s=10, max_attempts=3):
    with app.app_context():
        return labdb.run(lambda cur: jobs.claim(cur, owner, lease_s, max_attempts))


def finish(app, job, made_by):
    with app.app_context():
        return labdb.run(lambda cur: jobs.finish(cur, job, jobs.invoice_effect("0" * 64, made_by)))


def test_a_checkout_answers_at_once_and_queues_its_invoice_with_the_order(auth, db):
    c = auth.user("alice")
    placed = order(c)
    assert placed["invoice"] == {"state": "queued", "poll": f"/orders/{placed['order_id']}"}
    assert db.rows("SELECT kind, order_id, state, attempts FROM jobs") == [
        {"kind": "invoice", "order_id": placed["order_id"], "state": "queued", "attempts": 0}]
    shown = c.get(placed["invoice"]["poll"]).get_json()
    assert shown["invoice"] == {"state": "queued", "attempts": 0}
    assert db.value("SELECT COUNT(*) FROM invoices") == 0


def test_a_worker_makes_the_invoice_and_the_order_shows_it(job_app, auth, db):
    c = auth.user("alice")
    placed = order(c, 3, 2)
    worker = Worker(job_app, "worker-a")
    assert worker.once() == "done"
    assert worker.once() == "idle"
    invoice = c.get(f"/orders/{placed['order_id']}").get_json()["invoice"]
    assert invoice["state"] == "done" and invoice["made_by"] == "worker-a" and invoice["attempt"] == 1
    assert invoice["number"] == f"INV-{placed['order_id']:08d}"
    row = db.rows("SELECT total_cents, digest FROM invoices WHERE order_id = %s", (placed["order_id"],))[0]
    assert row["total_cents"] == 2 * 1999
    # The digest is a pure function of the order: another worker would make the same invoice.
    with job_app.app_context():
        document = labdb.run(lambda cur: jobs.invoice_document(cur, placed["order_id"]), read_only=True)
    assert row["digest"] == jobs.invoice_digest(document, 1000)


def test_two_workers_never_take_the_same_job(job_app, auth):
    c = auth.user("alice")
    first, second = order(c)["order_id"], order(c)["order_id"]
    a, b = claim(job_app, "worker-a"), claim(job_app, "worker-b")
    assert {a["order_id"], b["order_id"]} == {first, second}
    assert claim(job_app, "worker-c") is None, "both jobs are leased"


def test_a_dead_worker_s_job_is_taken_again_and_done_once(job_app, auth, db):
    c = auth.user("alice")
    order_id = order(c)["order_id"]
    lost = claim(job_app, "worker-a")
    # worker-a dies (or freezes) holding the job: its lease runs out.
    db.rows("UPDATE jobs SET lease_until = NOW(6) - INTERVAL 1 SECOND")
    again = claim(job_app, "worker-b")
    assert again["id"] == lost["id"] and again["attempts"] == 2
    assert finish(job_app, again, "worker-b") is True
    # worker-a thaws and finishes late: its lease is gone, so nothing of it is committed.
    assert finish(job_app, lost, "worker-a") is False
    assert db.rows("SELECT order_id, made_by, attempt FROM invoices") == [
        {"order_id": order_id, "made_by": "worker-b", "attempt": 2}]
    assert db.value("SELECT state FROM jobs") == "done"


def test_an_invoice_made_twice_is_one_invoice(job_app, auth, db):
    c = auth.user("alice")
    order(c)
    worker = Worker(job_app, "worker-a")
    assert worker.once() == "done"
    # As if the commit that marked it done was in doubt and the job ran again.
    db.rows("UPDATE jobs SET state = 'queued'")
    assert Worker(job_app, "worker-b").once() == "done"
    assert db.rows("SELECT made_by, attempt FROM invoices") == [{"made_by": "worker-a", "attempt": 1}]


def test_a_poisoned_job_is_retried_a_bounded_number_of_times_then_parked(job_app, auth, db):
    db.rows("INSERT INTO jobs (kind, order_id) VALUES ('invoice', 999999)")
    worker = Worker(job_app, "worker-a")
    assert [worker.once() for _ in range(3)] == ["failed", "failed", "parked"]
    assert worker.once() == "idle", "a parked job is not taken again"
    row = db.rows("SELECT state, attempts, last_error, finished_at FROM jobs")[0]
    assert row["state"] == "parked" and row["attempts"] == 3 and row["finished_at"] is not None
    assert row["last_error"] == "order 999999 does not exist"
    assert db.value("SELECT COUNT(*) FROM invoices") == 0


def test_a_failed_job_waits_out_its_back_off(make_app, db):
    app = make_app(JOB_RETRY_S=30, JOB_MAX_ATTEMPTS=3)
    db.rows("INSERT INTO jobs (kind, order_id) VALUES ('invoice', 999999)")
    worker = Worker(app, "worker-a")
    assert worker.once() == "failed"
    assert worker.once() == "idle", "not before its retry is due"
    assert db.value("SELECT run_after > NOW(6) + INTERVAL 25 SECOND FROM jobs") == 1


def test_a_job_whose_worker_dies_on_every_attempt_is_parked(job_app, auth, db):
    c = auth.user("alice")
    order(c)
    for attempt in (1, 2, 3):
        assert claim(job_app, f"worker-{attempt}")["attempts"] == attempt
        db.rows("UPDATE jobs SET lease_until = NOW(6) - INTERVAL 1 SECOND")
    assert claim(job_app, "worker-4") == {"parked": db.value("SELECT id FROM jobs")}
    row = db.rows("SELECT state, last_error FROM jobs")[0]
    assert row["state"] == "parked" and row["last_error"] == "its worker was lost on attempt 3"


def test_a_worker_without_a_database_says_so_at_once(make_app, clean):
    app = make_app(DB_WRITE_PORT=closed_port(), DB_RETRY_WINDOW_S=0.2)
    with pytest.raises(labdb.DatabaseUnavailable, match="cannot connect"):
        Worker(app, "worker-a").once()
