"""The chaos workload: simulated shoppers that record a history of operations.

Like a Jepsen client, every operation is recorded with its start and end
time and one of three outcomes:
  ok            the site answered 2xx: the operation took effect;
  fail          it certainly did not take effect (a 4xx, or HAProxy's own
                503 "no server" which never reached a web node);
  indeterminate it may or may not have taken effect (a timeout, a dropped
                connection, a 502/504, or the app's 503 for a database
                that failed around a commit).
The checker reasons about indeterminate writes instead of guessing.
"""
import concurrent.futures
import random
import secrets
import threading
import time
from dataclasses import dataclass, field

import requests

from labctl import settings
from labctl.client import Client

# Operation mix of a shopper, by weight.
MIX = (("browse", 15), ("view", 30), ("add", 30), ("remove", 5), ("cart", 10), ("checkout", 10))
PRODUCTS = range(1, 13)
REQUEST_TIMEOUT_S = 5
THINK_S = (0.05, 0.15)
EDITED = (1, 2, 3)         # the products the editor changes (every shopper views them too)
EDIT_EVERY_S = (0.3, 0.7)


@dataclass
class Op:
    """One operation of one user, as the client saw it."""
    user: str
    kind: str
    start: float
    end: float = 0.0
    outcome: str = "fail"          # ok | fail | indeterminate
    status: int | None = None
    served_by: str | None = None
    error: str = ""
    args: dict = field(default_factory=dict)
    result: dict = field(default_factory=dict)

    @property
    def latency_s(self):
        """Seconds the operation took."""
        return self.end - self.start


def _outcome(status, served_by, body):
    """Classify a response: ok, fail (certainly not applied) or indeterminate."""
    if 200 <= status < 300:
        return "ok"
    if status == 503 and served_by is None:
        return "fail"           # HAProxy had no server: the request reached no web node
    if status == 503 and isinstance(body, dict) and body.get("applied") is False:
        return "fail"           # the app says nothing of it was done (no database reached, or no commit sent)
    if status >= 500:
        return "indeterminate"  # a 502/504, or the app's 503 with a commit in doubt
    return "fail"               # 4xx, including the LB's 429


class User:
    """A shopper with its own cookie jar; runs operations and records them."""

    def __init__(self, name, history, clock):
        self.name, self.history, self.clock = name, history, clock
        self.password = secrets.token_urlsafe(12)
        self.client = Client(timeout=REQUEST_TIMEOUT_S)
        self.cart = {}                 # what the last acknowledged cart response said
        self.rng = random.Random(name)

    def call(self, kind, method, path, args=None, headers=None, **kw):
        """Send one request and record it as an Op; return (op, json body or None)."""
        op = Op(self.name, kind, self.clock(), args=dict(args or {}))
        body = None
        try:
            r = self.client.request(method, path, headers=headers, **kw)
            op.status, op.served_by = r.status_code, r.headers.get("X-Served-By")
            try:
                body = r.json()
            except ValueError:
                body = None
            op.outcome = _outcome(r.status_code, op.served_by, body)
            if op.outcome != "ok":
                op.error = (body or {}).get("error", "") if isinstance(body, dict) else r.text[:100]
        except requests.ConnectionError as exc:
            # Refused before anything was sent: certainly not applied. A
            # reset or a close after sending: unknown.
            sent = "NewConnectionError" not in repr(exc) and "ConnectTimeout" not in repr(exc)
            op.outcome, op.error = ("indeterminate" if sent else "fail"), type(exc).__name__
        except requests.RequestException as exc:
            # A timeout, or an answer cut off half-way (ChunkedEncodingError
            # when an LB drops a dead node's sessions): it may have applied.
            op.outcome, op.error = "indeterminate", type(exc).__name__
        op.end = self.clock()
        self.history.append(op)
        return op, body

    def sign_up(self, deadline):
        """Register and log in, retrying until DEADLINE; return True when logged in."""
        registered = False
        while self.clock() < deadline:
            if not registered:
                op, _ = self.call("register", "POST", "/register",
                                  json={"username": self.name, "password": self.password})
                registered = op.outcome == "ok" or op.status == 409
            if registered:
                op, _ = self.call("login", "POST", "/login",
                                  json={"username": self.name, "password": self.password})
                if op.outcome == "ok":
                    return True
            time.sleep(0.2)
        return False

    def step(self):
        """Run one operation from the mix."""
        kind = self.rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
        if kind == "checkout" and not self.cart:
            kind = "add"
        if kind == "browse":
            self.call("browse", "GET", "/products")
        elif kind == "view":
            pid = self.rng.choice(PRODUCTS)
            op, body = self.call("view", "GET", f"/products/{pid}", {"product_id": pid})
            if op.outcome == "ok" and isinstance(body, dict):
                op.result["version"] = body.get("version")
        elif kind == "cart":
            self._cart_op("cart", "GET", "/cart")
        elif kind == "add":
            args = {"product_id": self.rng.choice(PRODUCTS), "qty": self.rng.randint(1, 3)}
            if self.cart.get(args["product_id"], 0) + args["qty"] <= 99:
                self._cart_op("add", "POST", "/cart/items", args, json=args)
        elif kind == "remove" and self.cart:
            pid = self.rng.choice(sorted(self.cart))
            # No body to make it JSON: the header tells the app no cross-site form sent it.
            self._cart_op("remove", "DELETE", f"/cart/items/{pid}", {"product_id": pid},
                          headers={"X-Requested-With": "scalelab-workload"})
        elif kind == "checkout":
            self.checkout()

    def _cart_op(self, kind, method, path, args=None, **kw):
        op, body = self.call(kind, method, path, args, **kw)
        if op.outcome == "ok" and isinstance(body, dict):
            self.cart = {i["product_id"]: i["qty"] for i in body.get("items", [])}
            op.result["cart"] = dict(self.cart)

    def checkout(self, retries=3):
        """Check out the cart with an Idempotency-Key, retrying an unknown outcome with the same key."""
        key = secrets.token_urlsafe(16)
        for _ in range(retries):
            op, body = self.call("checkout", "POST", "/orders", {"key": key},
                                 headers={"Idempotency-Key": key})
            if op.outcome == "ok":
                op.result["order_id"] = body["order_id"]
                self.cart = {}
                return
            if op.outcome == "fail":
                return
            time.sleep(0.3)

    def close(self):
        """Release the HTTP connections."""
        self.client.close()


class Editor(User):
    """The shop's admin, changing the prices of EDITED now and then: what the catalogue's readers must see.

    Its operations ("edit", with the product's new version when
    acknowledged) go to a history of their own: it is not a shopper, and
    the checker judges the shoppers' views of the catalogue against it.
    """

    def __init__(self, history, clock):
        super().__init__("admin", history, clock)
        self.password = (settings.SECRETS_DIR / "app_admin_password").read_text(encoding="utf-8").strip()
        self.rng = random.Random()

    def sign_up(self, deadline):
        """Log in as the admin (its row is seeded; its password is the deployment's secret)."""
        while self.clock() < deadline:
            op, _ = self.call("login", "POST", "/login", json={"username": self.name, "password": self.password})
            if op.outcome == "ok":
                return True
            time.sleep(0.2)
        return False

    def step(self):
        """Change one product's price; record the version the answer names."""
        pid = self.rng.choice(EDITED)
        price = self.rng.randint(100, 9999)
        op, body = self.call("edit", "PUT", f"/products/{pid}", {"product_id": pid, "price_cents": price},
                             json={"price_cents": price})
        if op.outcome == "ok" and isinstance(body, dict):
            op.result["version"] = body.get("version")


class Workload:
    """N concurrent shoppers through 127.0.0.1, recording one shared history, and an editor with its own."""

    def __init__(self, users=6, prefix=None):
        self.t0 = time.monotonic()
        self.history = []
        prefix = prefix or "u" + secrets.token_hex(3)
        self.users = [User(f"{prefix}-{i}", self.history, self.clock) for i in range(users)]
        self.edits = []
        self.editor = Editor(self.edits, self.clock)
        self._stop = threading.Event()
        self._threads = []
        self.crashed = []

    def clock(self):
        """Seconds since the workload was created."""
        return time.monotonic() - self.t0

    def sign_up(self, timeout_s=60):
        """Register and log in every user, in parallel (before any fault); fail if one cannot."""
        deadline = self.clock() + timeout_s
        everyone = [*self.users, self.editor]
        with concurrent.futures.ThreadPoolExecutor(len(everyone)) as pool:
            done = list(pool.map(lambda u: u.sign_up(deadline), everyone))
        failed = [u.name for u, ok in zip(everyone, done) if not ok]
        if failed:
            raise AssertionError(f"{', '.join(failed)} could not sign up before the fault")

    def start(self):
        """Start every user's loop in its own thread."""
        for u in [*self.users, self.editor]:
            t = threading.Thread(target=self._run, args=(u,), daemon=True)
            t.start()
            self._threads.append(t)

    def _run(self, user):
        try:
            while not self._stop.is_set():
                user.step()
                time.sleep(user.rng.uniform(*(EDIT_EVERY_S if user is self.editor else THINK_S)))
        except Exception as exc:  # noqa: BLE001 - reported by stop(): a shopper must not vanish silently
            self.crashed.append(f"{user.name}: {type(exc).__name__}: {exc}")

    def stop(self):
        """Stop every loop and wait for operations in flight (bounded by the request timeout)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=REQUEST_TIMEOUT_S * 4 + 5)
        if self.crashed:
            raise AssertionError(f"shoppers stopped on an error the workload does not handle: {self.crashed}")

    def final_carts(self):
        """Read every user's cart once the lab is healed; return {user: op}."""
        out = {}
        for u in self.users:
            op, body = u.call("final-cart", "GET", "/cart")
            if op.outcome == "ok":
                op.result["cart"] = {i["product_id"]: i["qty"] for i in body.get("items", [])}
            out[u.name] = op
        return out

    def close(self):
        """Close every user's connections."""
        for u in [*self.users, self.editor]:
            u.close()
