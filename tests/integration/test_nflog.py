"""The NFLOG listener in a throwaway netns: a packet hitting an NFLOG rule with Felix's group
and a policy-naming prefix becomes one line naming the policy and the flow."""

from __future__ import annotations

import time

import pytest

from orchestrator.host.runner import DEFAULT
from orchestrator.node.nflog import NodeLog, config_message, describe_payload, parse_packets

pytestmark = pytest.mark.root


def test_logged_packets_are_written_with_the_policy_prefix(make_netns, tmp_path):
    ns = make_netns("calinet-nflog", "10.9.1.1")
    DEFAULT.run(["iptables-restore", "--noflush"], netns=ns, input=(
        "*filter\n-A OUTPUT -p udp --dport 5353 -j NFLOG --nflog-group 1 "
        '--nflog-prefix "calico-packet x/default.logme ingress"\nCOMMIT\n'))
    path = tmp_path / "packets.log"
    nl = NodeLog("n1", None, str(path), netns=ns)
    nl.start()
    try:
        DEFAULT.run(["python3", "-c", "import socket; s=socket.socket(socket.AF_INET, "
                     "socket.SOCK_DGRAM); [s.sendto(b'x', ('10.9.1.1', 5353)) for _ in range(2)]"],
                    netns=ns)
        deadline = time.monotonic() + 5
        while nl.lines < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        nl.stop()
    lines = path.read_text().splitlines()
    assert len(lines) == 2, lines
    assert "n1 calico-packet x/default.logme ingress: UDP 10.9.1.1:" in lines[0]
    assert lines[0].endswith("-> 10.9.1.1:5353")


def test_parsing_is_pure():
    ip = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    assert describe_payload(ip + bytes([0x30, 0x39, 0, 80])) == "TCP 10.0.0.1:12345 -> 10.0.0.2:80"
    assert describe_payload(b"\x60" + b"\0" * 39) == "40 bytes (not IPv4)"
    assert len(config_message(2, 7)) % 4 == 0
    assert parse_packets(b"") == []
