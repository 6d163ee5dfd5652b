"""Parse and check request bodies: bad input becomes a clear 4xx before anything is written."""
import json

from flask import abort, request


def json_object(required=(), optional=()):
    """Return the request body as a JSON object with exactly the keys allowed, or abort 4xx."""
    if request.mimetype != "application/json":
        abort(415, "send a JSON object with Content-Type: application/json")
    raw = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH: 413
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        abort(400, "the body is not valid UTF-8")
    except (ValueError, RecursionError):  # RecursionError: [[[[... nested thousands deep
        abort(400, "the body is not valid JSON")
    if not isinstance(body, dict):
        abort(400, "the body must be a JSON object")
    missing = [k for k in required if k not in body]
    if missing:
        abort(400, f"missing field(s): {', '.join(missing)}")
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        abort(400, f"unknown field(s): {', '.join(unknown)[:200]}")
    return body


def text(body, name, min_len, max_len):
    """Return BODY[NAME] if it is a string of MIN_LEN..MAX_LEN characters, else abort 400."""
    value = body[name]
    if not isinstance(value, str):
        abort(400, f"{name} must be a string")
    try:
        # JSON can carry lone surrogates (\ud800), which no database column can store.
        value.encode("utf-8")
    except UnicodeEncodeError:
        abort(400, f"{name} is not valid Unicode")
    if not min_len <= len(value) <= max_len:
        abort(400, f"{name} must be {min_len} to {max_len} characters long")
    return value


def integer(body, name, low, high):
    """Return BODY[NAME] if it is an integer in LOW..HIGH, else abort 400."""
    value = body[name]
    # bool is an int in Python; true is not a quantity.
    if not isinstance(value, int) or isinstance(value, bool):
        abort(400, f"{name} must be an integer")
    if not low <= value <= high:
        abort(400, f"{name} must be between {low} and {high}")
    return value


def wants_html():
    """Return True when the client prefers HTML (a browser) over JSON."""
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"
