"""An open-loop HTTP load generator (standard library only), for `make bench`.

Why our own: wrk and most simple generators are closed-loop — a client
waits for each answer before sending the next request, so when the server
stalls the generator stops sending and the stall never shows in the
latencies (coordinated omission). Here requests are *scheduled* at a fixed
rate, whatever the server does, and each latency is measured from the
moment the request was due, not from when a free connection sent it
(wrk2's correction). A closed-loop mode measures saturation throughput.

It needs only Python 3.9+, so `make bench` can also run it inside a lab
container (to hit a web node directly, which the host cannot reach).

Usage: python3 loadgen.py URL --rate R --duration S [--connections N] [--closed] [--header H]
Prints one JSON object: sent, ok, errors, throughput_rps, latency percentiles (ms).
"""
import argparse
import asyncio
import json
import time
import urllib.parse


class Conn:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def _send(self, path, headers, timeout):
        """Send GET PATH, opening the connection if needed; return the status line (b"" if it was closed)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), timeout)
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{headers}\r\n".encode())
        await self.writer.drain()
        return await asyncio.wait_for(self.reader.readline(), timeout)

    async def request(self, path, headers, timeout):
        """Send GET PATH; return the status code (raises on I/O errors)."""
        reused = self.writer is not None
        try:
            status_line = await self._send(path, headers, timeout)
        except asyncio.TimeoutError:  # an OSError since Python 3.11, but a slow answer, not a closed connection
            raise
        except (ConnectionError, OSError):
            if not reused:
                raise
            status_line = b""
        if not status_line and reused:
            # The server closed this idle keep-alive connection (HAProxy's
            # `timeout http-keep-alive`) before our request reached it: as
            # browsers and urllib3 do for a GET, send it again on a new one.
            self.close()
            status_line = await self._send(path, headers, timeout)
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        length, close = 0, False
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and "close" in value.lower():
                close = True
        if length:
            await asyncio.wait_for(self.reader.readexactly(length), timeout)
        if close:
            self.close()
        return status

    def close(self):
        """Drop the connection (a new one is opened on the next request)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def percentiles(values):
    """Return p50/p90/p99/p999/max of VALUES (seconds) in milliseconds."""
    if not values:
        return {}
    v = sorted(values)
    pick = lambda q: v[min(len(v) - 1, int(q * len(v)))] * 1000  # noqa: E731
    return {"p50_ms": round(pick(0.50), 2), "p90_ms": round(pick(0.90), 2), "p99_ms": round(pick(0.99), 2),
            "p999_ms": round(pick(0.999), 2), "max_ms": round(v[-1] * 1000, 2)}


async def _closed_loop(one, end, connections):
    """CONNECTIONS clients, each sending its next request when the last is answered; return how many were sent."""
    sent = 0

    async def worker():
        nonlocal sent
        while time.perf_counter() < end:
            sent += 1
            await one(time.perf_counter())
    await asyncio.gather(*(worker() for _ in range(connections)))
    return sent


async def _open_loop(one, start, end, rate, timeout):
    """RATE requests per second, each sent when due whatever the answers; return how many were sent."""
    tasks, sent, interval = set(), 0, 1.0 / rate
    while True:
        due = start + sent * interval
        if due >= end:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t = asyncio.ensure_future(one(due))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        sent += 1
    if tasks:
        await asyncio.wait(tasks, timeout=timeout + 1)
    return sent


async def run(url, rate=100, duration=10, connections=16, closed=False, timeout=5, headers=(), paths=()):
    """Drive the load; return the result dict.

    HEADERS: extra "Name: value" strings. PATHS: request these in turn
    (on URL's host) instead of URL's own path: a mix of pages.
    """
    u = urllib.parse.urlsplit(url)
    paths = list(paths) or [(u.path or "/") + (f"?{u.query}" if u.query else "")]
    turn = iter(range(1 << 62))
    headers = "".join(f"{h}\r\n" for h in headers)
    idle = [Conn(u.hostname, u.port or 80) for _ in range(connections)]
    latencies, timeline, errors = [], [], 0
    start = time.perf_counter()
    end = start + duration

    async def one(due):
        nonlocal errors
        conn = idle.pop() if idle else Conn(u.hostname, u.port or 80)
        try:
            status = await conn.request(paths[next(turn) % len(paths)], headers, timeout)
            ok = 200 <= status < 300
        except (OSError, asyncio.TimeoutError, ConnectionError, ValueError, IndexError,
                asyncio.IncompleteReadError):
            conn.close()
            ok = False
        done = time.perf_counter()
        idle.append(conn)
        if ok:
            latencies.append(done - due)  # from when it was due: no coordinated omission
        else:
            errors += 1
        timeline.append((round(due - start, 4), round((done - due) * 1000, 2), ok))

    sent = await (_closed_loop(one, end, connections) if closed else _open_loop(one, start, end, rate, timeout))
    elapsed = max(time.perf_counter() - start, 1e-9)
    for c in idle:
        c.close()
    return {"url": url, "mode": "closed" if closed else "open", "target_rps": None if closed else rate,
            "duration_s": duration, "sent": sent, "ok": len(latencies), "errors": errors,
            "throughput_rps": round(len(latencies) / elapsed, 1), **percentiles(latencies),
            "timeline": timeline}


def main():
    """Parse arguments, run, print JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--rate", type=float, default=100, help="requests per second (open loop)")
    p.add_argument("--duration", type=float, default=10)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--closed", action="store_true", help="closed loop: measure saturation throughput")
    p.add_argument("--timeout", type=float, default=5)
    p.add_argument("--header", action="append", default=[], help='extra header, e.g. "Cache-Control: no-cache"')
    p.add_argument("--no-timeline", action="store_true")
    a = p.parse_args()
    result = asyncio.run(run(a.url, a.rate, a.duration, a.connections, a.closed, a.timeout, a.header))
    if a.no_timeline:
        result.pop("timeline")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
