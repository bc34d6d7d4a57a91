"""Fixtures for root integration tests: throwaway named netns, removed pass or fail."""

from __future__ import annotations

import secrets

import pytest

from orchestrator.host.runner import DEFAULT


@pytest.fixture
def make_netns():
    """make_netns(prefix, ip) -> name: a netns with lo up and a veth pair (x0 holds ip/24),
    so sockets can bind and connect inside it. Each is deleted at teardown, and the test
    fails if a process was left running in it."""
    made = []

    def make(prefix: str, ip: str) -> str:
        name = f"{prefix}-{secrets.token_hex(4)}"
        DEFAULT.run(["ip", "netns", "add", name])
        made.append(name)
        DEFAULT.run(["ip", "-n", name, "-batch", "-"], input=(
            "link set lo up\nlink add x0 type veth peer name x1\n"
            f"addr add {ip}/24 dev x0\nlink set x0 up\nlink set x1 up\n"))
        return name

    yield make
    left = {}
    for name in made:
        pids = DEFAULT.run(["ip", "netns", "pids", name], check=False).stdout.split()
        if pids:
            left[name] = pids
        DEFAULT.run(["ip", "netns", "del", name], check=False)
    assert not left, f"processes left in test namespaces: {left}"
