"""Read the app's configuration from the environment, with defaults."""
import os
import socket


def _secret(name, default=None):
    """Return secret NAME from $NAME, or from the file named by $NAME_FILE."""
    if os.environ.get(name):
        return os.environ[name]
    path = os.environ.get(name + "_FILE")
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    return default


def load():
    """Return the configuration as a dict of Flask config keys."""
    env = os.environ.get
    return {
        "LAB_NODE": env("LAB_NODE") or socket.gethostname(),
        # Writes, and every read of data a user just wrote (session, cart,
        # orders): the db VIP's write port, one master at a time.
        "DB_WRITE_HOST": env("DB_WRITE_HOST", "127.0.0.1"),
        "DB_WRITE_PORT": int(env("DB_WRITE_PORT", "3306")),
        # Catalogue reads: the read port (slave1, falling back to masters).
        "DB_READ_HOST": env("DB_READ_HOST") or env("DB_WRITE_HOST", "127.0.0.1"),
        "DB_READ_PORT": int(env("DB_READ_PORT") or env("DB_WRITE_PORT", "3306")),
        "DB_NAME": env("DB_NAME", "lab"),
        "DB_USER": env("DB_USER", "lab_app"),
        "DB_PASSWORD": _secret("DB_PASSWORD", ""),
        # Short timeouts: a dead database must give a quick 503, not a hang.
        "DB_CONNECT_TIMEOUT_S": float(env("DB_CONNECT_TIMEOUT_S", "2")),
        "DB_IO_TIMEOUT_S": float(env("DB_IO_TIMEOUT_S", "5")),
        "SESSION_COOKIE": env("SESSION_COOKIE", "lab_session"),
        "SESSION_TTL_S": int(env("SESSION_TTL_S", str(7 * 24 * 3600))),
        "MAX_CONTENT_LENGTH": int(env("MAX_BODY_BYTES", str(64 * 1024))),
    }
