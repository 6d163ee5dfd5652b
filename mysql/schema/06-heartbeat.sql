-- Replication heartbeat (`make lag`). Each writable node's db-heartbeat
-- stamps its own row (key: @@server_id) with UTC_TIMESTAMP(6) every 100 ms;
-- the writes are binlogged and replicate like any transaction, so on a
-- replica, UTC now minus a source's newest stamp is how stale that source's
-- data is there. UTC, not NOW(): a time zone or DST change on one node must
-- not read as hours of lag.
CREATE TABLE IF NOT EXISTS heartbeat (
    server_id  INT UNSIGNED NOT NULL PRIMARY KEY,
    ts         DATETIME(6)  NOT NULL
) ENGINE=InnoDB;
