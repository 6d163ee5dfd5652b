-- Replication heartbeat (`make lag`). Each master's db-heartbeat stamps its
-- own row (key: @@server_id) with UTC_TIMESTAMP(6) every 100 ms; the writes
-- are binlogged and replicate like any transaction. UTC, not NOW(): a time
-- zone or DST change on one node must not read as hours of lag.
--
-- applied_at is when the row was written on THIS node, by this node's
-- clock: the triggers below set it on every insert and update, including
-- those the replication SQL thread applies (slave_run_triggers_for_rbr =
-- ENFORCE, common.cnf). So on a replica, applied_at - ts is how long that
-- beat took from being stamped on its source to being applied here: the
-- replication delay, to the microsecond, with no sampling phase in it.
-- SYSDATE, not UTC_TIMESTAMP: in the SQL thread, NOW() and UTC_TIMESTAMP()
-- are the source's time of the event, SYSDATE() is the replica's own clock.
-- An explicit definer: this file runs as --init-file, with no user, and a
-- trigger whose definer does not exist fails every write to its table.
CREATE TABLE IF NOT EXISTS heartbeat (
    server_id   INT UNSIGNED NOT NULL PRIMARY KEY,
    ts          DATETIME(6)  NOT NULL,
    applied_at  DATETIME(6)  NULL
) ENGINE=InnoDB;
-- Data directories made before applied_at existed.
ALTER TABLE heartbeat ADD COLUMN IF NOT EXISTS applied_at DATETIME(6) NULL;
CREATE OR REPLACE DEFINER = 'root'@'localhost' TRIGGER heartbeat_applied_on_insert BEFORE INSERT ON heartbeat
    FOR EACH ROW SET NEW.applied_at = CONVERT_TZ(SYSDATE(6), 'SYSTEM', '+00:00');
CREATE OR REPLACE DEFINER = 'root'@'localhost' TRIGGER heartbeat_applied_on_update BEFORE UPDATE ON heartbeat
    FOR EACH ROW SET NEW.applied_at = CONVERT_TZ(SYSDATE(6), 'SYSTEM', '+00:00');
