"""`make status` and `make up` name what keeps the lab from being healthy (labctl.status.problems)."""
from labctl import status


def healthy_state():
    return {"nodes": [{"node": "web1", "role": "web", "health": "healthy"},
                      {"node": "master1", "role": "db-source", "health": "healthy"}],
            "vips": {"lb": {"holders": ["lb1"]}, "dblb": {"holders": ["dblb2"]}},
            "writers": ["master1"],
            "links": [{"source": "master1", "replica": "master2", "state": "running"}],
            "etcd": [{"name": "etcd1", "healthy": True, "leader": True}],
            "write_path": {"quarantine": {}}}


def test_a_healthy_state_has_no_problems():
    assert status.problems(healthy_state()) == []


def test_each_problem_is_named_with_the_node_it_is_about():
    state = healthy_state()
    state["nodes"][0]["health"] = "starting"
    state["vips"]["dblb"]["holders"] = ["dblb1", "dblb2"]
    state["writers"] = []
    state["links"][0]["state"] = "stopped"
    state["etcd"][0]["healthy"] = False
    state["write_path"]["quarantine"] = {"master2": {"why": "holds commits past its cut-off"}}
    assert status.problems(state) == [
        "web1 is starting",
        "the dblb VIP is held by 2 LBs (dblb1, dblb2)",
        "0 nodes take writes (none)",
        "replication master1 -> master2 is stopped",
        "etcd member etcd1 is down",
        "master2 is quarantined",
    ]
