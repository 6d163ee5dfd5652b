-- The job queue: work taken off the request path (app/labapp/jobs.py).
-- The queue is a table on the writer, so a job commits in the same
-- transaction as the order that needs it (no order without its job, no job
-- without its order), replicates and fails over with it. Workers claim jobs
-- with SELECT ... FOR UPDATE SKIP LOCKED (MariaDB >= 10.6) under a lease:
-- a worker that dies mid-job leaves a lease that runs out, and another
-- worker takes the job again (at-least-once delivery). Applied on every
-- node at every start, so every statement is idempotent.
--
-- state: queued (waiting, or waiting for its retry at run_after), running
-- (leased to lease_owner until lease_until), done, parked (failed
-- JOB_MAX_ATTEMPTS times; last_error says why; `make status` lists it).
-- A job's effect is idempotent (invoices.order_id is the key): a job done
-- twice, because its first worker died after the effect and before it
-- marked the job done, still leaves one invoice.
CREATE TABLE IF NOT EXISTS jobs (
    id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind         VARCHAR(32)  NOT NULL,
    order_id     BIGINT UNSIGNED NOT NULL,
    state        ENUM('queued', 'running', 'done', 'parked') NOT NULL DEFAULT 'queued',
    attempts     INT UNSIGNED NOT NULL DEFAULT 0,
    created_at   DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    run_after    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    lease_owner  VARCHAR(64)  NULL,
    lease_until  DATETIME(6)  NULL,
    finished_at  DATETIME(6)  NULL,
    last_error   VARCHAR(500) NULL,
    UNIQUE KEY jobs_order (kind, order_id),
    KEY jobs_ready (state, run_after)
) ENGINE=InnoDB;

-- The effect of an "invoice" job: one row per order, whoever made it.
-- made_by and attempt say which worker made it on which try (a job redone
-- after its worker died shows attempt >= 2).
CREATE TABLE IF NOT EXISTS invoices (
    order_id     BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    job_id       BIGINT UNSIGNED NOT NULL,
    total_cents  BIGINT UNSIGNED NOT NULL,
    digest       CHAR(64)     NOT NULL,
    made_by      VARCHAR(64)  NOT NULL,
    attempt      INT UNSIGNED NOT NULL,
    created_at   DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;
