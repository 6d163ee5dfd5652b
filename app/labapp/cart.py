"""The cart, kept in the server-side session (so on the write path, never on a replica)."""
from flask import Blueprint, abort, jsonify, redirect, render_template

from . import auth, catalogue, inputs, sessions

bp = Blueprint("cart", __name__)

MAX_QTY = 99
MAX_LINES = 50


def _require_user(values):
    """Abort 401 if the session, as locked for this change, has no user (a logout won the race)."""
    if "user" not in values:
        abort(401, "log in first")


def contents(values=None):
    """Return the cart as {"items": [...], "total_cents": n}, priced from the catalogue."""
    cart = (sessions.data() if values is None else values).get("cart", {})
    if not cart:
        return {"items": [], "total_cents": 0}
    by_id = {p["id"]: p for p in catalogue.products()[0]}
    items = []
    for pid, qty in sorted(cart.items(), key=lambda kv: int(kv[0])):
        p = by_id.get(int(pid))
        if p is not None:
            items.append({"product_id": p["id"], "name": p["name"], "qty": qty,
                          "unit_price_cents": p["price_cents"], "line_cents": qty * p["price_cents"]})
    return {"items": items, "total_cents": sum(i["line_cents"] for i in items)}


@bp.get("/cart")
def show():
    """Show the cart (HTML for a browser; a browser without a login is sent to /login)."""
    if inputs.wants_html():
        if sessions.user() is None:
            return redirect("/login?next=/cart")
        return render_template("cart.html", cart=contents(), user=sessions.user())
    return _json_cart()


@auth.login_required
def _json_cart():
    return jsonify(contents())


@bp.post("/cart/items")
@auth.login_required
def add_item():
    """Add QTY of a product to the cart."""
    body = inputs.json_object(required=("product_id", "qty"))
    product_id = inputs.integer(body, "product_id", 1, catalogue.MAX_ID)
    qty = inputs.integer(body, "qty", 1, MAX_QTY)
    if catalogue.product(product_id)[0] is None:
        abort(404, "no such product")

    def add(values, _cur):
        _require_user(values)
        cart = values.setdefault("cart", {})
        total = cart.get(str(product_id), 0) + qty
        if total > MAX_QTY:
            abort(400, f"at most {MAX_QTY} of one product per order")
        if str(product_id) not in cart and len(cart) >= MAX_LINES:
            abort(400, f"at most {MAX_LINES} different products per order")
        cart[str(product_id)] = total

    sessions.modify(add)
    return jsonify(contents())


@bp.delete("/cart/items/<int:product_id>")
@auth.login_required
def remove_item(product_id):
    """Remove a product from the cart; 404 if it is not in it."""
    def remove(values, _cur):
        _require_user(values)
        if values.get("cart", {}).pop(str(product_id), None) is None:
            abort(404, "that product is not in the cart")

    sessions.modify(remove)
    return jsonify(contents())
