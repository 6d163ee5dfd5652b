"""What etcd says about one cluster of the write path, read in one request.

Keys, under PREFIX = /scalelab/clusters/<cluster>/:
  leader            {"node", "at"} on the holder's lease; created only if
                    absent (a transaction), so there is one holder. Its
                    create revision is the term's fencing token.
  sync              {"leader", "token", "standby", "at"}: the standby that
                    provably holds every commit the leader acknowledged
                    (null: none, the leader commits asynchronously). Written
                    only by the leader, in a transaction on its token.
  promotion         {"token", "leader", "previous", "cutoff", "at"}: the newest
                    promotion and the new leader's position in the old
                    leader's app domain when it took over.
  deposed/<node>    {"token", "domain", "cutoff", "at"}: NODE was the leader
                    until a promotion; nobody replicates from it until it
                    shows it holds nothing past the cut-off.
  quarantine/<node> {"errant", "cutoff", "seen", "at"}: NODE holds ERRANT
                    transactions past the cut-off: read-only, nobody
                    replicates from it, until `make rebuild NODE=<node>`.
  members/<node>    what each node's HA loop publishes (on its own lease).
  switchover        {"to", "from", "force", "id", "at", "result"?}: an
                    operator's request (make failback / make promote).
"""
from dataclasses import dataclass, field

ROOT = "/scalelab/clusters/"


def prefix(name):
    """Return the key prefix of cluster NAME."""
    return f"{ROOT}{name}/"


@dataclass
class Cluster:
    """One reading of a cluster's keys (values decoded), or reachable=False."""
    reachable: bool = False
    revision: int = 0
    leader: object = None              # dcs.Kv or None
    sync: dict = None
    promotion: dict = None
    deposed: dict = field(default_factory=dict)      # node -> (value, mod_revision)
    quarantine: dict = field(default_factory=dict)   # node -> value
    members: dict = field(default_factory=dict)      # node -> value
    switchover: object = None          # dcs.Kv or None
    error: str = ""

    @property
    def leader_node(self):
        """The node holding the leader key, or None."""
        return (self.leader.value or {}).get("node") if self.leader is not None else None

    @property
    def token(self):
        """The current term's fencing token (the leader key's create revision), or 0."""
        return self.leader.create_revision if self.leader is not None else 0

    def clean(self, node):
        """True when others may replicate from NODE: it is neither deposed-pending nor quarantined."""
        return node not in self.deposed and node not in self.quarantine


def read(client, name, deadline=None):
    """Return the Cluster of NAME as etcd's member (serializable read) has it, or an unreachable one."""
    from .dcs import DcsError
    p = prefix(name)
    try:
        kvs, revision = client.get_prefix(p, deadline=deadline)
    except DcsError as exc:
        return Cluster(reachable=False, error=str(exc))
    c = Cluster(reachable=True, revision=revision)
    for key, kv in kvs.items():
        rel = key[len(p):]
        if rel == "leader":
            c.leader = kv
        elif rel == "sync":
            c.sync = kv.value
        elif rel == "promotion":
            c.promotion = kv.value
        elif rel == "switchover":
            c.switchover = kv
        elif rel.startswith("deposed/"):
            c.deposed[rel.split("/", 1)[1]] = (kv.value, kv.mod_revision)
        elif rel.startswith("quarantine/"):
            c.quarantine[rel.split("/", 1)[1]] = kv.value
        elif rel.startswith("members/"):
            c.members[rel.split("/", 1)[1]] = kv.value
    return c
