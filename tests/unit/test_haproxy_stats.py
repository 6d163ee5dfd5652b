"""Reading HAProxy's `show stat` through `docker exec` (labctl.haproxy): a reply without its table is an error."""
import pytest

from labctl import haproxy

TABLE = "# pxname,svname,status,scur\nweb,web1,UP,2\nweb,web4,MAINT,0\nweb_degraded,web1,UP,1\n\n"


def test_the_table_is_read_from_its_header_on_whatever_comes_before():
    rows = haproxy.parse_stat("lb1", "socat: a warning on stderr\n" + TABLE)
    assert [(r["pxname"], r["svname"], r["scur"]) for r in rows] == [
        ("web", "web1", "2"), ("web", "web4", "0"), ("web_degraded", "web1", "1")]


def test_a_reply_without_a_table_is_a_clear_error():
    with pytest.raises(haproxy.HaproxyError, match="answered no table: 'Unknown command'"):
        haproxy.parse_stat("lb1", "Unknown command\n")


def test_a_node_missing_from_a_backend_is_an_error_not_a_key_error(monkeypatch):
    monkeypatch.setattr(haproxy, "runtime", lambda node, command: TABLE)
    with pytest.raises(haproxy.HaproxyError, match="lists no web4"):
        haproxy.web_sessions("lb1", ["web1", "web4"])
