"""A container's own /etc/resolv.conf through a private mount namespace; the machine's file
stays as it was."""

from __future__ import annotations

import pytest

from orchestrator.dns import resolvconf
from orchestrator.host.runner import DEFAULT

pytestmark = pytest.mark.root


def test_wrapped_command_sees_the_pods_resolv_conf(make_netns, tmp_path):
    ns = make_netns("calinet-dnsrc", "10.9.2.1")
    before = open("/etc/resolv.conf").read()
    path = resolvconf.write(str(tmp_path / "resolv.conf"), "demo")
    r = DEFAULT.run(resolvconf.wrap(["cat", "/etc/resolv.conf"], path), netns=ns)
    assert r.stdout == resolvconf.render("demo")
    assert open("/etc/resolv.conf").read() == before
