"""The chaos library: faults injected into the running lab while shoppers shop, and the verdict on what held.

  scenarios   each scenario: its name, its fault, what it does, its availability budget
  targets     who a fault strikes (the writer, a VIP holder, the etcd leader), found when it strikes
  nemesis     every fault with its heal (kill, pause, freeze, partition, one-way, reset, loss, DNS, ...)
  workload    shoppers recording a history of what they asked and what they were told
  monitor     the observer: every DB node read ten times a second (who is writable, which orders)
  snapshot    every DB node read once the lab has healed and converged
  checker     pure: history + samples + snapshot + budget -> verdict
  report      reports/chaos/report.json, report.md, a timeline per scenario
  runner      runs one or all (`make chaos`, the console's picker, tests/chaos)
"""
import sys
from pathlib import Path

# The write path's own code (mysql/ha/labha: its timings, its GTID parsing) is read, not copied.
_HA = str(Path(__file__).resolve().parents[3] / "mysql" / "ha")
if _HA not in sys.path:
    sys.path.append(_HA)
