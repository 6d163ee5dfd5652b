"""Threads of one web process that run beside its requests (the cache's log replayer, the db reach probe).

gunicorn forks its workers after the app was created, and a thread does not
survive a fork: each worker starts its own on its first request.
"""
import os
import threading

_LOCK = threading.Lock()


def start_per_process(app, name, make):
    """Start MAKE(app).run in a daemon thread NAME once per process; return the object (app.extensions[NAME])."""
    pid_key = f"{name}_pid"
    if app.extensions.get(pid_key) == os.getpid():
        return app.extensions[name]
    with _LOCK:
        if app.extensions.get(pid_key) != os.getpid():
            worker = app.extensions[name] = make(app)
            threading.Thread(target=worker.run, name=name, daemon=True).start()
            app.extensions[pid_key] = os.getpid()
    return app.extensions[name]
