"""BIRD 2 configuration of one fabric router (ToR or spine). Pure; golden-file tested.

What a data-centre operator would configure (RFC 7938 style, and the peerings of Calico's
"Calico over IP fabrics" models):

- a ToR announces its rack subnet (`protocol direct` on the rack interface) and everything it
  learned by BGP to the spines; it peers with each node of its rack (eBGP when the node's AS
  differs, as in AS-per-node; iBGP as the rack's route reflector when the node shares the
  ToR's AS, as in AS-per-rack) and sends the nodes only the pod routes (never underlay
  prefixes, which the nodes reach through their default route);
- a spine peers with every ToR (eBGP) and passes on what it learns;
- learned routes go to the kernel (`proto bird`) with `merge paths on`, so equal eBGP paths
  over several spines become one ECMP route;
- `next hop self ebgp` on the iBGP rack sessions: a route the ToR learned from a spine is
  reflected to its nodes with the ToR as next hop (the spine's /31 is not on the rack's L2),
  while rack-internal routes keep the originating node as next hop;
- nodes may only announce prefixes outside the underlay (their pod blocks).

Dual stack (underlay.cidr6, topologies.fabric6): every IPv4 piece gets an IPv6 twin beside
it, never a change to the IPv4 text: `UNDERLAY6`, a `protocol direct` for the rack's /64, a
second `protocol kernel` (ipv6, merge paths), and an IPv6 session (`<peer>_v6`, `ipv6`
channel, the same filters and `next hop self ebgp`) beside every router-router session,
between the two ends' /127 addresses, and (when the pods have IPv6, ipFamilies) beside every
ToR-node session, to the node's IPv6 address. The routers' interfaces have no link-local
address (topologies.net), so BIRD's next hops are the global addresses: nodes' ExaBGP reads
one next hop per route, and `ip -6 route` shows the /127 peers.
"""

from __future__ import annotations

from topologies.fabric import FabricSpec, RouterSpec

# A broken session is retried quickly (BIRD's defaults are 120 s connect retry and a 60 s
# error wait): a fabric link coming back should carry traffic within seconds.
CONNECT_RETRY = 2
ERROR_WAIT = "1, 10"
# BIRD waits 5 s after start before its first connect; routers start together, so as little
# as BIRD allows (it rounds up to 1 s).
CONNECT_DELAY = 1
BFD_INTERVAL_MS = 100
BFD_MULTIPLIER = 3


def protocol_name(peer: str) -> str:
    """BIRD protocol names are identifiers: tor-a -> tor_a, node-a1 -> node_a1 (a leading
    digit gets "n_": BIRD symbols start with a letter)."""
    name = "".join(c if c.isalnum() else "_" for c in peer)
    return name if name[:1].isalpha() else "n_" + name


def protocol_name6(peer: str) -> str:
    """The IPv6 session's name: tor-a -> tor_a_v6."""
    return protocol_name(peer) + "_v6"


def node_sessions6(spec) -> bool:
    """Whether ToRs peer with their nodes over IPv6 too: IPv6 pods (ipFamilies) on IPv6
    nodes, as the node speakers only run IPv6 sessions then (orchestrator.node.routing)."""
    return spec.fabric is not None and spec.fabric.ipv6 and 6 in spec.families


def _timers(fabric: FabricSpec) -> list[str]:
    return [f"\thold time {fabric.hold_time};",
            f"\tkeepalive time {max(1, fabric.hold_time // 3)};",
            f"\tconnect delay time {CONNECT_DELAY};",
            f"\tconnect retry time {CONNECT_RETRY};",
            f"\terror wait time {ERROR_WAIT};"]


def _kernel(family: str, name: str | None = None) -> list[str]:
    return [f"protocol kernel {name + ' ' if name else ''}{{",
            f"\t{family} {{",
            "\t\timport none;",
            "\t\texport where source = RTS_BGP;",
            "\t};",
            "\tmerge paths on;",
            "}",
            ""]


def _fabric_template(router: RouterSpec, fabric: FabricSpec, v6: bool) -> list[str]:
    out = [f"template bgp fabric_peer{'6' if v6 else ''} {{",
           f"\tlocal as {router.asNumber};",
           *_timers(fabric)]
    if fabric.bfd:
        out.append("\tbfd on;")
    return out + [f"\t{'ipv6' if v6 else 'ipv4'} {{",
                  "\t\timport all;",
                  "\t\texport where source ~ [ RTS_BGP, RTS_DEVICE ];",
                  "\t};",
                  "}",
                  ""]


def _rack_template(router: RouterSpec, fabric: FabricSpec, v6: bool) -> list[str]:
    underlay = "UNDERLAY6" if v6 else "UNDERLAY"
    return [f"template bgp rack_node{'6' if v6 else ''} {{",
            f"\tlocal as {router.asNumber};",
            *_timers(fabric),
            f"\t{'ipv6' if v6 else 'ipv4'} {{",
            f"\t\timport where !(net ~ {underlay});",
            f"\t\texport where source = RTS_BGP && !(net ~ {underlay});",
            "\t\tnext hop self ebgp;",
            "\t};",
            "}",
            ""]


def render(router: RouterSpec, fabric: FabricSpec, spec) -> str:
    """bird.conf for ``router``; ``spec`` is the ClusterSpec (rack nodes and their AS)."""
    underlay = spec.underlay.cidr
    v6 = fabric.ipv6
    out = [f"# BIRD 2 configuration of {router.role} {router.name} (AS {router.asNumber})"
           + (f", rack {router.rack}" if router.rack else "") + "; rendered by calinet.",
           f"router id {router.router_id};",
           "",
           f"define UNDERLAY = [ {underlay}+ ];"]
    if v6:
        out.append(f"define UNDERLAY6 = [ {spec.underlay.cidr6}+ ];")
    out += ["",
            "protocol device {",
            "\tscan time 10;",
            "}",
            ""]
    if router.role == "tor":
        out += ["# The rack subnet, announced to the spines.",
                "protocol direct rack_subnet {",
                "\tipv4;",
                f'\tinterface "{router.interfaces[0].name}";',
                "}",
                ""]
        if v6:
            out += ["# The rack's IPv6 subnet, announced to the spines.",
                    "protocol direct rack_subnet6 {",
                    "\tipv6;",
                    f'\tinterface "{router.interfaces[0].name}";',
                    "}",
                    ""]
    for intf in router.interfaces:
        if intf.peer.startswith("external "):
            out += [f"# The outside world ({intf.peer[len('external '):]}), announced into the "
                    "fabric.",
                    "protocol direct external_net {",
                    "\tipv4;",
                    f'\tinterface "{intf.name}";',
                    "}",
                    ""]
    out += _kernel("ipv4")
    if v6:
        out += _kernel("ipv6", "kernel6")
    if fabric.bfd:
        out += ["protocol bfd {",
                '\tinterface "eth*" {',
                f"\t\tinterval {BFD_INTERVAL_MS} ms;",
                f"\t\tmultiplier {BFD_MULTIPLIER};",
                "\t};",
                "}",
                ""]
    out += _fabric_template(router, fabric, False)
    if v6:
        out += _fabric_template(router, fabric, True)
    by_name = {r.name: r for r in fabric.routers}
    for intf in router.interfaces:
        peer = by_name.get(intf.peer)
        if peer is None:
            continue
        far = peer.interface(next(i.name for i in peer.interfaces if i.peer == router.name))
        out += [f"protocol bgp {protocol_name(peer.name)} from fabric_peer {{",
                f'\tdescription "{peer.role} {peer.name}";',
                f"\tneighbor {far.ip} as {peer.asNumber};",
                "}",
                ""]
        if v6:
            out += [f"protocol bgp {protocol_name6(peer.name)} from fabric_peer6 {{",
                    f'\tdescription "{peer.role} {peer.name} (IPv6)";',
                    f"\tneighbor {far.ip6} as {peer.asNumber};",
                    "}",
                    ""]
    if router.role == "tor":
        rack = next(r for r in spec.racks if r.name == router.rack)
        nodes6 = node_sessions6(spec)
        out += _rack_template(router, fabric, False)
        if nodes6:
            out += _rack_template(router, fabric, True)
        for name in rack.nodes:
            node = spec.node(name)
            asn = node.as_number if node.as_number is not None else spec.cluster_as
            rr = ["\trr client;   # iBGP: the ToR reflects the rack's routes"] \
                if asn == router.asNumber else []
            out += [f"protocol bgp {protocol_name(name)} from rack_node {{",
                    f'\tdescription "node {name}";',
                    f"\tneighbor {node.ip} as {asn};", *rr, "}", ""]
            if nodes6 and node.ip6:
                out += [f"protocol bgp {protocol_name6(name)} from rack_node6 {{",
                        f'\tdescription "node {name} (IPv6)";',
                        f"\tneighbor {node.ip6} as {asn};", *rr, "}", ""]
    return "\n".join(out).rstrip("\n") + "\n"
