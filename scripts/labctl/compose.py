"""The one compose wrapper: Compose v2 (`docker compose`) or v1 (`docker-compose`)."""
import functools
import os
import shutil
import subprocess

from . import settings


@functools.lru_cache(maxsize=None)
def command():
    """Return the compose command line prefix available here, v2 preferred."""
    forced = os.environ.get("COMPOSE")
    if forced:
        return forced.split()
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise SystemExit("❌ neither `docker compose` (v2) nor `docker-compose` (v1) is installed")


def run(*args, check=True, capture=False):
    """Run a compose subcommand on the lab's project; return the CompletedProcess."""
    cmd = [*command(), "-p", settings.PROJECT, "-f", str(settings.COMPOSE_FILE), *args]
    return subprocess.run(cmd, check=check, text=True, capture_output=capture)
