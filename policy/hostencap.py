"""Felix's host rules for encapsulated traffic: who may send a node IPIP or VXLAN packets. Pure:
IP pools + the nodes' addresses -> rules at the head of cali-INPUT and after cali-OUTPUT's
workload return, and the ipsets they match, merged into a node's Dataplane beside its policy.

As felix/rules/static.go renders them while an IPIP (VXLAN) pool is enabled::

    -A cali-INPUT -p ipencap -m set --match-set cali40all-hosts-net src
        -m addrtype --dst-type LOCAL -j ACCEPT        "Allow IPIP packets from Calico hosts"
    -A cali-INPUT -p ipencap -j DROP                  "Drop IPIP packets from non-Calico hosts"
    -A cali-INPUT -p udp -m multiport --dports 4789 -m set --match-set cali40all-vxlan-net src
        -m addrtype --dst-type LOCAL -j ACCEPT        "Allow IPv4 VXLAN packets from allowed hosts"
    -A cali-INPUT -p udp -m multiport --dports 4789 -m addrtype --dst-type LOCAL -j DROP
                                                      "Drop IPv4 VXLAN packets from non-allowed hosts"
    -A cali-OUTPUT -p ipencap -m set --match-set cali40all-hosts-net dst
        -m addrtype --src-type LOCAL -j ACCEPT        "Allow IPIP packets to other Calico hosts"
    -A cali-OUTPUT -p udp -m multiport --dports 4789 -m addrtype --src-type LOCAL
        -m set --match-set cali40all-vxlan-net dst -j ACCEPT
                                                      "Allow IPv4 VXLAN packets to other allowed hosts"

cali40all-hosts-net holds every node's address; cali40all-vxlan-net those of the nodes with a
VTEP (their VXLAN tunnel address is set). So a forged tunnel packet from anywhere else (a pod
on the fabric, the external network) is dropped before the kernel decapsulates it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from policy import names as N
from policy.ir import FILTER, HASH_NET, Chain, Dataplane, IPSet, Rule

HOSTS_SET = "cali40all-hosts-net"
VXLAN_SET = "cali40all-vxlan-net"
HOST_SETS = frozenset({HOSTS_SET, VXLAN_SET})
VXLAN_PORT = "4789"
_ON = ("Always", "CrossSubnet")


def encap_parts(pools: Iterable[Mapping], hosts: Iterable[tuple[str, bool]]):
    """(cali-INPUT head rules, cali-OUTPUT tail rules, ipsets) from IPPool specs ({cidr,
    ipipMode, vxlanMode, disabled}) and the nodes as (address, has a VTEP)."""
    pools = [p for p in pools if not p.get("disabled")]
    ipip = any(p.get("ipipMode") in _ON for p in pools)
    vxlan = any(p.get("vxlanMode") in _ON for p in pools)
    hosts = list(hosts)
    inp: list[Rule] = []
    out: list[Rule] = []
    sets: dict[str, IPSet] = {}
    vx = ("-p", "udp", "-m", "multiport", "--dports", VXLAN_PORT)
    if ipip:
        sets[HOSTS_SET] = IPSet(HOSTS_SET, HASH_NET, frozenset(f"{ip}/32" for ip, _ in hosts),
                                "all Calico hosts")
        inp += [Rule(("-p", "ipencap", "-m", "set", "--match-set", HOSTS_SET, "src",
                      "-m", "addrtype", "--dst-type", "LOCAL"), ("-j", "ACCEPT"),
                     "Allow IPIP packets from Calico hosts"),
                Rule(("-p", "ipencap"), ("-j", "DROP"), "Drop IPIP packets from non-Calico hosts")]
        out.append(Rule(("-p", "ipencap", "-m", "set", "--match-set", HOSTS_SET, "dst",
                         "-m", "addrtype", "--src-type", "LOCAL"), ("-j", "ACCEPT"),
                        "Allow IPIP packets to other Calico hosts"))
    if vxlan:
        sets[VXLAN_SET] = IPSet(VXLAN_SET, HASH_NET,
                                frozenset(f"{ip}/32" for ip, vtep in hosts if vtep),
                                "Calico hosts with a VXLAN tunnel endpoint")
        inp += [Rule(vx + ("-m", "set", "--match-set", VXLAN_SET, "src",
                           "-m", "addrtype", "--dst-type", "LOCAL"), ("-j", "ACCEPT"),
                     "Allow IPv4 VXLAN packets from allowed hosts"),
                Rule(vx + ("-m", "addrtype", "--dst-type", "LOCAL"), ("-j", "DROP"),
                     "Drop IPv4 VXLAN packets from non-allowed hosts")]
        out.append(Rule(vx + ("-m", "addrtype", "--src-type", "LOCAL",
                              "-m", "set", "--match-set", VXLAN_SET, "dst"), ("-j", "ACCEPT"),
                        "Allow IPv4 VXLAN packets to other allowed hosts"))
    return tuple(inp), tuple(out), sets


def with_host_encap(dp: Dataplane, parts) -> Dataplane:
    """A new Dataplane: ``dp`` (which may be shared with a compile cache, so it is not
    changed) with the rules around its cali-INPUT / cali-OUTPUT and the sets; ``dp`` itself
    when no encapsulation is on."""
    inp, out, sets = parts
    if not (inp or out):
        return dp
    filt = dict(dp.chains[FILTER])
    filt[N.INPUT] = Chain(N.INPUT, inp + filt[N.INPUT].rules)
    filt[N.OUTPUT] = Chain(N.OUTPUT, filt[N.OUTPUT].rules + out)
    return replace(dp, chains={**dp.chains, FILTER: filt}, ipsets={**dp.ipsets, **sets})


def encap_pool_specs(pool_objs: Iterable[Mapping]) -> list[dict]:
    return [{"cidr": o["spec"]["cidr"], "ipipMode": o["spec"].get("ipipMode") or "Never",
             "vxlanMode": o["spec"].get("vxlanMode") or "Never",
             "disabled": bool(o["spec"].get("disabled"))} for o in pool_objs]
