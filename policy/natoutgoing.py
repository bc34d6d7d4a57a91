"""Felix's NAT-outgoing: pods in a `natOutgoing: true` pool leave the cluster with the
node's address. Pure: IP pools -> the nat chains, hook and ipsets, merged into a node's
Dataplane beside its policy (the same renderer, applier and restore session write them).

As felix/rules/nat.go renders it::

    -A POSTROUTING -j cali-POSTROUTING
    -A cali-POSTROUTING -j cali-nat-outgoing
    -A cali-nat-outgoing -m set --match-set cali40masq-ipam-pools src
        -m set ! --match-set cali40all-ipam-pools dst -j MASQUERADE --random-fully

cali40masq-ipam-pools holds the CIDRs of enabled pools with natOutgoing, cali40all-ipam-pools
those of every pool (traffic between pools, i.e. pod to pod, is never masqueraded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from policy.ir import HASH_NET, Chain, Dataplane, IPSet, Rule

NAT = "nat"
POSTROUTING_CHAIN = "cali-POSTROUTING"
NAT_OUTGOING_CHAIN = "cali-nat-outgoing"
MASQ_SET = "cali40masq-ipam-pools"
ALL_SET = "cali40all-ipam-pools"
POOL_SETS = frozenset({MASQ_SET, ALL_SET})


def nat_parts(pools: Iterable[Mapping]) -> tuple[dict[str, Chain], tuple[Rule, ...], dict]:
    """(nat chains, POSTROUTING hook rules, ipsets) from IPPool specs ({cidr, natOutgoing,
    disabled})."""
    pools = list(pools)
    masq = frozenset(p["cidr"] for p in pools if p.get("natOutgoing") and not p.get("disabled"))
    every = frozenset(p["cidr"] for p in pools)
    outgoing = Chain(NAT_OUTGOING_CHAIN, (Rule(
        ("-m", "set", "--match-set", MASQ_SET, "src", "-m", "set", "!", "--match-set", ALL_SET,
         "dst"), ("-j", "MASQUERADE", "--random-fully")),))
    post = Chain(POSTROUTING_CHAIN, (Rule((), ("-j", NAT_OUTGOING_CHAIN)),))
    sets = {MASQ_SET: IPSet(MASQ_SET, HASH_NET, masq, "IP pools with natOutgoing"),
            ALL_SET: IPSet(ALL_SET, HASH_NET, every, "all IP pools")}
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
