"""Fixtures of the chaos suite: the nemesis (healed in a finaliser) and the report."""
import pytest

from labctl import operations
from chaos import report
from labctl.nemesis import Nemesis


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
    """A nemesis whose every fault is healed afterwards, whatever the test's outcome.

    Scenarios heal and fail back themselves, inside the judged run; this is
    the safety net for one that stopped half-way.
    """
    n = Nemesis()
    yield n
    n.heal_all()
    operations.failback()
