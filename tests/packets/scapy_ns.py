"""The scapy-in-a-pod helpers the packet tests use: now library code in orchestrator.traffic.packets
(re-exported here so the tests keep their imports). Side effects: those of that module."""

from scapy.config import conf

from orchestrator.traffic.packets import (  # noqa: F401 - re-exported
    IFACE,
    TIMEOUT,
    PodSocket,
    pod_socket,
    send,
    sniff,
    sniffing,
    sr1,
    tcp_connect,
)

conf.verb = 0       # no "Begin emission" chatter in test output
