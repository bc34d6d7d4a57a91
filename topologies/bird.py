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


def _timers(fabric: FabricSpec) -> list[str]:
    return [f"\thold time {fabric.hold_time};",
            f"\tkeepalive time {max(1, fabric.hold_time // 3)};",
            f"\tconnect delay time {CONNECT_DELAY};",
            f"\tconnect retry time {CONNECT_RETRY};",
            f"\terror wait time {ERROR_WAIT};"]


def render(router: RouterSpec, fabric: FabricSpec, spec) -> str:
    """bird.conf for ``router``; ``spec`` is the ClusterSpec (rack nodes and their AS)."""
    underlay = spec.underlay.cidr
    out = [f"# BIRD 2 configuration of {router.role} {router.name} (AS {router.asNumber})"
           + (f", rack {router.rack}" if router.rack else "") + "; rendered by calinet.",
           f"router id {router.router_id};",
           "",
           f"define UNDERLAY = [ {underlay}+ ];",
           "",
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
    for intf in router.interfaces:
        if intf.peer.startswith("external "):
            out += [f"# The outside world ({intf.peer[len('external '):]}), announced into the "
                    "fabric.",
                    "protocol direct external_net {",
                    "\tipv4;",
                    f'\tinterface "{intf.name}";',
                    "}",
                    ""]
    out += ["protocol kernel {",
            "\tipv4 {",
            "\t\timport none;",
            "\t\texport where source = RTS_BGP;",
            "\t};",
            "\tmerge paths on;",
            "}",
            ""]
    if fabric.bfd:
        out += ["protocol bfd {",
                '\tinterface "eth*" {',
                f"\t\tinterval {BFD_INTERVAL_MS} ms;",
                f"\t\tmultiplier {BFD_MULTIPLIER};",
                "\t};",
                "}",
                ""]
    out += ["template bgp fabric_peer {",
            f"\tlocal as {router.asNumber};",
            *_timers(fabric)]
    if fabric.bfd:
        out.append("\tbfd on;")
    out += ["\tipv4 {",
            "\t\timport all;",
            "\t\texport where source ~ [ RTS_BGP, RTS_DEVICE ];",
            "\t};",
            "}",
            ""]
    by_name = {r.name: r for r in fabric.routers}
    for intf in router.interfaces:
        peer = by_name.get(intf.peer)
        if peer is None:
            continue
        peer_ip = peer.interface(next(i.name for i in peer.interfaces
                                      if i.peer == router.name)).ip
        out += [f"protocol bgp {protocol_name(peer.name)} from fabric_peer {{",
                f'\tdescription "{peer.role} {peer.name}";',
                f"\tneighbor {peer_ip} as {peer.asNumber};",
                "}",
                ""]
    if router.role == "tor":
        rack = next(r for r in spec.racks if r.name == router.rack)
        out += ["template bgp rack_node {",
                f"\tlocal as {router.asNumber};",
                *_timers(fabric),
                "\tipv4 {",
                "\t\timport where !(net ~ UNDERLAY);",
                "\t\texport where source = RTS_BGP && !(net ~ UNDERLAY);",
                "\t\tnext hop self ebgp;",
                "\t};",
                "}",
                ""]
        for name in rack.nodes:
            node = spec.node(name)
            asn = node.as_number if node.as_number is not None else spec.cluster_as
            out += [f"protocol bgp {protocol_name(name)} from rack_node {{",
                    f'\tdescription "node {name}";',
                    f"\tneighbor {node.ip} as {asn};"]
            if asn == router.asNumber:
                out.append("\trr client;   # iBGP: the ToR reflects the rack's routes")
            out += ["}", ""]
    return "\n".join(out).rstrip("\n") + "\n"
