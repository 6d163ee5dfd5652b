"""Fixtures of the chaos suite: the nemesis (healed in a finaliser) and the report."""
import pytest

from labctl import operations
from chaos import report
from chaos.nemesis import Nemesis


@pytest.fixture(scope="session")
def chaos_report():
    """Collect one entry per scenario; write reports/chaos/ when the session ends."""
    entries = []
    yield entries
    if entries:
        summary = report.write(entries)
        print(f"\nchaos report: {report.REPORT_DIR}/report.md — {summary['passed']}/{summary['scenarios']} "
              f"passed, {summary['lost_writes']} lost and {summary['duplicate_writes']} duplicated writes")


@pytest.fixture
def nemesis(lab):
    """A nemesis whose every fault is healed afterwards, whatever the test's outcome."""
    n = Nemesis()
    yield n
    n.heal_all()
    operations.failback()  # writes back on master1, the usual state, for the next scenario
