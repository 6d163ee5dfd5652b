"""A fixed-rate SQL load against one db port, for `make bench` (runs in a lab container).

Each of N threads sends its share of RATE queries per second on a fixed
schedule over its own connection; a query's latency counts from when it
was due (no coordinated omission while the threads keep up).

Usage: python3 dbload.py HOST PORT --rate R --duration S [--threads N]
Needs pymysql and the app user's password in DB_PASSWORD. Prints JSON.
"""
import argparse
import json
import os
import threading
import time

import pymysql

from loadgen import percentiles


def main():
    """Parse arguments, run the load, print JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--rate", type=float, default=200)
    p.add_argument("--duration", type=float, default=8)
    p.add_argument("--threads", type=int, default=8)
    a = p.parse_args()
    latencies, errors, servers = [], [0], set()
    lock = threading.Lock()
    start = time.perf_counter() + 0.5  # every thread connected before the first query is due

    def worker(i):
        conn = pymysql.connect(host=a.host, port=a.port, user="lab_app", password=os.environ["DB_PASSWORD"],
                               database="lab", connect_timeout=3, read_timeout=5, autocommit=True)
        cur = conn.cursor()
        cur.execute("SELECT @@server_id")
        servers.add(cur.fetchone()[0])
        interval = a.threads / a.rate
        n = 0
        while True:
            due = start + i * interval / a.threads + n * interval
            if due >= start + a.duration:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                cur.execute("SELECT id, name, price_cents FROM products WHERE id = %s", (n % 12 + 1,))
                cur.fetchall()
                with lock:
                    latencies.append(time.perf_counter() - due)
            except pymysql.MySQLError:
                with lock:
                    errors[0] += 1
            n += 1
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"port": a.port, "server_ids": sorted(servers), "target_rps": a.rate,
                      "ok": len(latencies), "errors": errors[0],
                      "throughput_rps": round(len(latencies) / a.duration, 1), **percentiles(latencies)}))


if __name__ == "__main__":
    main()
