"""The chaos scenarios under pytest: one test per scenario of labctl.chaos.scenarios, run by its runner.

`make chaos` runs the same scenarios without pytest (labctl.chaos.runner);
this is the way in for `pytest -m chaos -k <name>` and for a debugger.
"""
import pytest

from labctl.chaos import runner
from labctl.chaos.scenarios import SCENARIOS


@pytest.mark.parametrize("s", [pytest.param(s, id=s.name) for s in SCENARIOS])
def test_scenario(lab, chaos_report, s):
    entry = runner.run_one(s)   # bounded by the suite's per-test timeout (tests/conftest.py)
    chaos_report.append(entry)
    assert entry["passed"], f"{s.name} failed: {entry['failed_check']}: {entry['first_error']}"
