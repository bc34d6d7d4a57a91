"""A small L2 lab for root tests: N named netns on one bridge that itself lives in a netns
(so nothing is created in the root namespace)."""

from __future__ import annotations


def build_lan(runner, switch: str, netns: list[str], ips: list[str], prefixlen: int = 24) -> None:
    run = runner.run
    run(["ip", "netns", "add", switch])
    run(["ip", "link", "add", "br0", "type", "bridge"], netns=switch)
    run(["ip", "link", "set", "br0", "up"], netns=switch)
    for i, (ns, ip) in enumerate(zip(netns, ips)):
        run(["ip", "netns", "add", ns])
        run(["ip", "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0",
             "netns", ns], netns=switch)
        run(["ip", "link", "set", f"p{i}", "master", "br0", "up"], netns=switch)
        run(["ip", "addr", "add", f"{ip}/{prefixlen}", "dev", "eth0"], netns=ns)
        run(["ip", "link", "set", "eth0", "up"], netns=ns)
        run(["ip", "link", "set", "lo", "up"], netns=ns)
