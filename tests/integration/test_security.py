"""What the lab defends at its edges: operators' endpoints, the lab CA, the HA loops, the console's network."""
import subprocess

import pytest

from labctl import containers, settings, tls, topology
from labctl.containers import addresses
from labtest import BASE_URL, Client, can_connect

# printf format: \\r\\n are CRLF for printf; the body does not matter (refused before it is read).
SWITCHOVER = "POST /switchover HTTP/1.0\\r\\nContent-Length: 2\\r\\n\\r\\n{}"
HTTPS = f"https://127.0.0.1:{settings.HTTPS_PORT}"


@pytest.mark.parametrize("path", ["/metrics", "/readyz"])
@pytest.mark.parametrize("base", [pytest.param(None, id="http"), pytest.param("https", id="https")])
def test_the_nodes_metrics_and_readiness_are_not_public(lab, path, base):
    with Client(HTTPS if base else BASE_URL) as c:
        c.verify = str(tls.CA_CERT)
        r = c.get(path)
    assert r.status_code == 404, f"{path} is public: {r.status_code} {r.text[:200]}"
    assert "web" not in r.headers.get("X-Served-By", ""), "the request reached a web node"


def _ca_extensions():
    """Return the lab CA's basic and name constraints, as openssl prints them (in a throwaway container)."""
    return containers.sidecar(["openssl", "x509", "-noout", "-ext", "basicConstraints,nameConstraints",
                               "-in", "/tls/ca.crt"], volumes={str(tls.TLS_DIR): {"bind": "/tls", "mode": "ro"}})


def test_the_lab_ca_can_vouch_only_for_localhost_and_its_key_is_gone(lab):
    ext = _ca_extensions()
    assert "Permitted:" in ext and "DNS:localhost" in ext and "IP:127.0.0.1/255.255.255.255" in ext, ext
    assert "pathlen:0" in ext, ext
    assert not (tls.TLS_DIR / "ca.key").exists(), "the CA's private key must not be kept"


def _post_to_ha(from_node, to_node):
    """Send a switchover request to TO_NODE's HA loop from FROM_NODE's container; return the status line."""
    address = next(a for a in addresses(to_node) if a.startswith(f"{settings.LAB_NET}.4."))
    script = f"exec 3<>/dev/tcp/{address}/9200 && printf '{SWITCHOVER}' >&3 && head -n1 <&3"
    code, out = containers.sh(containers.get(from_node), ["bash", "-c", script])
    assert code == 0, out
    return out.strip()


@pytest.mark.parametrize("sender", [pytest.param(topology.REPLICAS[0], id="a-peer-db-node"),
                                    pytest.param("dblb1", id="a-db-lb")])
def test_an_ha_loop_takes_operator_requests_from_inside_its_node_only(lab, sender):
    source = topology.SOURCES[1]
    before = topology.writers()
    assert " 403 " in _post_to_ha(sender, source)
    assert topology.writers() == before, "a refused request must change nothing"


@pytest.mark.parametrize("vip_of, port", [pytest.param("dblb1", 3306, id="db-vip"),
                                         pytest.param("lb1", 80, id="web-vip")])
def test_the_console_cannot_reach_the_vips(lab, vip_of, port):
    assert not can_connect("admin", containers.get(vip_of).labels["lab.vip"], port)


def test_make_up_after_scaling_to_one_serves_three_web_nodes_again(lab):
    def make(*args):
        r = subprocess.run(["make", *args], cwd=settings.ROOT, capture_output=True, text=True, timeout=600,
                           check=False)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]

    try:
        make("scale", "WEB=1")
    finally:
        make("up")
    served = set()
    for _ in range(12):
        with Client() as c:
            served.add(c.get("/healthz").headers["X-Served-By"])
    assert served == {"web1", "web2", "web3"}, f"after make up only {sorted(served)} serve"
