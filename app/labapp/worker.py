"""A job worker: takes jobs from the queue (labapp.jobs) and does them, one at a time.

Run as `python -m labapp.worker` in a container of its own (worker1..N,
`make scale WORKERS=n`). It reaches the database through the db VIP's
write port as the web nodes do (labapp.db, with its retries), so a
failover costs it a pause, not a job. Each round touches ALIVE_FILE; the
container's health check fails when the loop stopped turning.
"""
import logging
import pathlib
import signal
import threading

from . import create_app, db, jobs

ALIVE_FILE = pathlib.Path("/tmp/lab-worker.alive")
log = logging.getLogger("labapp.worker")


class Worker:
    """One worker's loop over the queue of APP's database."""

    def __init__(self, app, name=None):
        self.app = app
        cfg = app.config
        self.name = name or cfg["LAB_NODE"]
        self.lease_s = cfg["JOB_LEASE_S"]
        self.max_attempts = cfg["JOB_MAX_ATTEMPTS"]
        self.retry_s = cfg["JOB_RETRY_S"]
        self.rounds = cfg["JOB_INVOICE_ROUNDS"]
        self.stopping = threading.Event()

    def once(self):
        """Take one job and do it; return what happened: idle, done, lost, failed or parked."""
        with self.app.app_context():
            job = db.run(lambda cur: jobs.claim(cur, self.name, self.lease_s, self.max_attempts))
            if job is None:
                return "idle"
            if "parked" in job:
                log.warning("job %s parked: its worker was lost on every attempt", job["parked"])
                return "parked"
            log.info("job %s (%s of order %s), attempt %d", job["id"], job["kind"], job["order_id"],
                     job["attempts"])
            try:
                document = db.run(lambda cur: jobs.invoice_document(cur, job["order_id"]), read_only=True)
                digest = jobs.invoice_digest(document, self.rounds)
                effect = jobs.invoice_effect(digest, self.name)
                mine = db.run(lambda cur: jobs.finish(cur, job, effect))
            except jobs.PoisonedOrder as exc:
                error = str(exc)
                state = db.run(lambda cur: jobs.fail(cur, job, error, self.max_attempts, self.retry_s))
                log.warning("job %s failed (attempt %d): %s; now %s", job["id"], job["attempts"], error, state)
                return "parked" if state == "parked" else "failed"
            if not mine:
                # Frozen past the lease: another worker has the job; the effect was not committed here.
                log.warning("job %s: the lease ran out before it was done; left to its new owner", job["id"])
                return "lost"
            log.info("job %s done", job["id"])
            return "done"

    def run(self):
        """Work until stopped: poll every JOB_POLL_S while the queue is empty; wait out a lost database."""
        poll_s = self.app.config["JOB_POLL_S"]
        log.info("%s: working (lease %s s, %s attempts, %s rounds per invoice)", self.name, self.lease_s,
                 self.max_attempts, self.rounds)
        while not self.stopping.is_set():
            ALIVE_FILE.touch()
            try:
                outcome = self.once()
            except db.DatabaseUnavailable as exc:
                log.warning("database unavailable: %s; trying again in %s s", exc, poll_s)
                outcome = "idle"
            if outcome == "idle":
                self.stopping.wait(poll_s)


def main():
    """Run one worker until SIGTERM (it finishes the job in hand first)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    worker = Worker(create_app())
    signal.signal(signal.SIGTERM, lambda *_: worker.stopping.set())
    worker.run()
    log.info("%s: stopped", worker.name)


if __name__ == "__main__":
    main()
