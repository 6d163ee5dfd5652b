"""Checkout and order lookup, all on the write path."""
import re

from flask import Blueprint, abort, jsonify, render_template, request

from . import auth, cart, db, jobs, sessions

bp = Blueprint("orders", __name__)

_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")  # fullmatch: "$" would let a trailing "\n" through


def _idempotency_key():
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        abort(400, "Idempotency-Key must be 1 to 64 letters, digits, '_' or '-'")
    return key


def _existing(cur, user_id, key):
    cur.execute("SELECT id FROM orders WHERE user_id = %s AND idempotency_key = %s", (user_id, key))
    row = cur.fetchone()
    return row["id"] if row else None


@bp.post("/orders")
@auth.login_required
def checkout():
    """Turn the cart into an order, atomically; a retry with the same Idempotency-Key orders once."""
    key = _idempotency_key()

    def place(values, cur):
        if "user" not in values:
            abort(401, "log in first")
        user_id = values["user"]["id"]
        if key is not None:
            found = _existing(cur, user_id, key)
            if found is not None:
                return found
        lines = {int(pid): qty for pid, qty in values.get("cart", {}).items()}
        if not lines:
            abort(400, "the cart is empty")
        # Prices from the master, in this transaction: what the user pays
        # is what the order row says, whatever the cache or a replica holds.
        cur.execute("SELECT id, price_cents FROM products WHERE id IN %s", (tuple(lines),))
        prices = {row["id"]: row["price_cents"] for row in cur.fetchall()}
        if set(prices) != set(lines):
            abort(409, "a product in the cart no longer exists")
        total = sum(prices[pid] * qty for pid, qty in lines.items())
        # Where it was committed: the writer's server id and term (ha.lease;
        # NULL on a server outside the lab's HA, as in the unit tests).
        cur.execute("INSERT INTO orders (user_id, idempotency_key, total_cents, origin_server, origin_term)"
                    " VALUES (%s, %s, %s, @@server_id, (SELECT token FROM ha.lease WHERE id = 1))",
                    (user_id, key, total))
        order_id = cur.lastrowid
        cur.executemany("INSERT INTO order_items (order_id, product_id, qty, unit_price_cents)"
                        " VALUES (%s, %s, %s, %s)",
                        [(order_id, pid, qty, prices[pid]) for pid, qty in sorted(lines.items())])
        # The invoice is made off the request path, by a worker; its job
        # commits with the order (labapp.jobs).
        jobs.enqueue(cur, jobs.INVOICE, order_id)
        values["cart"] = {}
        return order_id

    try:
        order_id = sessions.modify(place)
    except db.IntegrityError:
        if key is None:
            raise
        # The same key from another session of this user committed first.
        order_id = db.run(lambda cur: _existing(cur, sessions.user()["id"], key), read_only=True)
    # The invoice is in work: the page polls the order until it is made.
    return jsonify(order_id=order_id, invoice={"state": "queued", "poll": f"/orders/{order_id}"}), 201


def _order(order_id, user_id):
    """Return the order ORDER_ID of USER_ID with its items, or None."""
    def read(cur):
        cur.execute("SELECT id, user_id, total_cents, created_at FROM orders"
                    " WHERE id = %s AND user_id = %s", (order_id, user_id))
        order = cur.fetchone()
        if order is not None:
            cur.execute("SELECT product_id, qty, unit_price_cents FROM order_items"
                        " WHERE order_id = %s ORDER BY product_id", (order_id,))
            order["items"] = cur.fetchall()
            order["invoice"] = jobs.status_of_order(cur, order_id)
        return order
    order = db.run(read, read_only=True)
    if order is not None:
        order["created_at"] = order["created_at"].isoformat()
    return order


@bp.get("/orders/<int:order_id>")
@auth.login_required
def show(order_id):
    """Show an order to its owner; 404 for anyone else, as for an unknown id."""
    order = _order(order_id, sessions.user()["id"]) if order_id < 2**63 else None
    if order is None:
        abort(404, "no such order")
    return jsonify(order)


@bp.get("/checkout")
def checkout_page():
    """Show the cart with a button that places the order."""
    return render_template("checkout.html", cart=cart.contents() if sessions.user() else None,
                           user=sessions.user())
