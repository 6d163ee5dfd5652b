"""`make chaos` as a user drives it: the list, a bad name, and pytest's view of the same scenarios."""
import subprocess

from labctl import settings
from labctl.chaos.scenarios import SCENARIOS


def _make(*args, timeout_s=120):
    return subprocess.run(["make", "--no-print-directory", *args], cwd=settings.ROOT, capture_output=True,
                          text=True, timeout=timeout_s, check=False)


def test_list_names_every_scenario_with_its_budget():
    done = _make("chaos", "LIST=1")
    assert done.returncode == 0, done.stderr
    listed = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    assert listed == [s.name for s in SCENARIOS]
    assert "span ≤ 3.0 s" in done.stdout and "≤ 0 failed" in done.stdout


def test_an_unknown_scenario_is_refused_with_the_way_to_list_them():
    done = _make("chaos", "SCENARIO=kill-the-moon")
    assert done.returncode != 0
    assert "no chaos scenario matches 'kill-the-moon' (make chaos LIST=1 lists them)" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_pytest_parametrises_the_same_scenarios():
    done = subprocess.run([str(settings.ROOT / ".venv/bin/python"), "-m", "pytest", "--collect-only", "-q",
                           "-m", "chaos", "tests/chaos"], cwd=settings.ROOT, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-2000:]
    prefix = "tests/chaos/test_scenarios.py::test_scenario["
    collected = [line[len(prefix):-1] for line in done.stdout.splitlines() if line.startswith(prefix)]
    assert collected == [s.name for s in SCENARIOS]
