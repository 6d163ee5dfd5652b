"""gunicorn settings for a web node; each can be overridden from the environment."""
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
# A request stuck on a dead dependency is cut off by the app's own DB and
# cache timeouts long before this.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 10
# Workers' heartbeat files in memory: on an overlay filesystem a slow
# write can make the arbiter kill a healthy worker under load.
worker_tmp_dir = "/dev/shm"
keepalive = 15
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
# gunicorn's control socket (`gunicornc`) would live in $HOME, which the
# unprivileged `web` user does not have; the lab does not use it.
control_socket_disable = True


def post_worker_init(worker):
    """Answer the web LBs' checks from a thread of this worker, on a port of their own (labapp.checkport)."""
    from labapp import checkport
    checkport.start(worker.wsgi)
