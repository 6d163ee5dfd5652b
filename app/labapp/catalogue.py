"""The catalogue: product reads through the cache from the read path, admin updates on the write path."""
from flask import Blueprint, abort, jsonify, make_response, render_template, request

from . import auth, cache, db, inputs, sessions

bp = Blueprint("catalogue", __name__)

MAX_ID = 2**31 - 1
_COLUMNS = "id, name, description, price_cents, version"
ALL_KEY = "products:all"


def _key(product_id):
    return f"product:{product_id}"


def _loader(sql, args=None, fetch="all"):
    """Return a cache loader: SQL run on whichever path the cache asks for."""
    def load(path):
        if path == "write":
            return db.query(sql, args, fetch=fetch)
        return db.read(sql, args, fetch=fetch)
    return load


def _one(product_id):
    return _loader(f"SELECT {_COLUMNS} FROM products WHERE id = %s", (product_id,), "one")


_load_all = _loader(f"SELECT {_COLUMNS} FROM products ORDER BY id")


def product(product_id, fresh=False):
    """Return (product dict or None, came from cache); FRESH skips the cached copy."""
    if not 1 <= product_id <= MAX_ID:
        return None, False
    # A missing product is cached too (as None): probing unknown ids must
    # not reach the database every time.
    return cache.fetch(_key(product_id), _one(product_id), fresh)


def products():
    """Return (list of every product, came from cache)."""
    return cache.fetch(ALL_KEY, _load_all)


def _cached(response, hit):
    response.headers["X-Cache"] = "hit" if hit else "miss"
    return response


@bp.get("/products")
def list_products():
    """List the catalogue (HTML for a browser)."""
    items, hit = products()
    if inputs.wants_html():
        page = render_template("catalogue.html", products=items, hit=hit, user=sessions.user())
        return _cached(make_response(page), hit)
    return _cached(jsonify(items), hit)


@bp.get("/products/<int:product_id>")
def get_product(product_id):
    """Show one product, or 404. A client's `Cache-Control: no-cache` reads it from the database."""
    item, hit = product(product_id, fresh=bool(request.cache_control.no_cache))
    if item is None:
        return _cached(jsonify(error="no such product"), hit), 404
    return _cached(jsonify(item), hit)


@bp.put("/products/<int:product_id>")
@auth.admin_required
def update_product(product_id):
    """Change a product's name, description or price (admin only); the cached copies are invalidated."""
    body = inputs.json_object(optional=("name", "description", "price_cents"))
    changes = {}
    if "name" in body:
        changes["name"] = inputs.text(body, "name", 1, 100)
    if "description" in body:
        changes["description"] = inputs.text(body, "description", 0, 500)
    if "price_cents" in body:
        changes["price_cents"] = inputs.integer(body, "price_cents", 0, 10_000_000)
    if not changes:
        abort(400, "nothing to change: send name, description and/or price_cents")
    if not 1 <= product_id <= MAX_ID:
        abort(404, "no such product")
    assignments = ", ".join(f"{column} = %s" for column in changes)

    def change(cur):
        cur.execute(f"UPDATE products SET {assignments}, version = version + 1 WHERE id = %s",
                    (*changes.values(), product_id))
        if cur.rowcount == 0:
            abort(404, "no such product")
        cur.execute(f"SELECT {_COLUMNS} FROM products WHERE id = %s", (product_id,))
        item = cur.fetchone()
        cache.log_invalidation(cur, _key(product_id), ALL_KEY)
        return item
    item = db.run(change)
    # After the commit, never before: see cache.py.
    cache.invalidate(_key(product_id), ALL_KEY)
    return jsonify(item)
