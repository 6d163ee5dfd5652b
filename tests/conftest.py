"""Fixtures shared by every tier of tests."""
import os

import pytest
import requests

from labctl import containers, settings

# Tests reach the lab only through the ports it publishes on loopback.
BASE_URL = os.environ.get("LAB_URL", f"http://127.0.0.1:{settings.HTTP_PORT}")


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


class Client(requests.Session):
    """An HTTP client for the lab's site, with a timeout on every request."""

    def __init__(self, base_url=BASE_URL, timeout=10):
        super().__init__()
        self.base_url, self.timeout = base_url, timeout

    def request(self, method, url, *args, **kwargs):  # noqa: D102 - requests' signature
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, self.base_url + url, *args, **kwargs)


@pytest.fixture
def client(lab):
    """A new user's browser: its own cookie jar, talking to 127.0.0.1:8080."""
    with Client() as c:
        yield c
