"""`make console`, end to end: a real headless Chromium drives the page while the lab runs.

The console is started as a user would (`python -m labctl console`), its
URL (with the token) read from what it prints. Chromium and chromedriver
are Debian's (`.ci/run` installs them), driven with selenium.
"""
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException, TimeoutException,
                                        WebDriverException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from labctl import autoscale, containers, lifecycle, operations, settings, topology
from labctl.chaos.scenarios import SCENARIOS

PORT = 8405
REPORT_DIR = settings.ROOT / "reports" / "console"


@pytest.fixture(scope="module")
def console(lab):
    """Run the console as `make console` does; yield its URL (with the token); stop it with Ctrl-C."""
    env = {**os.environ, "PYTHONPATH": str(settings.ROOT / "scripts")}
    env.pop("LAB_CONSOLE_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "console", "--port", str(PORT)], cwd=settings.ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the console printed nothing in 60 s"
        line = proc.stdout.readline()  # the first line is the URL
        m = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", line)
        assert m, f"the console printed no URL: {line!r}"
        yield m.group(1)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (Debian's chromium and chromedriver)."""
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1300"):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except WebDriverException as exc:
        pytest.fail(f"cannot start headless Chromium ({exc.msg}); install Debian's chromium and chromium-driver")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait(driver, what, timeout_s, check):
    """Wait (bounded) until CHECK(driver) is truthy; fail naming WHAT."""
    # The page redraws every second: an element read during a redraw is
    # stale or briefly missing, which only means "look again".
    waiter = WebDriverWait(driver, timeout_s, poll_frequency=0.1,
                           ignored_exceptions=(StaleElementReferenceException, NoSuchElementException))
    try:
        return waiter.until(check)
    except TimeoutException as exc:
        raise AssertionError(f"within {timeout_s} s: {what}") from exc


def shown_nodes(driver):
    return {e.get_attribute("data-node") for e in driver.find_elements(By.CSS_SELECTOR, "#diagram g.node")}


def test_the_console_shows_the_lab_and_moves_the_vip_when_its_holder_is_killed(console, browser):
    browser.get(console)
    running = {containers.node_of(c) for c in containers.find()}
    wait(browser, f"the diagram shows every running node {sorted(running)}", 20,
         lambda d: running <= shown_nodes(d))
    _, [holder] = topology.vip_holders("lb")
    [other] = [lb for lb in topology.LB_PAIRS["lb"] if lb != holder]
    wait(browser, f"the diagram shows the web VIP on {holder}", 10,
         lambda d: d.find_element(By.ID, f"node-{holder}").get_attribute("data-vip") == "1")
    wait(browser, "the latency strip shows probe samples", 10,
         lambda d: d.find_elements(By.CSS_SELECTOR, "#strip circle.sample"))
    try:
        browser.find_element(By.CSS_SELECTOR, f'button[data-node="{holder}"][data-action="kill"]').click()
        clicked = time.monotonic()
        wait(browser, f"the web VIP shown on {other}", 3,
             lambda d: d.find_element(By.ID, f"node-{other}").get_attribute("data-vip") == "1"
             and d.find_element(By.ID, f"node-{holder}").get_attribute("data-vip") == "0")
        wait(browser, f"a fault window for {holder} on the latency strip", max(0.1, 3 - (time.monotonic() - clicked)),
             lambda d: d.find_elements(By.CSS_SELECTOR, f'#strip rect.fault-window[data-node="{holder}"]'))
        assert "kill " + holder in browser.find_element(By.ID, "log").text
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        time.sleep(2)  # a little of the strip after the fault, for the picture
        shot = REPORT_DIR / "console.png"
        assert browser.save_screenshot(str(shot))
        data = shot.read_bytes()
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and width >= 900 and height >= 600, (len(data), width, height)
    finally:
        lifecycle.heal()


def test_actions_need_the_token_and_the_console_binds_to_loopback_only(console):
    base = console.split("/?")[0]
    token = console.split("token=")[1]
    kill = {"action": "kill", "node": "web1"}
    assert requests.post(f"{base}/api/action", json=kill, timeout=5).status_code == 403
    assert requests.post(f"{base}/api/action", json=kill, headers={"X-Console-Token": "wrong"}, timeout=5).status_code == 403
    assert requests.get(f"{base}/api/state", timeout=5).status_code == 403
    # A page on another site cannot send the token, nor pass as the console's own page.
    evil = {"X-Console-Token": token, "Origin": "http://evil.example"}
    assert requests.post(f"{base}/api/action", json=kill, headers=evil, timeout=5).status_code == 403
    # DNS rebinding: a name that resolves to 127.0.0.1 is still not the console's host.
    assert requests.get(f"{base}/api/state", headers={"X-Console-Token": token, "Host": f"evil.example:{PORT}"},
                        timeout=5).status_code == 403
    ok = {"X-Console-Token": token}
    assert requests.post(f"{base}/api/action", json={"action": "explode", "node": "web1"}, headers=ok,
                         timeout=5).status_code == 400
    assert requests.post(f"{base}/api/action", json={"action": "kill", "node": "nosuch"}, headers=ok,
                         timeout=5).status_code == 400
    assert requests.post(f"{base}/api/action", data="kill web1", headers={**ok, "Content-Type": "text/plain"},
                         timeout=5).status_code == 415
    assert containers.health(containers.get("web1")) == "healthy", "a refused action changed nothing"
    assert requests.get(f"{base}/api/state", headers=ok, timeout=5).status_code == 200
    assert listening_addresses(PORT) == {"127.0.0.1"}


def listening_addresses(port):
    """The local IPv4 addresses with a socket listening on PORT (from /proc/net/tcp; IPv6 must have none)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.partition(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    found.add(".".join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
                              if len(address) == 8 else "ipv6:" + address)
    return found


def test_the_picker_lists_the_librarys_scenarios_and_runs_one_without_pytest(console):
    """The scenario picker: the names of labctl.chaos.scenarios; a bad one refused; one run to its verdict."""
    base, token = console.split("/?")[0], console.split("token=")[1]
    ok = {"X-Console-Token": token}
    state = requests.get(f"{base}/api/state", headers=ok, timeout=5).json()
    assert state["scenarios"] == [s.name for s in SCENARIOS]
    refused = requests.post(f"{base}/api/scenario", json={"name": "kill-the-moon"}, headers=ok, timeout=5)
    assert refused.status_code == 400 and "kill-the-moon" in refused.json()["error"]
    started = requests.post(f"{base}/api/scenario", json={"name": "kill-backup-lb"}, headers=ok, timeout=5)
    assert started.status_code == 200, started.text
    runners = [argv for argv in _processes() if "chaos" in argv and "--scenario" in argv]
    assert runners and not any("pytest" in " ".join(argv) for argv in runners), runners
    deadline, texts = time.monotonic() + 180, []
    while time.monotonic() < deadline:
        texts = [e["text"] for e in requests.get(f"{base}/api/state", headers=ok, timeout=5).json()["events"]
                 if e["kind"] == "scenario"]
        if any(t.startswith("scenario kill-backup-lb: ") and "starting" not in t for t in texts):
            break
        time.sleep(1)
    assert "scenario kill-backup-lb: passed; the report is in reports/chaos/" in texts, texts
    assert any("nemesis: kill lb" in t for t in texts), texts


def _processes():
    """The command lines (argv lists) of this machine's processes."""
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        out.append([a.decode(errors="replace") for a in argv if a])
    return out


def test_the_console_shows_the_autoscaler_its_leader_and_its_decisions(console, browser):
    """With `make autoscale` running (here told to keep one node more), the page names its leader,
    the node count and the decision with its reason."""
    size = topology.STANDARD_WEB_NODES
    browser.get(console)
    try:
        with autoscale.controllers(autoscale.Policy(min_nodes=size + 1, max_nodes=size + 1), count=1) as [proc]:
            me = autoscale.identity(proc)
            wait(browser, f"the console names {me} as the autoscaler's leader", 30,
                 lambda d: f"led by {me}" in d.find_element(By.ID, "autoscaler").text)
            wait(browser, f"the console shows the scale-out to {size + 1} and {size + 1} web nodes", 60,
                 lambda d: f"out {size} → {size + 1}" in d.find_element(By.ID, "decisions").text
                 and d.find_element(By.ID, "autoscaler").text.startswith(f"{size + 1} web node(s)"))
            assert "fewer than MIN" in browser.find_element(By.ID, "decisions").text
        wait(browser, "the console says no controller runs once it stopped", 20,
             lambda d: "no controller running" in d.find_element(By.ID, "autoscaler").text)
    finally:
        operations.scale(size)
