"""Fixtures shared by every tier of tests."""
import os

import pytest
from labctl import containers
from labtest import Client


def pytest_collection_modifyitems(items):
    """Mark each test by its folder: tests/unit -> unit, tests/integration -> integration."""
    for item in items:
        for tier in ("unit", "integration", "chaos"):
            if f"{os.sep}{tier}{os.sep}" in str(item.fspath):
                item.add_marker(getattr(pytest.mark, tier))


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
