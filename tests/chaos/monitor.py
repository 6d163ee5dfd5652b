"""Safety samples taken while a scenario runs: who is writable, and which orders each master holds.

The checker (chaos.checker) judges them: at most one writable master in
every sample, and a writable master never lacks an order that was
acknowledged, or seen on a writer, before the sample.
"""
from labctl import dbnodes, progress, topology

MASTERS = topology.SOURCES


class SafetySampler(progress.Background):
    """Every INTERVAL_S, read each master's read_only and the workload's order ids (one query each)."""

    def __init__(self, usernames, clock, interval_s=1.0):
        super().__init__()
        self.clock, self.interval_s = clock, interval_s
        names = ",".join(f"'{n}'" for n in usernames) or "''"
        # The aggregate goes in a subquery: in a query with an aggregate,
        # MariaDB 10.11 reports @@global.read_only as 0 even when it is on.
        self.sql = ("SET SESSION group_concat_max_len = 1048576; "
                    "SELECT @@global.read_only AS ro, (SELECT GROUP_CONCAT(o.id) FROM lab.orders o "
                    f"JOIN lab.users u ON u.id = o.user_id WHERE u.username IN ({names})) AS ids")
        self.writer_samples, self.order_samples = [], []

    def assert_one_writer_at_most(self):
        """Fail with the first samples in which both masters were writable at once."""
        assert self.writer_samples, "the sampler took no sample"
        both = [(round(s["t"], 2), s["writable"]) for s in self.writer_samples if len(s["writable"]) > 1]
        assert not both, f"two writable masters at once: {both[:3]}"

    def run(self):
        while not self.stopping.wait(self.interval_s):
            self.sample()

    def _read(self, node):
        """Return (writable, order ids) of NODE now, or None when it does not answer."""
        try:
            row = dbnodes.query(node, self.sql)[0]
            return row["ro"] == "0", {int(i) for i in (row["ids"] or "").split(",") if i}
        except (dbnodes.DbError, LookupError, IndexError, ValueError):
            return None

    def sample(self):
        """Take one sample: read the masters in the order A, B, A, B.

        Two readings through the Docker API are some 50 ms apart, and a
        planned switchover takes less: A writable, then B writable, is
        what a correct hand-over looks like. Both masters count as writable
        at once only when one was seen writable before AND after the
        other was: A, B, A all writable (or B, A, B).
        """
        t = self.clock()
        a, b = MASTERS
        readings = [(n, self._read(n)) for n in (a, b, a, b)]
        w = [r is not None and r[0] for _, r in readings]
        both = (w[0] and w[1] and w[2]) or (w[1] and w[2] and w[3])
        latest = {n: r for n, r in readings}
        unreachable = sorted(n for n, r in latest.items() if r is None)
        # Otherwise the newest writable reading names the writer (A writable,
        # then B writable, is a hand-over in progress).
        newest = next((n for (n, _), is_w in zip(reversed(readings), reversed(w)) if is_w), None)
        writable = sorted(latest) if both else ([newest] if newest else [])
        self.writer_samples.append({"t": t, "writable": writable, "unreachable": unreachable})
        for node, r in latest.items():
            if r is not None:
                self.order_samples.append({"t": t, "node": node, "writable": r[0], "orders": r[1]})
