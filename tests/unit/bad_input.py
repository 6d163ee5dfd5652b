"""Bad requests and the 4xx each must get; shared by the unit and integration tiers.

Each case is sent as raw bytes with explicit headers, so that both the
Flask test client and requests send exactly the same thing. WHO is the
sender: "anon" (no login), "user" (logged in, 90 of product 1 in the
cart) or "admin".
"""
import json

import pytest

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}  # what a cross-site form sends
GOOD_PASSWORD = "a good password"
FORGED_SESSION = "A" * 43  # well-formed, but no such session


def body(value):
    """Return VALUE as JSON bytes."""
    return json.dumps(value).encode()


def register(username=None, password=GOOD_PASSWORD, **extra):
    """Return a /register body."""
    return body({"username": username, "password": password, **extra})


def case(case_id, who, method, path, status, data=None, headers=JSON):
    """Return one bad-input case as a pytest.param."""
    return pytest.param(who, method, path, data, dict(headers), status, id=case_id)


CASES = [
    # Bodies that are not a JSON object.
    case("register-malformed-json", "anon", "POST", "/register", 400, b'{"username": "eve", '),
    case("register-not-an-object", "anon", "POST", "/register", 400, b'["eve", "pw"]'),
    case("register-empty-body", "anon", "POST", "/register", 400, b""),
    case("register-deeply-nested", "anon", "POST", "/register", 400, b"[" * 30_000 + b"]" * 30_000),
    case("register-non-utf8", "anon", "POST", "/register", 400,
         b'{"username": "eve\xff\xfe", "password": "a good password"}'),
    case("register-lone-surrogate", "anon", "POST", "/register", 400,
         b'{"username": "eve\\ud800", "password": "a good password"}'),
    case("register-form-encoded", "anon", "POST", "/register", 403,
         b"username=eve&password=a+good+password", FORM),
    case("register-form-encoded-not-cross-site", "anon", "POST", "/register", 415,
         b"username=eve&password=a+good+password", {**FORM, "X-Requested-With": "XMLHttpRequest"}),
    case("register-body-too-large", "anon", "POST", "/register", 413,
         register("eve", "x" * 100_000)),
    # Wrong types and values.
    case("register-username-number", "anon", "POST", "/register", 400, register(12345)),
    case("register-username-list", "anon", "POST", "/register", 400, register(["eve"])),
    case("register-password-null", "anon", "POST", "/register", 400, register("eve", None)),
    case("register-missing-password", "anon", "POST", "/register", 400, body({"username": "eve"})),
    case("register-unknown-field", "anon", "POST", "/register", 400, register("eve", admin=True)),
    case("register-username-too-long", "anon", "POST", "/register", 400, register("e" * 33)),
    case("register-username-too-short", "anon", "POST", "/register", 400, register("ev")),
    case("register-password-too-short", "anon", "POST", "/register", 400, register("eve", "short")),
    case("register-password-too-long", "anon", "POST", "/register", 400, register("eve", "p" * 129)),
    case("register-sql-metacharacters", "anon", "POST", "/register", 400,
         register("x'); DROP TABLE users;--")),
    case("register-username-trailing-newline", "anon", "POST", "/register", 400, register("admin\n")),
    case("register-admin-taken", "anon", "POST", "/register", 409, register("admin")),
    case("login-sql-injection", "anon", "POST", "/login", 401,
         body({"username": "' OR '1'='1", "password": "' OR '1'='1' -- "})),
    case("login-admin-wrong-password", "anon", "POST", "/login", 401,
         body({"username": "admin", "password": "not the admin password"})),
    # Unknown and garbage ids.
    case("product-unknown-id", "anon", "GET", "/products/999999", 404, headers={}),
    case("product-zero-id", "anon", "GET", "/products/0", 404, headers={}),
    case("product-huge-id", "anon", "GET", "/products/" + "9" * 40, 404, headers={}),
    case("product-negative-id", "anon", "GET", "/products/-1", 404, headers={}),
    case("product-garbage-id", "anon", "GET", "/products/1%27%20OR%201=1", 404, headers={}),
    case("product-non-utf8-id", "anon", "GET", "/products/%FF%FE", 404, headers={}),
    case("order-unknown-id", "user", "GET", "/orders/999999", 404, headers={}),
    case("order-huge-id", "user", "GET", "/orders/" + "9" * 40, 404, headers={}),
    # The cart: quantities and ids.
    case("cart-anonymous", "anon", "POST", "/cart/items", 401, body({"product_id": 2, "qty": 1})),
    case("cart-qty-zero", "user", "POST", "/cart/items", 400, body({"product_id": 2, "qty": 0})),
    case("cart-qty-negative", "user", "POST", "/cart/items", 400, body({"product_id": 2, "qty": -3})),
    case("cart-qty-huge", "user", "POST", "/cart/items", 400, body({"product_id": 2, "qty": 10**30})),
    case("cart-qty-string", "user", "POST", "/cart/items", 400, body({"product_id": 2, "qty": "2"})),
    case("cart-qty-float", "user", "POST", "/cart/items", 400, body({"product_id": 2, "qty": 1.5})),
    case("cart-qty-bool", "user", "POST", "/cart/items", 400, body({"product_id": 2, "qty": True})),
    case("cart-qty-null", "user", "POST", "/cart/items", 400, body({"product_id": 2, "qty": None})),
    case("cart-qty-over-line-limit", "user", "POST", "/cart/items", 400, body({"product_id": 1, "qty": 10})),
    case("cart-unknown-product", "user", "POST", "/cart/items", 404, body({"product_id": 999999, "qty": 1})),
    case("cart-product-zero", "user", "POST", "/cart/items", 400, body({"product_id": 0, "qty": 1})),
    case("cart-product-sql", "user", "POST", "/cart/items", 400, body({"product_id": "1 OR 1=1", "qty": 1})),
    case("cart-missing-qty", "user", "POST", "/cart/items", 400, body({"product_id": 2})),
    case("cart-delete-not-in-cart", "user", "DELETE", "/cart/items/2", 404),
    case("cart-delete-garbage-id", "user", "DELETE", "/cart/items/abc", 404, headers={}),
    # Checkout.
    case("order-anonymous", "anon", "POST", "/orders", 401),
    case("order-form-encoded", "user", "POST", "/orders", 403, b"", FORM),
    case("order-text-plain", "user", "POST", "/orders", 403, b"{}", {"Content-Type": "text/plain"}),
    case("order-wrong-csrf-token", "user", "POST", "/orders", 403, b"csrf_token=guess", FORM),
    case("order-bad-idempotency-key", "user", "POST", "/orders", 400,
         headers={"Idempotency-Key": "../../etc/passwd"}),
    case("order-long-idempotency-key", "user", "POST", "/orders", 400, headers={"Idempotency-Key": "k" * 65}),
    # Product updates.
    case("put-product-anonymous", "anon", "PUT", "/products/1", 401, body({"name": "Hacked"})),
    case("put-product-not-admin", "user", "PUT", "/products/1", 403, body({"name": "Hacked"})),
    case("put-product-unknown", "admin", "PUT", "/products/999999", 404, body({"name": "New"})),
    case("put-product-nothing", "admin", "PUT", "/products/1", 400, body({})),
    case("put-product-negative-price", "admin", "PUT", "/products/1", 400, body({"price_cents": -1})),
    case("put-product-price-string", "admin", "PUT", "/products/1", 400, body({"price_cents": "10"})),
    case("put-product-empty-name", "admin", "PUT", "/products/1", 400, body({"name": ""})),
    case("put-product-name-too-long", "admin", "PUT", "/products/1", 400, body({"name": "n" * 101})),
    case("put-product-form-encoded", "admin", "PUT", "/products/1", 403, b"name=Hacked", FORM),
    case("put-product-unknown-field", "admin", "PUT", "/products/1", 400, body({"version": 99})),
    # The CPU-heavy page: ASCII digits, up to its cap.
    case("burn-superscript-digit", "anon", "GET", "/burn?rounds=%C2%B2", 400, headers={}),
    case("burn-fullwidth-digit", "anon", "GET", "/burn?rounds=%EF%BC%91", 400, headers={}),
    # 4000 digits: as long as gunicorn lets a request line be (longer gets its 414,
    # no JSON); 5000 digits, which once broke int(), are in test_hardening.py.
    case("burn-thousands-of-digits", "anon", "GET", "/burn?rounds=" + "9" * 4000, 400, headers={}),
    case("burn-over-the-cap", "anon", "GET", "/burn?rounds=500000", 400, headers={}),
    # Forged cookies: a fresh anonymous session, never an error.
    case("forged-session-cookie", "anon", "GET", "/cart", 401,
         headers={"Cookie": f"lab_session={FORGED_SESSION}"}),
    case("garbage-session-cookie", "anon", "GET", "/cart", 401,
         headers={"Cookie": "lab_session=%27%3B%20DROP%20TABLE%20sessions%3B--"}),
    case("forged-lb-cookie", "anon", "POST", "/register", 400,
         register("ev"), {**JSON, "Cookie": "LABLB=0123456789abcdef"}),
]
