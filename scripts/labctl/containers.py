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
    # ignore_removed: a container removed between the listing and its
    # inspection (a sidecar, a node `make scale` takes away) is not an error.
    found = client().containers.list(all=all, filters=_filters(role=role, node=node), ignore_removed=True)
    return sorted(found, key=node_of)


def rows(all=True):  # noqa: A002 - mirrors `docker ps --all`
    """Return the lab's containers as the list call's own rows: {"node", "role", "state", "status"}.

    One API call, no inspect per container (find() makes one per
    container): cheap enough to poll every second.
    """
    out = []
    for r in client().api.containers(all=all, filters=_filters()):
        labels = r.get("Labels") or {}
        out.append({"node": labels.get("lab.node", "?"), "role": labels.get("lab.role", "?"),
                    "state": r.get("State", "?"), "status": r.get("Status", "")})
    return out


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


def ready(container):
    """Return health(CONTAINER), except that a running container Docker has not judged healthy
    (yet, or again) is asked at once: its own health check is run now, bounded by
    settings.PROBE_TIMEOUT_S, and passing it counts as healthy.

    Docker probes each node only every 10 s (each probe is a `runc exec`,
    some 40-60 ms of the host's CPU; README, "How the pairs fail over",
    says what the idle lab costs), so a node started or unpaused a moment
    ago would wait up to 10 s for its first verdict: the tools that wait
    for a node ask it themselves, as often as they look.
    """
    status = health(container)
    if status not in ("starting", "unhealthy"):
        return status
    test = (container.attrs["Config"].get("Healthcheck") or {}).get("Test") or []
    if len(test) < 2 or test[0] not in ("CMD", "CMD-SHELL"):
        return status
    cmd = test[1:] if test[0] == "CMD" else ["sh", "-c", test[1]]
    try:
        code, _ = container.exec_run(["timeout", str(settings.PROBE_TIMEOUT_S), *cmd])
    except docker.errors.APIError:   # paused, or gone since
        return status
    return "healthy" if code == 0 else status


def sh(container, cmd, user=None):
    """Run CMD (a list, or a string for bash -c) in CONTAINER; return (exit code, output)."""
    if isinstance(cmd, str):
        cmd = ["bash", "-c", cmd]
    result = container.exec_run(cmd, user=user or "", demux=False)
    return result.exit_code, result.output.decode("utf-8", "replace")


def processes(container):
    """Return [(pid, argv)] of the processes in CONTAINER, from /proc (the images have no ps)."""
    script = ('for p in /proc/[0-9]*; do [ -r "$p/cmdline" ] || continue; '
              'printf "%s\\t" "${p#/proc/}"; tr "\\0" "\\t" < "$p/cmdline" 2>/dev/null; echo; done')
    code, out = sh(container, ["bash", "-c", script])
    found = []
    for line in out.splitlines():
        pid, _, rest = line.partition("\t")
        argv = [a for a in rest.split("\t") if a]
        if pid.isdigit() and argv and argv[:2] != ["bash", "-c"]:
            found.append((int(pid), argv))
    return found


def addresses(node):
    """Return every IPv4 address of NODE's container (one per network), from the Docker API."""
    c = get(node)
    c.reload()
    return sorted(n["IPAddress"] for n in c.attrs["NetworkSettings"]["Networks"].values() if n["IPAddress"])


def network(short):
    """Return the Docker name of the lab's network SHORT (compose prefixes it)."""
    nets = client().networks.list(filters={"label": [
        f"com.docker.compose.project={settings.PROJECT}", f"com.docker.compose.network={short}"]})
    if not nets:
        raise LookupError(f"no lab network {short!r}; is the lab up (make up)?")
    return nets[0].name


def sidecar(cmd, node=None, networks=(), image="haproxy", timeout_s=120, **kwargs):
    """Run CMD (a list, or a string for bash -c) in a throwaway container of a lab image; return its stdout.

    The one way the tools run something where the host cannot reach:
      node=NODE        in NODE's network namespace, with NET_ADMIN (the
                       nemesis's partitions and latency; the haproxy image
                       has iptables and tc);
      networks=[...]   on these lab networks (the bench's load from inside);
      neither          with no network at all (openssl on files).
    KWARGS go to Docker (volumes, environment, working_dir). The container
    carries no lab.node label, so no tool mistakes it for a node; a failure
    raises RuntimeError with its output.
    """
    if isinstance(cmd, str):
        cmd = ["bash", "-c", cmd]
    if node is not None:
        net = {"network_mode": f"container:{get(node).id}", "cap_add": ["NET_ADMIN"]}
    elif networks:
        net = {"network": network(networks[0])}
    else:
        net = {"network_mode": "none"}
    c = client().containers.create(settings.image(image), cmd, entrypoint=[], labels={"lab.sidecar": "1"},
                                   healthcheck={"test": ["NONE"]}, **net, **kwargs)
    try:
        for n in networks[1:]:
            client().networks.get(network(n)).connect(c)
        c.start()
        code = c.wait(timeout=timeout_s)["StatusCode"]
        if code != 0:
            output = c.logs().decode("utf-8", "replace")[-1000:]
            raise RuntimeError(f"sidecar {cmd} exited with {code}: {output}")
        return c.logs(stdout=True, stderr=False).decode("utf-8", "replace")
    finally:
        c.remove(force=True)
