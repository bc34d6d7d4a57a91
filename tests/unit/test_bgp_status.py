"""`calinet node status` / `calinet routes` rendering: goldens in calicoctl's exact shape."""

from __future__ import annotations

import datetime as dt

from bgp import status

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=UTC).timestamp()


def at(h, m, s, day=25):
    return dt.datetime(2026, 11, day, h, m, s, tzinfo=UTC).timestamp()


def test_node_status_mesh_matches_calicoctl():
    st = {"running": True, "peers": [
        {"ip": "172.16.6.225", "type": "node-to-node mesh", "state": "up",
         "since": at(11, 40, 8), "info": "Established"},
        {"ip": "172.16.6.95", "type": "node-to-node mesh", "state": "up",
         "since": at(11, 40, 10), "info": "Established"}]}
    assert status.render_node_status(st, NOW, UTC) == (
        "Calico process is running.\n"
        "\n"
        "IPv4 BGP status\n"
        "+--------------+-------------------+-------+----------+-------------+\n"
        "| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |\n"
        "+--------------+-------------------+-------+----------+-------------+\n"
        "| 172.16.6.225 | node-to-node mesh | up    | 11:40:08 | Established |\n"
        "| 172.16.6.95  | node-to-node mesh | up    | 11:40:10 | Established |\n"
        "+--------------+-------------------+-------+----------+-------------+\n"
        "\n"
        "IPv6 BGP status\n"
        "No IPv6 peers found.\n")


def test_long_info_wraps_like_tablewriter_and_old_dates_show_the_day():
    st = {"peers": [{"ip": "172.18.0.1", "type": "node-to-node mesh", "state": "start",
                     "since": at(1, 56, 41), "info": "Connect Socket: Network unreachable"},
                    {"ip": "10.0.0.9", "type": "global", "state": "up",
                     "since": at(9, 0, 0, day=20), "info": "Established"}]}
    assert status.render_node_status(st, NOW, UTC) == (
        "Calico process is running.\n"
        "\n"
        "IPv4 BGP status\n"
        "+--------------+-------------------+-------+------------+--------------------------------+\n"
        "| PEER ADDRESS |     PEER TYPE     | STATE |   SINCE    |              INFO              |\n"
        "+--------------+-------------------+-------+------------+--------------------------------+\n"
        "| 172.18.0.1   | node-to-node mesh | start | 01:56:41   | Connect Socket: Network        |\n"
        "|              |                   |       |            | unreachable                    |\n"
        "| 10.0.0.9     | global            | up    | 2026-11-20 | Established                    |\n"
        "+--------------+-------------------+-------+------------+--------------------------------+\n"
        "\n"
        "IPv6 BGP status\n"
        "No IPv6 peers found.\n")


def test_not_running_and_no_peers():
    assert status.render_node_status(None, NOW) == "Calico process is not running.\n"
    assert status.render_node_status({"running": False, "peers": []}, NOW) == \
        "Calico process is not running.\n"
    assert status.render_node_status({"peers": []}, NOW) == (
        "Calico process is running.\n\nIPv4 BGP status\nNo IPv4 peers found.\n"
        "\nIPv6 BGP status\nNo IPv6 peers found.\n")


def test_routes_table_shows_source_of_each_route():
    st = {"routes": [
        {"prefix": "10.244.0.0/26", "type": "blackhole", "via": None, "source": "local"},
        {"prefix": "10.244.0.9/32", "type": "unicast", "via": "10.0.0.3", "source": "10.0.0.9"},
        {"prefix": "10.244.1.0/26", "type": "unicast", "via": "10.0.0.2", "source": "10.0.0.2"}]}
    assert status.render_routes(st) == (
        "+---------------+-----------+----------+-------------+\n"
        "|    PREFIX     |   TYPE    |   VIA    |   SOURCE    |\n"
        "+---------------+-----------+----------+-------------+\n"
        "| 10.244.0.0/26 | blackhole | -        | local block |\n"
        "| 10.244.0.9/32 | unicast   | 10.0.0.3 | 10.0.0.9    |\n"
        "| 10.244.1.0/26 | unicast   | 10.0.0.2 | 10.0.0.2    |\n"
        "+---------------+-----------+----------+-------------+\n")
    assert status.render_routes({"routes": []}) == "No routes.\n"
    assert status.render_routes(None).startswith("No routes")


def test_wrap_words_prefers_even_lines():
    assert status._wrap_words("aaa bbb ccc ddd".split(), 8) == ["aaa bbb", "ccc ddd"]
    assert status._wrap_words(["averyveryverylongword"], 5) == ["averyveryverylongword"]
