"""The lab's web app: a stateless Flask service whose state lives in MariaDB."""
import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from . import auth, cache, cart, catalogue, checkport, config, csrf, db, metrics, orders, sessions, views


def create_app(test_config=None):
    """Create the app from the environment (or TEST_CONFIG, for tests)."""
    app = Flask(__name__)
    app.config.update(config.load())
    if test_config:
        app.config.update(test_config)
    # One proxy (the LB) sets X-Forwarded-For/-Proto in front of us.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)
    metrics.init_app(app)
    checkport.init_app(app)
    db.init_app(app)
    cache.init_app(app)
    sessions.init_app(app)
    csrf.init_app(app)
    for module in (views, auth, catalogue, cart, orders):
        app.register_blueprint(module.bp)
    _init_errors(app)
    return app


def _init_errors(app):
    node = app.config["LAB_NODE"]

    @app.after_request
    def served_by(response):
        response.headers["X-Served-By"] = node
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc):
        response = jsonify(error=exc.description)
        # Keep what the exception says about the answer (Allow on a 405).
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, exc.code

    @app.errorhandler(db.DatabaseUnavailable)
    def db_unavailable(exc):
        app.logger.warning("database unavailable: %s", exc)
        # applied: false - nothing of this request was done, safe to send again;
        # null - in doubt (a commit was under way): send it again with the same
        # idempotency key, or look before you do.
        response = jsonify(error="the database is unavailable; retry shortly",
                           applied=None if db.request_in_doubt(exc) else False)
        response.headers["Retry-After"] = "2"
        return response, 503

    @app.errorhandler(Exception)
    def unexpected(exc):
        app.logger.exception("unhandled error")
        return jsonify(error="internal error"), 500

    logging.basicConfig(level=logging.INFO)
