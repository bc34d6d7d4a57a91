"""The encapsulation agent (Felix's VXLAN and IPIP managers, for every node): store -> plans
-> kernels.

Side effects: IPAM tunnel addresses, assigned while a VXLAN (IPIP) pool selects the node and
released when none does: handle `vxlan-tunnel-addr-<node>` (`ipip-tunnel-addr-<node>`),
attributes {node, type: vxlanTunnelAddress (ipipTunnelAddress)}, as calico-node's
allocate-tunnel-addrs names them; the Node annotations Calico's Kubernetes datastore keeps for
them (`projectcalico.org/IPv4VXLANTunnelAddr` + `VXLANTunnelMACAddr`,
`projectcalico.org/IPv4IPIPTunnelAddr`); each node's `vxlan.calico` device, ARP/FDB entries and
`proto 80` routes through encap.apply, and its `tunl0` through encap.ipip. It also tells the
BGP agents which pools are no longer theirs to program (VXLAN), which go through tunl0 (IPIP),
and the kubelets which MTU new pods get.

poll() is cheap when nothing changed: it compares the IPPool/IPAMBlock/Node resource
versions, and a cluster with no encapsulated pool that never had one costs two store reads.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from encap import ipip
from encap import plan as vx
from encap.apply import VxlanApplier
from orchestrator.control.nodes import (
    IPIP_ADDR_ANNOTATION,
    VXLAN_ADDR_ANNOTATION,
    VXLAN_MAC_ANNOTATION,
)
from orchestrator.errors import ApplyError, CalinetError, ValidationError
from orchestrator.ipam import allocator
from orchestrator.ipam.selector import pool_selects_node

log = logging.getLogger(__name__)

TUNNEL_ADDR_ANNOTATION, TUNNEL_MAC_ANNOTATION = VXLAN_ADDR_ANNOTATION, VXLAN_MAC_ANNOTATION
KINDS = ("IPPool", "IPAMBlock", "Node")


class IPIPAdmission:
    """Apply-time check of an IPPool with ipipMode other than Never: it needs the kernel's
    ipip module, and BGP (IPIP routes are the BGP agent's, as they are BIRD's in Calico).
    Without either the pool is refused (the apply is rolled back) with the reason, rather than
    accepted and silently left unrouted."""

    KINDS = frozenset({"IPPool"})

    def __init__(self, runner=None, *, bgp: bool = True):
        self.runner, self.bgp = runner, bgp

    def __call__(self, store, objs: list[dict]) -> None:
        from encap.features import available
        for o in objs:
            mode = (o.get("spec") or {}).get("ipipMode") or vx.NEVER
            if o["kind"] != "IPPool" or mode == vx.NEVER:
                continue
            ok, why = available("ipip", *([self.runner] if self.runner else []))
            if not ok:
                raise ValidationError(
                    f"ipipMode {mode} needs IP-in-IP tunnels, which this machine's kernel lacks "
                    f"(`ip link add type ipip`: {why or 'failed'}); use vxlanMode instead, or "
                    "run calinet in the Vagrant VM, whose kernel has the ipip module",
                    obj=f"IPPool {o['metadata']['name']}", field="spec.ipipMode")
            if not self.bgp:
                raise ValidationError(
                    f"ipipMode {mode} needs BGP: IPIP routes are learned from the other nodes' "
                    "BGP speakers (Calico's bird backend), and this testbed runs none; use "
                    "vxlanMode (Calico's VXLAN-only backend) or start it with BGP",
                    obj=f"IPPool {o['metadata']['name']}", field="spec.ipipMode")


def pool_admissions(*, bgp: bool, families) -> list:
    """The apply-time checks an IPPool meets on a running testbed: IPIP needs the module and
    BGP (IPIPAdmission), an IPv6 pool needs pods that get IPv6 (IPFamilyAdmission)."""
    from orchestrator.ipam.families import IPFamilyAdmission
    return [IPIPAdmission(bgp=bgp), IPFamilyAdmission(families)]


def tunnel_ips(store) -> dict[str, str]:
    """Node tunnel address -> node name, from the Node annotations (for `ipam check`)."""
    out = {}
    for n in store.list("Node"):
        notes = n["metadata"].get("annotations") or {}
        for key in (TUNNEL_ADDR_ANNOTATION, IPIP_ADDR_ANNOTATION):
            if notes.get(key):
                out[notes[key]] = n["metadata"]["name"]
    return out


def tunnel_handle(node: str, kind: str = "vxlan") -> str:
    return f"{kind}-tunnel-addr-{node}"


def pool_facts(pool_objs) -> list[vx.PoolFacts]:
    return [vx.PoolFacts(p["spec"]["cidr"], p["spec"].get("vxlanMode") or vx.NEVER,
                         bool(p["spec"].get("disabled")),
                         p["spec"].get("ipipMode") or vx.NEVER) for p in pool_objs]


def _encapsulated(pools: list[vx.PoolFacts]) -> bool:
    return bool(vx.vxlan_pools(pools) or vx.ipip_pools(pools))


class EncapAgent:
    """``nodes``: name -> (pid, node IP, subnet CIDR). ``fresh``: the nodes were just made."""

    def __init__(self, store, ipam, nodes: dict, runner, *, fresh: bool = False,
                 routing=None, kubelets=None, underlay_mtu: int = 1500, workers: int = 8):
        self.store, self.ipam, self.runner = store, ipam, runner
        self.nodes = dict(nodes)
        self.routing, self.kubelets = routing, kubelets or {}
        self.underlay_mtu = underlay_mtu
        self.appliers = {n: VxlanApplier(n, pid, runner, fresh=fresh)
                         for n, (pid, _ip, _sub) in self.nodes.items()}
        self.tunl0 = {n: ipip.IpipApplier(n, pid, runner)
                      for n, (pid, _ip, _sub) in self.nodes.items()}
        self._seen: tuple | None = None
        self._active = False          # an encapsulated pool existed at some point: reconcile
        self._ipip_active = False     # an IPIP pool existed at some point: keep tunl0 right
        self.errors: dict[str, str] = {}            # node -> last apply failure
        self.addr_errors: dict[tuple, str] = {}     # (node, kind) -> tunnel address failure
        self.plans: dict[str, vx.NodePlan] = {}
        self.ipip_plans: dict[str, ipip.IpipDevice | None] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="calinet-vxlan")

    def _versions(self) -> tuple:
        # (name, resourceVersion) of every object: a deletion changes it too (the store's
        # version counter is global, so a maximum would not move when one goes).
        return tuple(tuple((o["metadata"]["name"], o["metadata"].get("resourceVersion"))
                           for o in self.store.list(k, shared=True)) for k in KINDS)

    def poll(self) -> list[str]:
        """Reconcile when inputs changed (or a node failed last time); returns nodes written."""
        with self._lock:
            pools = pool_facts(self.store.list("IPPool", shared=True))
            on = _encapsulated(pools)
            if not on and not self._active:
                return []
            seen = self._versions()
            if seen == self._seen and not self.errors and not self.addr_errors:
                return []
            self._active = True
            self._ensure_tunnel_addresses(pools)
            facts = self._node_facts()
            state = self.ipam.state()
            blocks = {c: b.affinity for c, b in state.blocks.items() if b.affinity}
            borrowed = [(r["ip"], r["borrowing_node"]) for r in self.ipam.borrowed()]
            plans = {n: vx.plan(n, facts, pools, blocks, borrowed) for n in self.nodes}
            ipip_on = bool(vx.ipip_pools(pools))
            self._ipip_active = self._ipip_active or ipip_on
            ipip_plans = {f.name: ipip.plan(f.ipip_tunnel_ip, f.mtu, ipip_on) for f in facts}
            ipip_routes = [(p.cidr, p.ipip_mode) for p in vx.ipip_pools(pools)]
            if self.routing is not None:
                self.routing.set_unprogrammed(vx.unprogrammed(pools))
                if not ipip_on:
                    # Routes back to native before tunl0 loses its address (which flushes
                    # what still goes through it).
                    self.routing.set_ipip(ipip_routes)
            mtu = vx.pod_mtu(self.underlay_mtu, pools)
            for kubelet in self.kubelets.values():
                kubelet.pod_mtu = mtu
            todo = [n for n in self.nodes if plans[n] != self.plans.get(n)
                    or (self._ipip_active and ipip_plans[n] != self.ipip_plans.get(n, "-"))
                    or n in self.errors]
            results = list(self._pool.map(lambda n: self._apply(n, plans[n], ipip_plans[n]),
                                          todo))
            if self.routing is not None and ipip_on:
                # Only now that tunl0 is up: the kernel refuses an onlink route through a
                # device that is down ("Nexthop device is not up").
                self.routing.set_ipip(ipip_routes)
            self.plans.update(plans)
            self.ipip_plans.update(ipip_plans)
            failed = self.errors or self.addr_errors
            self._seen = seen if not failed else None
            if not on and not any(p.device for p in plans.values()) and not failed:
                self._active = self._ipip_active = False
            return [n for n, ok in zip(todo, results) if ok]

    def _apply(self, node: str, plan: vx.NodePlan, tunl0: ipip.IpipDevice | None) -> bool:
        try:
            wrote = self.appliers[node].apply(plan)
            if self._ipip_active:
                wrote = self.tunl0[node].apply(tunl0) or wrote
        except ApplyError as exc:
            log.error("encapsulation on %s: %s\ninput:\n%s", node, exc, exc.rendered_input)
            self.errors[node] = str(exc)
            return False
        self.errors.pop(node, None)
        return wrote

    def _ensure_tunnel_addresses(self, pools: list[vx.PoolFacts]) -> None:
        """A tunnel address per node and encapsulation whose pools select it; released where
        none does."""
        objs = {p["spec"]["cidr"]: p for p in self.store.list("IPPool")}
        state = self.ipam.state()    # what each handle holds now (one read for all nodes)
        for name in self.nodes:
            node = self.store.get("Node", name)
            if node is None:
                continue
            labels = node["metadata"].get("labels") or {}
            notes = node["metadata"].get("annotations") or {}

            def chosen(enabled, labels=labels):
                return [objs[p.cidr]["metadata"]["name"] for p in enabled
                        if pool_selects_node(objs[p.cidr]["spec"].get("nodeSelector")
                                             or "all()", labels)]
            mac = vx.tunnel_mac(self.nodes[name][1])
            for kind, enabled, want in (
                    ("vxlan", vx.vxlan_pools(pools),
                     {TUNNEL_ADDR_ANNOTATION: None, TUNNEL_MAC_ANNOTATION: mac}),
                    ("ipip", vx.ipip_pools(pools), {IPIP_ADDR_ANNOTATION: None})):
                held = allocator.ips_for_handle(state, tunnel_handle(name, kind))
                self._tunnel_address(name, kind, chosen(enabled), objs, notes, want, held)

    def _tunnel_address(self, name: str, kind: str, pools: list[str], objs: dict,
                        notes: dict, want: dict, held: list[str]) -> None:
        """Assign (from ``pools``, IPPool names) or release node ``name``'s ``kind`` tunnel
        address and keep its annotations (``want``: annotation -> value, None for the address
        itself), as calico-node's allocate-tunnel-addrs: an address outside every pool that
        selects the node now is released and a new one taken."""
        addr_key = next(k for k, v in want.items() if v is None)
        handle = tunnel_handle(name, kind)
        have = notes.get(addr_key)
        if pools:
            nets = [ipaddress.ip_network(o["spec"]["cidr"]) for o in objs.values()
                    if o["metadata"]["name"] in pools]
            if held and not any(ipaddress.ip_address(held[0]) in n for n in nets):
                self.ipam.release_by_handle(handle)
            try:
                ip = self.ipam.auto_assign(handle, name,
                                           {"node": name, "type": f"{kind}TunnelAddress"},
                                           pool_names=pools)
            except CalinetError as exc:
                log.error("no %s tunnel address for %s: %s", kind.upper(), name, exc)
                self.addr_errors[(name, kind)] = f"{kind.upper()} tunnel address: {exc}"
                if have and not self.ipam.ips_for_handle(handle):
                    self._annotate(name, dict.fromkeys(want))   # released above: not its own
                return
            self.addr_errors.pop((name, kind), None)
            want = {k: ip if v is None else v for k, v in want.items()}
            if any(notes.get(k) != v for k, v in want.items()):
                self._annotate(name, want)
        else:
            self.addr_errors.pop((name, kind), None)
            # Released also without the annotation (an address taken and never annotated,
            # e.g. the store write failed in between).
            if have or held:
                self.ipam.release_by_handle(handle)
            if have:
                self._annotate(name, dict.fromkeys(want))

    def _annotate(self, name: str, notes: dict) -> None:
        def change(obj):
            ann = obj["metadata"].setdefault("annotations", {})
            for k, v in notes.items():
                if v is None:
                    ann.pop(k, None)
                else:
                    ann[k] = v
            return obj
        self.store.patch("Node", name, "", change)

    def _node_facts(self) -> list[vx.NodeFacts]:
        out = []
        for name, (_pid, ip, subnet) in self.nodes.items():
            node = self.store.get("Node", name) or {"metadata": {}}
            notes = node["metadata"].get("annotations") or {}
            out.append(vx.NodeFacts(name, ip, subnet, notes.get(TUNNEL_ADDR_ANNOTATION),
                                    notes.get(TUNNEL_MAC_ANNOTATION), mtu=self.underlay_mtu,
                                    ipip_tunnel_ip=notes.get(IPIP_ADDR_ANNOTATION)))
        return out

    def converged(self) -> list[str]:
        """Problems between now and 'every node holds its encapsulation for the current store'."""
        if not self._active:
            return []
        failed = ([f"node {n}: encapsulation not programmed: {e}"
                   for n, e in sorted(self.errors.items())]
                  + [f"node {n}: {e}" for (n, _k), e in sorted(self.addr_errors.items())])
        if failed:
            return failed
        if self._versions() != self._seen:
            return ["encapsulation reconcile pending"]
        return []

    def stop(self) -> None:
        self._pool.shutdown(wait=True)
