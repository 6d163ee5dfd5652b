"""Load-balancer pairs fail over fast and honestly, at both tiers."""
import ssl
import subprocess
import threading
import time
import urllib.request

import pytest

from labctl import containers, lifecycle, operations, progress, settings, topology
from labtest import Client, app_sql

# The lab's sources (masters) and read replica (slave), from its topology.
FIRST, SECOND = topology.SOURCES
[REPLICA] = topology.REPLICAS

CA = str(settings.SECRETS_DIR / "tls" / "ca.crt")
HTTPS = f"https://127.0.0.1:{settings.HTTPS_PORT}"


@pytest.fixture
def heal(lab):
    """Whatever the test breaks, start it again and wait until the lab is whole."""
    yield
    lifecycle.heal()


def vip_holder(role):
    """Return the node holding ROLE's VIP, asserting there is exactly one."""
    _, holders = topology.vip_holders(role)
    assert len(holders) == 1, f"{role} VIP held by {holders}"
    return holders[0]


def wait_vip_moves_to(role, node, timeout_s=15):
    """Wait until NODE alone holds ROLE's VIP."""
    progress.wait_until(lambda: (topology.vip_holders(role)[1] == [node], topology.vip_holders(role)[1]),
                        timeout_s, interval_s=0.2)


def wait_ok(request, timeout_s=20):
    """Call REQUEST until it returns a 2xx response (bounded); return that response."""
    def check():
        try:
            r = request()
        except OSError as exc:  # connection refused/reset while the VIP moves
            return False, repr(exc)
        return r.ok, r
    return progress.wait_until(check, timeout_s, interval_s=0.1)


def other(pair, node):
    """Return the node of PAIR ('lb1','lb2') that is not NODE."""
    return next(n for n in pair if n != node)


def test_killing_the_web_vip_holder_moves_the_vip(heal, client):
    holder = vip_holder("lb")
    containers.get(holder).kill()
    wait_vip_moves_to("lb", other(("lb1", "lb2"), holder))
    assert wait_ok(lambda: client.get("/healthz")).status_code == 200


def test_a_logged_in_user_keeps_web_node_and_session_across_lb_failover(heal, logged_in):
    first = logged_in.get("/")
    node, visits = first.headers["X-Served-By"], first.json()["visits"]
    containers.get(vip_holder("lb")).kill()
    after = wait_ok(lambda: logged_in.get("/"))
    assert after.headers["X-Served-By"] == node, "the sticky cookie must mean the same on both LBs"
    assert after.json()["visits"] > visits, "the session must survive the LB failover"
    assert logged_in.get("/cart").status_code == 200, "the user must still be logged in (not 401)"


def test_killing_only_haproxy_in_the_vip_holder_moves_the_vip(heal, client):
    holder = vip_holder("lb")
    code, out = containers.sh(containers.get(holder), "pkill -KILL -x haproxy")
    assert code == 0, out
    wait_vip_moves_to("lb", other(("lb1", "lb2"), holder))
    assert wait_ok(lambda: client.get("/healthz")).status_code == 200
    # The node stops altogether (lb-entrypoint), rather than limp on half-alive.
    progress.wait_until(lambda: (containers.health(containers.get(holder)) == "exited", None), 15)


@pytest.mark.parametrize("role, pair", [("lb", ("lb1", "lb2")), ("dblb", ("dblb1", "dblb2"))])
def test_a_killed_lb_started_again_rejoins_as_backup(heal, role, pair):
    holder = vip_holder(role)
    survivor = other(pair, holder)
    containers.get(holder).kill()
    wait_vip_moves_to(role, survivor)
    containers.get(holder).start()
    lifecycle.wait_healthy([holder])
    # No preemption, no flapping: the survivor keeps the VIP, alone.
    for _ in range(10):
        assert topology.vip_holders(role)[1] == [survivor]
        time.sleep(0.5)


def test_https_works_with_the_lab_ca_and_marks_cookies_secure(lab):
    with Client(HTTPS) as c:
        c.verify = CA
        r = c.get("/")
        assert r.status_code == 200
        assert r.headers["X-Served-By"].startswith("web")
        assert "secure" in r.headers["Set-Cookie"].lower(), "the app must see X-Forwarded-Proto: https"


def _tls_handshake(max_version):
    ctx = ssl.create_default_context(cafile=CA)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer old protocols
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = max_version
    return urllib.request.urlopen(HTTPS + "/healthz", context=ctx, timeout=5).status


# The client must offer TLS 1.1 on purpose, which Python flags as deprecated.
@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_1_1_is_refused_and_1_2_accepted(lab):
    assert _tls_handshake(ssl.TLSVersion.TLSv1_2) == 200
    with pytest.raises((ssl.SSLError, urllib.error.URLError)):
        _tls_handshake(ssl.TLSVersion.TLSv1_1)


def _status_from_the_gateway():
    """GET /healthz from inside the gateway: a client with another address than the host's."""
    req = r"exec 3<>/dev/tcp/127.0.0.1/8080; printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3; head -n1 <&3"
    code, out = containers.sh(containers.get("gateway"), req)
    assert code == 0, out
    return int(out.split()[1])


def test_a_client_over_the_rate_limit_gets_429_while_another_is_served(lab):
    statuses, stop = [], threading.Event()

    def hammer():
        with Client() as c:
            while not stop.is_set():
                statuses.append(c.get("/healthz").status_code)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        progress.wait_until(lambda: (429 in statuses, len(statuses)), 20, interval_s=0.1)
        assert _status_from_the_gateway() == 200
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
    time.sleep(2)  # let the host's rate window empty before the next test


def _write_master():
    server_id, error = app_sql(3306, "SELECT 1")
    assert error is None
    return {1: FIRST, 2: SECOND}[server_id]


def test_writes_move_when_the_active_master_dies_and_fail_back_only_when_told(heal, client):
    operations.failback()  # start from the usual state: writes on master1
    assert _write_master() == FIRST
    containers.get(FIRST).kill()
    progress.wait_until(lambda: (_safe_write_master() == SECOND, None), 30, interval_s=0.5)
    assert wait_ok(lambda: client.get("/")).status_code == 200

    containers.get(FIRST).start()
    lifecycle.wait_healthy([FIRST])
    lifecycle.wait_replication()
    for _ in range(6):  # master1 is back and healthy, yet writes stay on master2
        assert _write_master() == SECOND
        time.sleep(0.5)

    result = subprocess.run(["make", "failback"], cwd=settings.ROOT, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _write_master() == FIRST


def _safe_write_master():
    try:
        return _write_master()
    except AssertionError:
        return None


def _served_by_fresh_clients(n):
    """Return the web nodes that serve N new users (no cookies), one request each."""
    served = set()
    for _ in range(n):
        with Client() as c:
            served.add(c.get("/healthz").headers["X-Served-By"])
    return served


def test_scale_out_to_five_and_back_to_three_without_a_failed_request(lab):
    def make_scale(n):
        r = subprocess.run(["make", "scale", f"WEB={n}"], cwd=settings.ROOT, capture_output=True,
                           text=True, timeout=300, check=False)
        assert r.returncode == 0, r.stdout + r.stderr

    try:
        make_scale(5)
        assert _served_by_fresh_clients(15) == {f"web{i}" for i in range(1, 6)}

        failures, done, stop = [], [], threading.Event()

        def user():
            # A person's pace (~15 requests/s), well under the per-client rate limit.
            with Client() as c:
                while not stop.is_set():
                    r = c.get("/")
                    (done if r.status_code == 200 else failures).append(r.status_code)
                    time.sleep(0.05)

        users = [threading.Thread(target=user) for _ in range(3)]
        for t in users:
            t.start()
        try:
            make_scale(3)
        finally:
            stop.set()
            for t in users:
                t.join(timeout=15)
        assert not failures, f"{len(failures)} failed requests while scaling in: {failures[:5]}"
        assert len(done) > 10
        assert _served_by_fresh_clients(12) == {"web1", "web2", "web3"}
    finally:
        make_scale(3)
