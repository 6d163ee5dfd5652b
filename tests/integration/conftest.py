"""Fixtures for tests against the running lab."""
import secrets

import pytest


@pytest.fixture
def probe_token():
    """A unique token for a replication_probe row."""
    return "t-" + secrets.token_hex(8)
