-- Server-side sessions. The cookie carries only `id`, an opaque random
-- token; everything else stays here, on the write path, so any web node
-- can serve any user and a dead web node loses nothing.
CREATE TABLE IF NOT EXISTS sessions (
    id          VARCHAR(64)  NOT NULL PRIMARY KEY,
    data        JSON         NOT NULL,
    created_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
                             ON UPDATE CURRENT_TIMESTAMP(6),
    expires_at  DATETIME(6)  NOT NULL,
    KEY sessions_expires (expires_at)
) ENGINE=InnoDB;
