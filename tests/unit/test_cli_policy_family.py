"""`calinet policy compile --family 4|6` and `calinet explain --family` (no root, no testbed:
the conformance model, now dual-stack, or a stand-in for a testbed's store): the
ip6tables-restore and ipset text of the IPv6 dataplane against a golden file, IPv4 output
unchanged by the model's IPv6 addresses, explain's pods and addresses in IPv6, and clear
errors for a bad --family, for IPv6 on a testbed whose pods have no IPv6 address and for a
flow mixing families (regenerate the golden file with CALINET_UPDATE_GOLDEN=1 after checking
the diff)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import policy_cmd
from orchestrator.cli.policy_cmd import compile_text, explain_text, xyz_endpoints
from orchestrator.errors import CalinetError, ValidationError

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures" / "policy" / "cli_xyz_node1_v6.txt"

# Both families in one file: a Kubernetes policy with IPv4 and IPv6 ipBlocks and a named
# port, and a Calico one with ICMPv6, ICMP, ipVersion and nets of each family.
POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-from-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: y}}
    - ipBlock: {cidr: "fd00:99::/64", except: ["fd00:99::/96"]}
    - ipBlock: {cidr: 192.168.0.0/16, except: [192.168.1.0/24]}
    ports: [{port: serve-80-tcp, protocol: TCP}, {port: 81}]
  egress:
  - to: [{podSelector: {matchLabels: {pod: b}}}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: icmp-and-versions}
spec:
  order: 10
  selector: pod == 'a'
  ingress:
  - {action: Allow, protocol: ICMPv6, icmp: {type: 128}}
  - {action: Deny, protocol: ICMP}
  - {action: Allow, ipVersion: 4, source: {nets: [10.0.0.0/8]}}
  - {action: Log, ipVersion: 6, source: {nets: ["fd00:10:244::/56"]}}
"""


@pytest.fixture
def policy_file(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(POLICIES)
    return str(f)


def calinet(tmp_path, *args):
    env = {**os.environ, "CALINET_STATE_DIR": str(tmp_path / "no-testbed")}
    return subprocess.run([sys.executable, "-m", "orchestrator.cli.main", *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)


def test_xyz_model_is_dual_stack_within_the_default_pools():
    import ipaddress
    eps, _ = xyz_endpoints()
    pool4, pool6 = (ipaddress.ip_network(n) for n in ("10.244.0.0/16", "fd00:10:244::/56"))
    assert all(ipaddress.ip_address(e.ip) in pool4 for e in eps)
    assert all(ipaddress.ip_address(e.ip6) in pool6 for e in eps)
    assert len({e.ip6 for e in eps}) == len(eps) == 9
    a = next(e for e in eps if e.key == "y/b")
    assert (a.node, a.ip, a.ip6) == ("node-2", "10.244.1.11", "fd00:10:244:1::b")


def test_ipv6_output_matches_the_golden_file(policy_file):
    text = compile_text([policy_file], node="node-1", family=6)
    if os.environ.get("CALINET_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_ipv6_output_is_the_ip6tables_dataplane(policy_file):
    text = compile_text([policy_file], node="node-1", family=6)
    head, _, sets = text.partition("# ipset restore input:\n")
    assert "ip6tables-restore --noflush input:" in head.splitlines()[1]
    assert "-s fd00:99::/64" in head and "192.168.0.0/16" not in head
    assert "-p ipv6-icmp -m icmp6 --icmpv6-type 128" in head
    # The ICMP Deny and the ipVersion 4 Allow have nothing to do in ip6tables; the ipVersion
    # 6 Log is there.
    assert "-p icmp " not in head and "10.0.0.0/8" not in head
    assert "-s fd00:10:244::/56" in head and "NFLOG" in head
    # Felix's ICMPv6 a pod needs from its router, accepted before its egress policy
    assert "-A cali-wl-to-host" in head and "--icmpv6-type 135" in head
    assert "create cali60s:" in sets and "family inet6" in sets and "cali40" not in sets
    # namespace y's pods by their IPv6 addresses, the named port of x/a (node-1)
    for ip6 in ("fd00:10:244::b", "fd00:10:244:1::b", "fd00:10:244:2::b"):
        assert f" {ip6}\n" in sets
    assert " fd00:10:244::a,tcp:80\n" in sets


def test_ipv4_output_is_unchanged_by_the_models_ipv6_addresses(policy_file, monkeypatch):
    with_v6 = compile_text([policy_file], node="node-1")
    assert compile_text([policy_file], node="node-1", family=4) == with_v6
    eps, namespaces = xyz_endpoints()
    only4 = [dataclasses.replace(e, ip6="") for e in eps]
    monkeypatch.setattr(policy_cmd, "xyz_endpoints", lambda: (only4, namespaces))
    assert compile_text([policy_file], node="node-1") == with_v6
    assert "iptables-restore --noflush input:" in with_v6 and "fd00" not in with_v6


def test_cli_family_6_and_bad_family_values(tmp_path, policy_file):
    r = calinet(tmp_path, "policy", "compile", "-f", policy_file, "--family", "6")
    assert r.returncode == 0, r.stderr
    assert r.stdout == compile_text([policy_file], node=None, family=6)
    r4 = calinet(tmp_path, "policy", "compile", "-f", policy_file)
    assert r4.returncode == 0 and r4.stdout == compile_text([policy_file], node=None)
    for bad, why in (("5", "invalid choice: 5"), ("six", "invalid int value: 'six'")):
        r = calinet(tmp_path, "policy", "compile", "-f", policy_file, "--family", bad)
        assert r.returncode == 2 and f"argument --family: {why}" in r.stderr, r.stderr
        assert r.stdout == ""


@pytest.mark.parametrize("family", [5, "6", None])
def test_compile_text_names_a_bad_family(policy_file, family):
    with pytest.raises(ValidationError, match="--family") as err:
        compile_text([policy_file], node="node-1", family=family)
    assert err.value.field == "--family" and repr(family) in str(err.value)


class _Store:
    """The two lists compile_text reads from a testbed's store."""

    def __init__(self, pods):
        self.pods = pods

    def list(self, kind):
        if kind == "Pod":
            return self.pods
        if kind == "Namespace":
            return [{"metadata": {"name": "x", "labels": {"ns": "x"}}}]
        return []


def _pod(name, ips, node="node-1"):
    return {"metadata": {"name": name, "namespace": "x", "labels": {"pod": name}},
            "spec": {"nodeName": node, "containers": []},
            "status": {"podIP": ips[0], "podIPs": [{"ip": ip} for ip in ips]}}


class _Ctx:
    testbed_id, state_dir = "tb-1", "/nonexistent"

    def __init__(self, ips, *more):
        self.store = _Store([_pod("a", ips), *more])


def test_family_6_on_an_ipv4_only_testbed_is_refused(policy_file):
    with pytest.raises(CalinetError, match=r"--family 6: no pod of the pods of testbed tb-1 "
                                           r"has an IPv6 address"):
        compile_text([policy_file], node=None, ctx=_Ctx(["10.244.0.5"]), family=6)
    # with a dual-stack pod it compiles, against the pod's IPv6 address
    text = compile_text([policy_file], node=None, ctx=_Ctx(["10.244.0.5", "fd00:10:244::5"]),
                        family=6)
    assert "ip6tables-restore" in text and "cali-tw-" in text


# -- calinet explain --family -------------------------------------------------------------

DUAL = _Ctx(["10.244.0.5", "fd00:10:244::5"], _pod("b", ["10.244.0.70", "fd00:10:244::45"],
                                                   "node-2"))


def test_explain_pods_in_ipv6_and_by_ipv6_address():
    text = explain_text(DUAL, "b", "a", "80/TCP", "x", family=6)
    assert text.splitlines()[0] == ("x/b (fd00:10:244::45) -> x/a (fd00:10:244::5) TCP/80: "
                                    "ALLOWED")
    assert "on node-1 (ip6tables)" in text
    # an IPv6 address is taken as one (not as a pod name in -n), its family the flow's
    by_addr = explain_text(DUAL, "fd00:10:244::45", "a", "80/TCP", "x")
    assert by_addr.splitlines()[0].startswith("fd00:10:244::45 -> x/a (fd00:10:244::5)")
    assert "egress of x/b" in by_addr          # the address is pod b's
    v4 = explain_text(DUAL, "b", "a", "80/TCP", "x")
    assert v4.splitlines()[0] == "x/b (10.244.0.70) -> x/a (10.244.0.5) TCP/80: ALLOWED"


@pytest.mark.parametrize("src, dst, family, why", [
    ("10.244.0.70", "fd00:10:244::5", None, "10.244.0.70 is an IPv4 address and "
                                            "fd00:10:244::5 an IPv6 one"),
    ("10.244.0.70", "a", 6, "10.244.0.70 is an IPv4 address, the flow is asked for in IPv6"),
])
def test_explain_family_mismatch_is_a_clear_error(src, dst, family, why):
    with pytest.raises(CalinetError, match=why):
        explain_text(DUAL, src, dst, "80/TCP", "x", family=family)


def test_explain_pod_without_the_family_and_bad_family():
    only4 = _Ctx(["10.244.0.5"], _pod("b", ["10.244.0.70"]))
    with pytest.raises(CalinetError, match=r"pod x/b has no IPv6 address \(it has "
                                           r"10.244.0.70\)"):
        explain_text(only4, "b", "a", "80/TCP", "x", family=6)
    with pytest.raises(ValidationError, match="--family"):
        explain_text(DUAL, "b", "a", "80/TCP", "x", family=46)


def test_explain_cli_refuses_a_bad_family_value(tmp_path):
    r = calinet(tmp_path, "explain", "x/b", "x/a", "80/TCP", "--family", "5")
    assert r.returncode == 2 and "argument --family: invalid choice: 5" in r.stderr, r.stderr
