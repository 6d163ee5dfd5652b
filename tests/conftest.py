"""Fixtures shared by every tier of tests, and the suite's bound on each test."""
import os

import pytest
from labctl import containers, progress
from labtest import Client


def pytest_collection_modifyitems(items):
    """Mark each test by its folder: tests/unit -> unit, tests/integration -> integration."""
    for item in items:
        for tier in ("unit", "integration", "chaos"):
            if f"{os.sep}{tier}{os.sep}" in str(item.fspath):
                item.add_marker(getattr(pytest.mark, tier))


# No test (nor its setup or teardown: a module's lab fixtures, a chaos
# scenario's heal) may hang the suite: each phase fails after this long.
# The longest today, restart-lab's chaos scenario, takes about 3 minutes.
TEST_TIMEOUT_S = int(os.environ.get("LAB_TEST_TIMEOUT", "600"))


def _bounded(item, phase):
    return progress.bounded(TEST_TIMEOUT_S, f"{item.nodeid}: {phase} (LAB_TEST_TIMEOUT)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _bounded(item, "setup"):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _bounded(item, "the test"):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    with _bounded(item, "teardown"):
        yield


@pytest.fixture(scope="session")
def lab():
    """Fail fast, with the fix, when the lab is not running."""
    running = {containers.node_of(c) for c in containers.find()}
    if "gateway" not in running:
        pytest.fail("the lab is not running: start it with `make up`", pytrace=False)
    return containers


@pytest.fixture
def client(lab):
    """A new user's browser: its own cookie jar, talking to 127.0.0.1:8080."""
    with Client(browser=True) as c:
        yield c
