"""Pod routing between nodes: one ExaBGP speaker (and its agent) per node, fed from IPAM.

Side effects: exabgp processes inside the nodes' namespaces (through bgp.supervisor), files
under `<state>/bgp/<node>/`. The orchestrator's only job here is wiring: peerings from the
topology, and `announce.json` per node whenever that node's IPAM blocks or borrowed IPs change;
the agent announces them and programs every `proto bird` route of its node.

BGPConfiguration "default" and the BGPPeers are read from the store at start and again on
every poll() when their specs (or the nodes' labels) changed: the new configs are all validated
first and only the speakers whose config text changed are restarted; a rejected set keeps the
running speakers and is recorded in ``errors``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import time
from pathlib import Path

from bgp import config as bgp_config
from bgp.model import configuration_from_manifest, node_bgp, peer_from_manifest
from bgp.peering import peerings, why_no_peer
from bgp.status import render_node_status, render_routes
from bgp.supervisor import Speaker, Supervisor, agent_argv, read_status, validate_all
from orchestrator.control.nodes import (
    AS_ANNOTATION,
    IPV4_ANNOTATION,
    IPV6_ANNOTATION,
    RR_CLUSTER_ANNOTATION,
)
from orchestrator.errors import ValidationError

log = logging.getLogger(__name__)

# converged()'s problem for a node that no peering reaches: waiting cannot fix it.
NO_PEER = "has no BGP peer"


def _store_objects(store) -> tuple[dict | None, list[dict]]:
    return store.get("BGPConfiguration", "default"), store.list("BGPPeer")


def node_labels(store) -> dict[str, dict]:
    return {n["metadata"]["name"]: dict(n["metadata"].get("labels") or {})
            for n in store.list("Node")}


def node_inputs_from_store(store, ipv6: bool = True) -> dict[str, tuple]:
    """name -> (IP, labels, route-reflector cluster ID, AS number or None, IPv6 or None) from
    the Node objects (their Calico annotations, as Calico's Kubernetes datastore keeps them)."""
    out = {}
    for n in store.list("Node"):
        meta = n["metadata"]
        notes = meta.get("annotations") or {}
        ip = notes.get(IPV4_ANNOTATION, "").split("/")[0]
        if ip:
            out[meta["name"]] = (ip, dict(meta.get("labels") or {}),
                                 notes.get(RR_CLUSTER_ANNOTATION), notes.get(AS_ANNOTATION),
                                 (notes.get(IPV6_ANNOTATION, "").split("/")[0] or None)
                                 if ipv6 else None)
    return out


def fingerprint(store) -> str:
    """Digest of what the speakers' configs are rendered from (specs, node labels)."""
    config, peers = _store_objects(store)
    labels = node_labels(store)
    data = [config and config.get("spec"),
            sorted(((p["metadata"]["name"], p.get("spec")) for p in peers), key=lambda x: x[0]),
            sorted(labels.items())]
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def render_configs(store, inputs: dict, underlay: str, bgp_dir: str):
    """Pure but for reading the store: nodes, config, peering table and each node's
    exabgp.conf text from the BGP objects and ``inputs`` (name -> (IP, labels, RR cluster
    ID, AS number or None, IPv6 address or None)); ValidationError when a BGPPeer does not
    fit the cluster."""
    config_doc, peer_docs = _store_objects(store)
    nodes = {name: node_bgp(name, ip, labels=labels, routeReflectorClusterID=cid, asNumber=asn,
                            ip6=ip6)
             for name, (ip, labels, cid, asn, ip6) in inputs.items()}
    config = configuration_from_manifest(config_doc)
    peers = [peer_from_manifest(d, node_names=list(nodes), underlay=underlay)
             for d in sorted(peer_docs, key=lambda d: d["metadata"]["name"])]
    table = peerings(nodes.values(), config, peers)
    texts = {}
    for name, node in nodes.items():
        argv = agent_argv(name, node.ip, os.path.join(bgp_dir, name),
                          cluster_id=node.routeReflectorClusterID, node_ip6=node.ip6)
        texts[name] = bgp_config.render(node, table.get(name, []), config, argv)
    return nodes, config, table, texts


class BGPAdmission:
    """Apply-time check (a Client admission hook): the speakers' configs that the store
    implies after an apply of BGP objects are ones ExaBGP accepts. Runs inside the apply's
    transaction, so a rejection rolls the apply back and the running speakers never see it.
    Only the configs that differ from the running ones (exabgp.conf on disk) are validated,
    all in one `exabgp validate`."""

    KINDS = frozenset({"BGPConfiguration", "BGPPeer"})

    def __init__(self, state_dir: str, underlay: str, runner=None, families=(4,)):
        """``families``: the pods' IP families (IPv6 sessions only with 6, as Routing)."""
        self.bgp_dir = os.path.join(state_dir, "bgp")
        self.underlay, self.runner = underlay, runner
        self.ipv6 = 6 in tuple(families)

    def __call__(self, store, objs: list[dict]) -> None:
        if not any(o["kind"] in self.KINDS for o in objs) or not os.path.isdir(self.bgp_dir):
            return   # not BGP, or a testbed without speakers: nothing runs to protect
        if not self.ipv6:
            for o in objs:
                if o["kind"] != "BGPConfiguration":
                    continue
                for key in ("serviceClusterIPs", "serviceExternalIPs"):
                    for i, item in enumerate((o.get("spec") or {}).get(key) or []):
                        if ":" in str((item or {}).get("cidr", "")):
                            raise ValidationError(
                                f"{item['cidr']}: an IPv6 range needs IPv6 BGP sessions, and "
                                "this cluster's pods are IPv4 only (topology ipFamilies)",
                                obj=f"BGPConfiguration {o['metadata']['name']}",
                                field=f"spec.{key}[{i}].cidr")
        inputs = node_inputs_from_store(store, self.ipv6)
        nodes, config, _table, texts = render_configs(store, inputs, self.underlay,
                                                      self.bgp_dir)
        items = []
        for name, text in texts.items():
            node_dir = os.path.join(self.bgp_dir, name)
            try:
                running = Path(node_dir, "exabgp.conf").read_text()
            except OSError:
                continue   # never started here: validated when it starts
            if text != running:
                kw = {"runner": self.runner} if self.runner is not None else {}
                items.append((Speaker(name, 0, nodes[name].ip, node_dir, text,
                                      bgp_config.environment(nodes[name], config), **kw), text))
        validate_all(items)


class FabricASAdmission:
    """Apply-time check on a routed fabric: the ToRs' BIRD configs are rendered from the
    topology, with the AS each rack node has then (its asNumber, else the topology's
    BGPConfiguration asNumber, else 64512). A BGPConfiguration applied later with another
    asNumber would make every node-ToR session fail with a bad peer AS, so it is refused."""

    KINDS = frozenset({"BGPConfiguration"})

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, store, objs: list[dict]) -> None:
        if self.spec.fabric is None or all(n.as_number is not None for n in self.spec.nodes):
            return
        for o in objs:
            if o["kind"] != "BGPConfiguration":
                continue
            config = configuration_from_manifest(o)
            if config.asNumber != self.spec.cluster_as:
                raise ValidationError(
                    f"asNumber {config.asNumber}: the fabric's ToRs peer with the nodes that "
                    f"have no asNumber of their own as AS {self.spec.cluster_as}, set when the "
                    "topology came up; give the BGPConfiguration in the topology's manifests "
                    "(or the nodes their asNumber) to change it",
                    obj=f"BGPConfiguration {o['metadata']['name']}", field="spec.asNumber")


class Routing:
    _unprogrammed: tuple = ()   # VXLAN pools (set_unprogrammed)
    _ipip: tuple = ()           # (cidr, mode) of IPIP pools (set_ipip)
    def __init__(self, spec, cluster, state_dir: str, store, runner, *, on_spawn=None):
        self.state_dir = os.path.join(state_dir, "bgp")
        self.store = store
        self.underlay = spec.peer_scope() if hasattr(spec, "peer_scope") else spec.underlay.cidr
        # IPv6 sessions only where pods have IPv6 addresses (ipFamilies), as Calico runs bird6.
        v6 = 6 in getattr(spec, "families", (4,))
        self._spec_nodes = {n.name: (cluster.nodes[n.name].ip, dict(n.labels),
                                     n.route_reflector_cluster_id, getattr(n, "as_number", None),
                                     getattr(n, "ip6", None) if v6 else None)
                            for n in spec.nodes}
        self.errors: list[str] = []   # rejected reconfigurations, oldest first
        self._fingerprint = self._fingerprint_now()
        self.nodes, self.config, self.table, texts = self._compute()
        self.supervisor = Supervisor()
        self._announced: dict[str, tuple] = {}
        self._unprogrammed: tuple = ()
        self._ipip: tuple = ()
        # Each node's own underlay subnet (its rack's on a fabric): IPIP CrossSubnet's test.
        self._subnets = {n.name: str(ipaddress.ip_network(f"{n.ip}/{n.prefixlen}",
                                                          strict=False))
                         for n in spec.nodes if getattr(n, "prefixlen", None)}
        self._generation = 0
        self.established_in: float | None = None
        for name, node in self.nodes.items():
            os.makedirs(self.node_dir(name), exist_ok=True)
            self.supervisor.add(Speaker(name, cluster.nodes[name].pid, node.ip,
                                        self.node_dir(name), texts[name],
                                        bgp_config.environment(node, self.config), runner,
                                        on_spawn=on_spawn))

    # -- configuration from the store ----------------------------------------------------

    def _fingerprint_now(self) -> str:
        return fingerprint(self.store)

    def _compute(self):
        # Labels set on the Node object (calinet label node ...) select like the spec's.
        labels = node_labels(self.store)
        inputs = {name: (ip, {**spec_labels, **labels.get(name, {})}, cid, asn, ip6)
                  for name, (ip, spec_labels, cid, asn, ip6) in self._spec_nodes.items()}
        return render_configs(self.store, inputs, self.underlay, self.state_dir)

    def reconfigure(self) -> list[str]:
        """Apply the store's BGP objects now; returns the nodes whose speaker was restarted.
        All changed configs are validated before any speaker is touched; on an error the
        running speakers stay as they are and the error goes to ``errors`` and the log."""
        try:
            nodes, config, table, texts = self._compute()
            speakers = self.supervisor.speakers
            changed = [n for n in nodes if texts[n] != speakers[n].config_text
                       or bgp_config.environment(nodes[n], config) != speakers[n].env]
            validate_all([(speakers[n], texts[n]) for n in changed])
        except ValidationError as exc:
            self.errors.append(str(exc))
            log.error("BGP configuration rejected, speakers keep running: %s", exc)
            return []
        services_changed = config.service_cidrs != self.config.service_cidrs
        self.nodes, self.config, self.table = nodes, config, table
        if services_changed:   # BGPConfiguration serviceClusterIPs / serviceExternalIPs
            for node, want in list(self._announced.items()):
                self._write_announce(node, want)
        # Not Speaker.reload(): that would run `exabgp validate` again, one Python start-up
        # per node; everything here was validated in the one batch above.
        self.supervisor.restart({n: (texts[n], bgp_config.environment(nodes[n], config))
                                 for n in changed})
        if changed:
            log.info("BGP reconfigured; restarted the speakers of %s", ", ".join(changed))
        return changed

    def node_dir(self, node: str) -> str:
        return os.path.join(self.state_dir, node)

    def start(self, timeout: float = 30.0) -> None:
        """Validate every config, start every speaker, wait for all sessions Established."""
        for node in self.nodes:
            if node not in self._announced:
                self.announce(node, [], [])
        t0 = time.monotonic()
        self.supervisor.start_all(timeout)
        self.established_in = time.monotonic() - t0   # spawn -> every session Established

    def announce(self, node: str, blocks, borrowed) -> bool:
        """Tell node's agent what it originates (atomic write; only when it changed)."""
        want = (tuple(sorted(blocks)), tuple(sorted(borrowed)))
        if self._announced.get(node) == want:
            return False
        self._write_announce(node, want)
        return True

    def set_unprogrammed(self, cidrs) -> None:
        """Pools whose routes the encapsulation agent programs (VXLAN pools, Felix's in
        Calico): every node's agent still advertises their blocks but leaves their kernel
        routes alone, as Calico's BIRD kernel filter does."""
        cidrs = tuple(sorted(cidrs))
        if cidrs == self._unprogrammed:
            return
        self._unprogrammed = cidrs
        for node, want in list(self._announced.items()):
            self._write_announce(node, want)

    def set_ipip(self, pools) -> None:
        """IPIP pools as (cidr, mode): their routes are still ours (BIRD's, in Calico), but
        go `dev tunl0 onlink`: always, or in CrossSubnet mode to next hops off the node's
        subnet."""
        pools = tuple(sorted((str(c), str(m)) for c, m in pools))
        if pools == self._ipip:
            return
        self._ipip = pools
        for node, want in list(self._announced.items()):
            self._write_announce(node, want)

    def _write_announce(self, node: str, want: tuple) -> None:
        self._generation += 1
        path = os.path.join(self.node_dir(node), "announce.json")
        tmp = path + ".tmp"
        doc = {"blocks": list(want[0]), "borrowed": list(want[1]),
               "generation": self._generation}
        if self._unprogrammed:
            doc["unprogrammed"] = list(self._unprogrammed)
        if self._ipip:
            doc["ipip"] = [{"cidr": c, "mode": m} for c, m in self._ipip]
            if node in self._subnets:
                doc["subnet"] = self._subnets[node]
        services = self.config.service_cidrs if getattr(self, "config", None) else []
        if services:
            doc["services"] = services
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)
        self._announced[node] = want

    def poll(self) -> list[str]:
        """Reconfigure when the BGP objects changed; restart speakers that died (bounded,
        with backoff). Returns the restarted nodes."""
        restarted = []
        fingerprint = self._fingerprint_now()
        if fingerprint != self._fingerprint:
            self._fingerprint = fingerprint  # a rejected set is not retried until it changes
            restarted = self.reconfigure()
        return restarted + [n for n in self.supervisor.poll(time.monotonic())
                            if n not in restarted]

    def stop(self) -> None:
        self.supervisor.stop_all()

    def pids(self) -> list[int]:
        return self.supervisor.pids()

    # -- reading ------------------------------------------------------------------------

    def status(self, node: str) -> dict | None:
        return read_status(self.node_dir(node))

    def node_status_text(self, node: str) -> str:
        return render_node_status(self.status(node), time.time())

    def routes_text(self, node: str) -> str:
        return render_routes(self.status(node))

    def converged(self) -> list[str]:
        """Problems standing between now and 'every node routes every other node's blocks'."""
        problems = []
        if self._fingerprint_now() != self._fingerprint:
            # BGP objects changed and the speakers have not been reconfigured yet: what the
            # status files say is about the old peerings.
            return ["BGP reconfiguration pending"]
        skip = [ipaddress.ip_network(c) for c in self._unprogrammed]
        blocks = {n: {x for x in b if not any(
                    ipaddress.ip_network(x).version == c.version
                    and ipaddress.ip_network(x).subnet_of(c) for c in skip)}
                  for n, (b, _) in self._announced.items()}
        unpeered = []
        for node in self.nodes:
            sp = self.supervisor.speaker(node)
            if not sp.expected_peers:
                # No BGP peers configured (e.g. a route reflector left out of the mesh): it
                # learns nothing, which is its steady state while it holds no pods; once it
                # holds some, they are cut off and only BGP objects can change that.
                if len(self.nodes) > 1 and blocks.get(node):
                    unpeered.append(no_peer_problem(node, self.nodes[node], self.config))
                continue
            if sp.proc is None or sp.proc.poll() is not None:
                # killed or exited: its last status.json still says "up" until it is back
                problems.append(f"node {node}: BGP speaker not running ({sp.state})")
                continue
            # Speaker.status() ignores a status.json left by a speaker restarted since.
            st = sp.status() or {}
            down = sp.peers_down()
            if down or not st.get("running", False):
                problems.append(f"node {node}: BGP peers not up: {', '.join(down) or 'speaker'}")
                continue
            have = {r["prefix"] for r in st.get("routes", [])}
            missing = sorted(b for other, bs in blocks.items() if other != node for b in bs
                             if b not in have)
            if missing:
                problems.append(f"node {node}: no route yet for {', '.join(missing[:5])}")
        return unpeered + problems


def no_peer_problem(name: str, node, config) -> str:
    """The one-line problem of a node with pods and no BGP peer: cause and fix."""
    return f"node {name} {NO_PEER}: {why_no_peer(node, config)}"
