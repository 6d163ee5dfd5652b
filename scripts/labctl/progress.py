"""Progress lines, bounded polling and bounded blocks shared by every labctl command."""
import contextlib
import signal
import threading
import time


def step(msg):
    """Announce a step that is starting."""
    print(f"… {msg}", flush=True)


def ok(msg):
    """Report a step that succeeded."""
    print(f"✔ {msg}", flush=True)


def fail(msg):
    """Report a step that failed."""
    print(f"❌ {msg}", flush=True)


class Timeout(Exception):
    """A bounded wait ran out of time; .detail is what was still pending."""

    def __init__(self, timeout_s, detail):
        super().__init__(f"gave up after {timeout_s:.0f} s")
        self.detail = detail


def wait_until(check, timeout_s, interval_s=1.0, describe=None):
    """Poll CHECK, which returns (done, detail), until done; bounded by TIMEOUT_S.

    DESCRIBE, if given, is called with the detail whenever it changes, so
    the user sees what is still being waited for. Raises Timeout.
    """
    deadline = time.monotonic() + timeout_s
    last = object()
    while True:
        done, detail = check()
        if done:
            return detail
        if describe is not None and detail != last:
            describe(detail)
            last = detail
        if time.monotonic() >= deadline:
            raise Timeout(timeout_s, detail)
        time.sleep(interval_s)


class Background:
    """A loop in a thread for the length of a `with` block; subclasses define run().

    run() should return soon after self.stopping is set.
    """

    def __init__(self):
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        """The loop (override)."""
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self._thread.join(timeout=10)


class TimedOut(BaseException):
    """A bounded block ran past its bound (a BaseException: no `except Exception` in the code it runs hides it)."""


@contextlib.contextmanager
def bounded(seconds, what):
    """Raise TimedOut in the block after SECONDS (by SIGALRM, so from the main thread only; elsewhere, no bound)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TimedOut(f"{what} ran past {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
