"""Fixtures for tests against the running lab."""
import secrets

import pytest


@pytest.fixture
def probe_token():
    """A unique token for a replication_probe row."""
    return "t-" + secrets.token_hex(8)


@pytest.fixture
def logged_in(client):
    """The `client` fixture's browser, logged in as a newly registered user."""
    creds = {"username": "it_" + secrets.token_hex(5), "password": "integration password"}
    assert client.post("/register", json=creds).status_code == 201
    assert client.post("/login", json=creds).status_code == 200
    assert client.get("/cart").status_code == 200, "the new user's session must work before the fault"
    return client
