"""ClusterSpec -> Mininet ``Topo`` graph (hosts = nodes, switches = underlay bridges).

Pure: builds Mininet's in-memory graph only; nothing is created until net.py realises it.
Flat cluster: one switch, index 1. Racks: ToR switch per rack (index 1..N in rack order) and a
spine switch (index 0) with one uplink per ToR. Routed racks (a fabric): one switch per rack
(index 1..N) holding the rack's nodes and its ToR router's ``eth0``; routers are hosts, and
each ToR-spine cable is a veth pair between the two routers' namespaces (``ethN`` on both
sides, see topologies.fabric). Every node's underlay interface is ``eth0`` inside its own
namespace; switch ports are "<switch>-ethN" in the root namespace.
"""

from __future__ import annotations

from mininet.topo import Topo

from orchestrator.errors import ValidationError
from orchestrator.host import naming
from topologies.spec import ClusterSpec

NODE_INTF = "eth0"
IFNAMSIZ = 15  # usable characters of a Linux interface name


class CalinetTopo(Topo):
    """The cluster's underlay graph. Host names are the node names.

    Host opts: ``ip`` ("a.b.c.d/len"). Link opts: ``intfName1`` = eth0 on the node side and
    ``bw`` (Mbit/s, for Mininet's TCLink) when the node's link is shaped.
    """

    def __init__(self, spec: ClusterSpec, testbed_id: str, *, netem: bool = True, **opts):
        if not naming.is_testbed_id(testbed_id):
            raise ValidationError(f"testbed id {testbed_id!r} must be 4 lowercase hex digits")
        self.spec = spec
        self.testbed_id = testbed_id
        self.node_switch: dict[str, str] = {}   # node (or ToR) name -> switch it hangs off
        self.spine: str | None = None
        # WAN delay/loss are netem qdiscs: only where the kernel has netem (net.py probes).
        self.netem = netem
        Topo.__init__(self, **opts)

    def build(self, **_opts):
        spec, tb = self.spec, self.testbed_id
        if spec.fabric is not None:
            self._build_fabric()
        elif spec.racks:
            self.spine = self.addSwitch(naming.switch_name(tb, 0))
            tors = {}
            for i, rack in enumerate(spec.racks, start=1):
                tors[rack.name] = self.addSwitch(naming.switch_name(tb, i))
            for node in spec.nodes:
                self._add_node(node, tors[node.rack])
            for rack in spec.racks:
                self.addLink(tors[rack.name], self.spine)
        else:
            sw = self.addSwitch(naming.switch_name(tb, 1))
            for node in spec.nodes:
                self._add_node(node, sw)
        ext = spec.external
        if ext is not None:
            self.addHost(ext.name)
            opts = {"intfName2": "eth0"}
            if ext.bandwidth is not None:
                opts["bw"] = ext.bandwidth
            if ext.attach:
                self.addLink(ext.attach, ext.name, intfName1=ext.attach_intf, **opts)
            else:   # the underlay switch: s1 flat, the spine switch s0 with L2 racks
                self.addLink(self.spine or naming.switch_name(tb, 1), ext.name, **opts)
        self._check_names()

    def _build_fabric(self) -> None:
        spec, fabric = self.spec, self.spec.fabric
        racks = {}
        for i, rack in enumerate(spec.racks, start=1):
            racks[rack.name] = self.addSwitch(naming.switch_name(self.testbed_id, i))
        for node in spec.nodes:
            self._add_node(node, racks[node.rack])
        for router in fabric.routers:
            if router.name in self.g.node:
                raise ValidationError(f"router name {router.name!r} collides with an underlay "
                                      "switch name", source=spec.source, field="fabric")
            self.addHost(router.name)
        for router in fabric.tors():
            self.addLink(router.name, racks[router.rack], intfName1=router.interfaces[0].name)
            self.node_switch[router.name] = racks[router.rack]
        for link in fabric.links:
            opts = {"intfName1": link.a_intf, "intfName2": link.b_intf}
            if link.bandwidth is not None:
                opts["bw"] = link.bandwidth
            if self.netem and link.delay:
                opts["delay"] = link.delay
            if self.netem and link.loss:
                opts["loss"] = link.loss
            self.addLink(link.a, link.b, **opts)

    def _add_node(self, node, switch: str) -> None:
        if node.name in self.g.node:
            raise ValidationError(f"node name {node.name!r} collides with an underlay switch name",
                                  source=self.spec.source, field="nodes")
        self.addHost(node.name, ip=f"{node.ip}/{node.prefixlen}")
        opts = {"intfName1": NODE_INTF}
        if node.bandwidth is not None:
            opts["bw"] = node.bandwidth
        self.addLink(node.name, switch, **opts)
        self.node_switch[node.name] = switch

    def switch_ports(self) -> dict[str, list[str]]:
        """Switch name -> its port interface names, in port order (root namespace)."""
        out: dict[str, list[str]] = {s: [] for s in self.switches()}
        for _a, _b, info in self.links(withInfo=True):
            for side in ("1", "2"):
                node = info["node" + side]
                if self.isSwitch(node):
                    out[node].append((info["port" + side], f"{node}-eth{info['port' + side]}"))
        return {s: [name for _p, name in sorted(ports)] for s, ports in out.items()}

    def node_port(self, node: str) -> str:
        """Name of the switch port the node's eth0 is plugged into."""
        sw = self.node_switch[node]
        for _a, _b, info in self.links(withInfo=True):
            if info["node1"] == node and info["node2"] == sw:
                return f"{sw}-eth{info['port2']}"
        raise KeyError(node)

    def _check_names(self) -> None:
        for sw, ports in self.switch_ports().items():
            for name in [sw, *ports]:
                if len(name) > IFNAMSIZ:
                    raise ValidationError(
                        f"interface name {name!r} exceeds {IFNAMSIZ} characters: too many "
                        f"ports on switch {sw} (split the nodes into racks)",
                        source=self.spec.source, field="nodes")
