"""Bad input gets a clear 4xx, never a 5xx, and writes nothing."""
import pytest

from bad_input import CASES, FORGED_SESSION
from unitstack import Auth, reset
from labapp import create_app


@pytest.fixture(scope="module")
def clean(stack, pristine_products):
    """Clean once for the module: a bad request changes nothing, so the cases can share the state."""
    reset(stack, pristine_products)


@pytest.fixture(scope="module")
def senders(app_config, clean):
    """Clients for each kind of sender, the user with 90 of product 1 in the cart."""
    auth = Auth(create_app(app_config))
    user = auth.user("carol")
    assert user.post("/cart/items", json={"product_id": 1, "qty": 90}).status_code == 200
    # No cookie jar for "anon": a client with one replaces the Cookie header the forged-cookie cases send.
    return {"anon": auth.app.test_client(use_cookies=False), "user": user, "admin": auth.admin()}


@pytest.mark.parametrize("who,method,path,data,headers,status", CASES)
def test_bad_input_gets_a_4xx_and_writes_nothing(senders, db, who, method, path, data, headers, status):
    before = db.snapshot()
    r = senders[who].open(path, method=method, data=data, headers=headers)
    assert r.status_code == status, r.get_data(as_text=True)[:300]
    assert set(r.get_json()) == {"error"}
    assert r.headers["X-Served-By"] == "unit"
    assert db.snapshot() == before


def test_a_forged_session_id_is_not_adopted(senders, db):
    client = senders["anon"].application.test_client()
    client.set_cookie("lab_session", FORGED_SESSION)
    r = client.get("/")
    assert r.status_code == 200 and r.get_json()["visits"] == 1
    assert client.get_cookie("lab_session").value != FORGED_SESSION
    assert db.value("SELECT COUNT(*) FROM sessions WHERE id = %s", (FORGED_SESSION,)) == 0
