"""Cross-site request forgery: one rule for every request that changes state.

A state-changing request (POST, PUT, PATCH, DELETE) is served only with a
proof that this site's own code sent it:

- Content-Type: application/json, or an Idempotency-Key or
  X-Requested-With header. A cross-site HTML form can send neither (its
  types are form-urlencoded, multipart and text/plain, and it sets no
  headers), and a cross-site fetch() that sends them must ask first (a
  CORS preflight), which this app never grants.
- Or this session's CSRF token, in the X-CSRF-Token header or a
  `csrf_token` form field: what the HTML pages carry.

A request with no body and no Content-Type is refused too: a cross-site
fetch(..., {mode: "no-cors"}) sends exactly that. The SameSite=Lax cookie
does not cover it, since another port of the same host is the same site.
"""
import hashlib
import hmac

from flask import abort, request

from . import sessions

_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PROOF_HEADERS = ("Idempotency-Key", "X-Requested-With")
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
TOKEN_HEADER, TOKEN_FIELD = "X-CSRF-Token", "csrf_token"


def token():
    """Return this session's CSRF token, or "" while no session is stored.

    An HMAC keyed by the session id: as unguessable as the id itself (256
    random bits), the same on every web node without a shared secret, new
    at every login, and it does not reveal the httponly cookie it is
    derived from.
    """
    sid = sessions.current_id()
    if sid is None:
        return ""
    return hmac.new(sid.encode(), b"csrf-token", hashlib.sha256).hexdigest()


def _sent_token():
    """Return the token the request carries, or None."""
    if TOKEN_HEADER in request.headers:
        return request.headers[TOKEN_HEADER]
    if request.mimetype in _FORM_TYPES:
        return request.form.get(TOKEN_FIELD)  # over MAX_CONTENT_LENGTH: 413
    return None


def _token_ok(sent):
    expected = token()
    # Bytes: compare_digest refuses a str that is not ASCII.
    return bool(expected) and hmac.compare_digest(sent.encode("utf-8", "replace"), expected.encode())


def _only_this_site_can_send():
    """Return True when the request carries what only a script of this site may send."""
    return request.mimetype == "application/json" or any(h in request.headers for h in _PROOF_HEADERS)


def check():
    """Abort 403 unless a state-changing request proves it is not a cross-site one."""
    # An unknown route or method gets its 404 or 405: no view runs anyway.
    if request.method not in _STATE_CHANGING or request.url_rule is None:
        return
    sent = _sent_token()
    if sent is not None:
        # A token that is sent must be this session's, whatever else the
        # request carries: a page from an old session must not act on a new one.
        if not _token_ok(sent):
            abort(403, "the CSRF token does not match this session; reload the page")
    elif not _only_this_site_can_send():
        abort(403, "refused as a possible cross-site request: send Content-Type: application/json,"
                   " an X-Requested-With header, or the page's CSRF token")


def init_app(app):
    """Check every request before its view runs, and give templates csrf_token()."""
    app.before_request(check)
    app.context_processor(lambda: {"csrf_token": token})
