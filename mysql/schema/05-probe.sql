-- Rows that operators and tests write on one master to watch them reach
-- the other nodes (replication checks); the app never touches it.
CREATE TABLE IF NOT EXISTS replication_probe (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    origin      VARCHAR(32)  NOT NULL,
    token       VARCHAR(64)  NOT NULL,
    created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY replication_probe_token (token)
) ENGINE=InnoDB;
