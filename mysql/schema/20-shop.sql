-- The shop: users, the catalogue, orders. Applied on every node at every
-- start (see mysql/bin/db-entrypoint), so every statement is idempotent
-- and seed rows carry explicit ids.

-- Users. The admin row is seeded here with no password hash: its password
-- is a generated deployment secret that the app checks (labapp/auth.py).
CREATE TABLE IF NOT EXISTS users (
    id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username       VARCHAR(32)  NOT NULL,
    password_hash  VARCHAR(255) NULL,
    is_admin       BOOLEAN      NOT NULL DEFAULT FALSE,
    created_at     DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    UNIQUE KEY users_username (username)
) ENGINE=InnoDB;
-- Seed rows carry explicit timestamps: each node inserts them itself, and
-- a default of "now" would differ between nodes (and their checksums with it).
INSERT IGNORE INTO users (id, username, password_hash, is_admin, created_at)
    VALUES (1, 'admin', NULL, TRUE, '2026-01-01 00:00:00');

-- The catalogue. `version` grows with every update.
CREATE TABLE IF NOT EXISTS products (
    id           INT UNSIGNED NOT NULL PRIMARY KEY,
    name         VARCHAR(100) NOT NULL,
    description  VARCHAR(500) NOT NULL DEFAULT '',
    price_cents  INT UNSIGNED NOT NULL,
    version      BIGINT UNSIGNED NOT NULL DEFAULT 1,
    updated_at   DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;
INSERT IGNORE INTO products (id, name, description, price_cents, updated_at) VALUES
    (1, 'Load balancer', 'Spreads requests over many servers.', 4999, '2026-01-01 00:00:00'),
    (2, 'Read replica', 'Takes the read load off the master.', 2999, '2026-01-01 00:00:00'),
    (3, 'Memcached node', 'Keeps hot data in memory.', 1999, '2026-01-01 00:00:00'),
    (4, 'Keepalived pair', 'Moves a virtual IP when a node dies.', 3999, '2026-01-01 00:00:00'),
    (5, 'Session table', 'Lets any web node serve any user.', 999, '2026-01-01 00:00:00'),
    (6, 'Sticky cookie', 'Keeps a user on one web node.', 499, '2026-01-01 00:00:00'),
    (7, 'Master-master link', 'Two masters, one writer at a time.', 5999, '2026-01-01 00:00:00'),
    (8, 'Health check', 'Stops traffic to a dead node.', 799, '2026-01-01 00:00:00'),
    (9, 'Retry budget', 'One more try on another path.', 1499, '2026-01-01 00:00:00'),
    (10, 'Circuit breaker', 'Stops hammering a dead dependency.', 2499, '2026-01-01 00:00:00'),
    (11, 'Write-ahead log', 'Durability before acknowledgement.', 3499, '2026-01-01 00:00:00'),
    (12, 'Idempotency key', 'A retried checkout orders once.', 1299, '2026-01-01 00:00:00');

-- Orders are self-contained: who, what, how many, at what price, when. A
-- chaos test compares them on every node after replication, so nothing in
-- them may depend on other rows that could change later.
-- (user_id, idempotency_key) is unique: a client that retries a checkout
-- with the same key gets the first order back instead of a second one.
-- origin_server and origin_term say where the order was committed: the
-- server id of the writer and its term (the leader key's revision in
-- etcd, from ha.lease), so that the chaos suite can judge the writers from
-- the data itself (an order of an older term acknowledged after one of a
-- newer term is a second writer).
CREATE TABLE IF NOT EXISTS orders (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id          BIGINT UNSIGNED NOT NULL,
    idempotency_key  VARCHAR(64)  NULL,
    total_cents      BIGINT UNSIGNED NOT NULL,
    created_at       DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    origin_server    INT UNSIGNED NULL,
    origin_term      BIGINT UNSIGNED NULL,
    UNIQUE KEY orders_idempotency (user_id, idempotency_key),
    KEY orders_user (user_id, created_at)
) ENGINE=InnoDB;
-- Data directories made before the origin columns existed.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS origin_server INT UNSIGNED NULL;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS origin_term BIGINT UNSIGNED NULL;

CREATE TABLE IF NOT EXISTS order_items (
    order_id          BIGINT UNSIGNED NOT NULL,
    product_id        INT UNSIGNED NOT NULL,
    qty               INT UNSIGNED NOT NULL,
    unit_price_cents  INT UNSIGNED NOT NULL,
    PRIMARY KEY (order_id, product_id),
    CONSTRAINT order_items_order FOREIGN KEY (order_id) REFERENCES orders (id)
) ENGINE=InnoDB;

-- The cache's invalidation log: a product write records the cache keys it
-- changed in its own transaction, and every web process replays the log
-- (app/labapp/cache.py), so that a tombstone the writing node could not
-- deliver (a cache node it could not reach) still arrives. Kept an hour.
CREATE TABLE IF NOT EXISTS cache_invalidations (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    cache_key   VARCHAR(200) NOT NULL,
    created_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    KEY cache_invalidations_created (created_at)
) ENGINE=InnoDB;
