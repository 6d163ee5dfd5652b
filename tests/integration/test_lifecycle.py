"""`make up` is idempotent, and `make down && make up` keeps data and replication."""
import subprocess

from labctl import containers, replication, settings, topology
from labtest import probe_count, wait_for_probe, write_probe

# The lab's sources (masters) and read replica (slave), from its topology.
FIRST, SECOND = topology.SOURCES
[REPLICA] = topology.REPLICAS

DB_NODES = topology.DB_NODES


def make(target, timeout_s=900):
    """Run `make TARGET` as a user would; return its output, failing the test on error."""
    result = subprocess.run(["make", target], cwd=settings.ROOT, capture_output=True, text=True,
                            timeout=timeout_s, check=False)
    assert result.returncode == 0, f"make {target} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def snapshot():
    """Return {node: (container id, start time)} for the running lab."""
    return {containers.node_of(c): (c.id, c.attrs["State"]["StartedAt"]) for c in containers.find()}


def test_a_second_make_up_changes_nothing(lab):
    before = snapshot()
    out = make("up")
    assert snapshot() == before, "make up recreated or restarted containers"
    assert "created link" not in out, "make up reconfigured replication links that existed"


def test_down_then_up_keeps_data_and_replication(lab, probe_token):
    write_probe(FIRST, probe_token)
    for node in DB_NODES:
        wait_for_probe(node, probe_token)

    make("down")
    assert not containers.find(all=True), "make down left containers behind"
    out = make("up")
    assert "created link" not in out, "replication links should survive make down"

    for node in DB_NODES:
        assert probe_count(node, probe_token) == 1, f"{node} lost data across make down/up"
    assert all(link.running for link in replication.links())
    after = probe_token + "-after"
    write_probe(SECOND, after)
    for node in (FIRST, REPLICA):
        wait_for_probe(node, after)
