"""The lab's settings, read from the environment with defaults, in one place."""
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose" / "docker-compose.yml"
SECRETS_DIR = ROOT / ".secrets"

PROJECT = os.environ.get("COMPOSE_PROJECT_NAME", "scalelab")
TAG = os.environ.get("LAB_TAG", "latest")
BASE_IMAGE = os.environ.get("BASE_IMAGE", "debian:bookworm-slim")
HTTP_PORT = int(os.environ.get("LAB_HTTP_PORT", "8080"))
HTTPS_PORT = int(os.environ.get("LAB_HTTPS_PORT", "8443"))
ADMIN_PORT = int(os.environ.get("LAB_ADMIN_PORT", "8404"))
# First two octets of the lab's subnets (compose reads the same variable).
LAB_NET = os.environ.get("LAB_NET", "172.28")

# Bounds for `make up`'s waits, in seconds.
HEALTH_TIMEOUT_S = float(os.environ.get("LAB_HEALTH_TIMEOUT", "240"))
# After every part is up, how long `make up` waits for all of them to look healthy at once.
SETTLE_TIMEOUT_S = float(os.environ.get("LAB_SETTLE_TIMEOUT", "60"))
PROBE_TIMEOUT_S = 5     # one on-demand run of a node's health check (containers.ready)
REPLICATION_TIMEOUT_S = float(os.environ.get("LAB_REPLICATION_TIMEOUT", "90"))
# A link counts as delivering while its heartbeat lag is under this.
REPLICATION_FRESH_MS = 2000

# Images built from this repository: name -> build context (folder).
IMAGES = {
    "mariadb": ROOT / "mysql",
    "haproxy": ROOT / "haproxy",
    "memcached": ROOT / "memcached",
    "etcd": ROOT / "etcd",
    "web": ROOT / "app",
}

# Generated on first `make up`, never committed.
SECRETS = ("mysql_app_password", "mysql_repl_password", "mysql_monitor_password",
           "lb_cookie_key", "lb_admin_password", "app_admin_password", "mysql_ha_password")

# Nodes, roles, VIPs and replication links: labctl/topology.py.


def image(name):
    """Return the full tag of lab image NAME."""
    return f"scalelab/{name}:{TAG}"
