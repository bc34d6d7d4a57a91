"""Felix's NAT-outgoing: pods in a `natOutgoing: true` pool leave the cluster with the
node's address. Pure: IP pools -> the nat chains, hook and ipsets, merged into a node's
Dataplane beside its policy (the same renderer, applier and restore session write them).

As felix/rules/nat.go renders it::

    -A POSTROUTING -j cali-POSTROUTING
    -A cali-POSTROUTING -j cali-nat-outgoing
    -A cali-nat-outgoing -m set --match-set cali40masq-ipam-pools src
        -m set ! --match-set cali40all-ipam-pools dst -j MASQUERADE --random-fully

cali40masq-ipam-pools holds the CIDRs of enabled pools with natOutgoing, cali40all-ipam-pools
those of every pool (traffic between pools, i.e. pod to pod, is never masqueraded). The IPv6
dataplane gets the same from the IPv6 pools, with cali60 sets (calico-node creates IPv6 pools
with natOutgoing false, so its chain masquerades nothing unless a pool asks).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import replace

from policy.ir import HASH_NET, Chain, Dataplane, IPSet, Rule

NAT = "nat"
POSTROUTING_CHAIN = "cali-POSTROUTING"
NAT_OUTGOING_CHAIN = "cali-nat-outgoing"
MASQ_SET = "cali40masq-ipam-pools"
ALL_SET = "cali40all-ipam-pools"
POOL_SETS = frozenset({MASQ_SET, ALL_SET, "cali60masq-ipam-pools", "cali60all-ipam-pools"})


def _version(cidr: str) -> int:
    try:
        return ipaddress.ip_network(cidr, strict=False).version
    except ValueError:
        return 4


def nat_parts(pools: Iterable[Mapping], family: int = 4
              ) -> tuple[dict[str, Chain], tuple[Rule, ...], dict]:
    """(nat chains, POSTROUTING hook rules, ipsets) from IPPool specs ({cidr, natOutgoing,
    disabled}) of ``family`` (the others' are ignored)."""
    pools = [p for p in pools if _version(p["cidr"]) == family]
    masq_set = MASQ_SET if family == 4 else MASQ_SET.replace("cali40", "cali60")
    all_set = ALL_SET if family == 4 else ALL_SET.replace("cali40", "cali60")
    masq = frozenset(p["cidr"] for p in pools if p.get("natOutgoing") and not p.get("disabled"))
    every = frozenset(p["cidr"] for p in pools)
    outgoing = Chain(NAT_OUTGOING_CHAIN, (Rule(
        ("-m", "set", "--match-set", masq_set, "src", "-m", "set", "!", "--match-set", all_set,
         "dst"), ("-j", "MASQUERADE", "--random-fully")),))
    post = Chain(POSTROUTING_CHAIN, (Rule((), ("-j", NAT_OUTGOING_CHAIN)),))
    sets = {masq_set: IPSet(masq_set, HASH_NET, masq, "IP pools with natOutgoing", family),
            all_set: IPSet(all_set, HASH_NET, every, "all IP pools", family)}
    return ({post.name: post, outgoing.name: outgoing},
            (Rule((), ("-j", POSTROUTING_CHAIN)),), sets)


def with_nat_outgoing(dp: Dataplane, parts) -> Dataplane:
    """A new Dataplane: ``dp`` (which may be a compile cache's, so it is not changed) plus
    the nat parts."""
    chains, hook, sets = parts
    return replace(dp, chains={**dp.chains, NAT: dict(chains)},
                   hooks={**dp.hooks, (NAT, "POSTROUTING"): hook},
                   ipsets={**dp.ipsets, **sets})


def pool_specs(pool_objs: Iterable[Mapping]) -> list[dict]:
    return [{"cidr": o["spec"]["cidr"], "natOutgoing": bool(o["spec"].get("natOutgoing")),
             "disabled": bool(o["spec"].get("disabled"))} for o in pool_objs]
