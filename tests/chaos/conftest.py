"""The chaos report of a pytest run: one entry per scenario, written when the session ends."""
import pytest

from labctl.chaos import report


@pytest.fixture(scope="session")
def chaos_report():
    """Collect one entry per scenario; write reports/chaos/ when the session ends."""
    entries = []
    yield entries
    if entries:
        summary = report.write(entries)
        print(f"\nchaos report: {report.REPORT_DIR}/report.md — {summary['passed']}/{summary['scenarios']} "
              f"passed, {summary['lost_writes']} lost and {summary['duplicate_writes']} duplicated writes")
