"""The one way to find the lab's containers: by their lab.role / lab.node labels."""
import functools

import docker

from . import settings


@functools.lru_cache(maxsize=None)
def client():
    """Return a Docker API client (from DOCKER_HOST or the local socket)."""
    try:
        c = docker.from_env(timeout=30)
        c.ping()
        return c
    except docker.errors.DockerException as exc:
        raise SystemExit(f"❌ cannot reach the Docker engine: {exc}") from exc


def _filters(**labels):
    wanted = [f"com.docker.compose.project={settings.PROJECT}"]
    wanted += [f"lab.{k}={v}" for k, v in labels.items() if v is not None]
    return {"label": wanted}


def find(role=None, node=None, all=False):  # noqa: A002 - mirrors `docker ps --all`
    """Return the lab's containers with the given role and/or node, sorted by node."""
    found = client().containers.list(all=all, filters=_filters(role=role, node=node))
    return sorted(found, key=node_of)


def get(node):
    """Return the container of NODE (running or not); raise LookupError if none."""
    found = find(node=node, all=True)
    if not found:
        raise LookupError(f"no container for lab node {node!r}; is the lab up (make up)?")
    return found[0]


def node_of(container):
    """Return the lab.node label of CONTAINER."""
    return container.labels.get("lab.node", "?")


def role_of(container):
    """Return the lab.role label of CONTAINER."""
    return container.labels.get("lab.role", "?")


def health(container):
    """Return 'healthy', 'unhealthy', 'starting', or the container's state if it has no health."""
    container.reload()
    state = container.attrs["State"]
    if state.get("Status") != "running":
        return state.get("Status", "unknown")
    return state.get("Health", {}).get("Status", "running")


def sh(container, cmd, user=None):
    """Run CMD (a list, or a string for bash -c) in CONTAINER; return (exit code, output)."""
    if isinstance(cmd, str):
        cmd = ["bash", "-c", cmd]
    result = container.exec_run(cmd, user=user or "", demux=False)
    return result.exit_code, result.output.decode("utf-8", "replace")
