"""Pod routing between nodes: one ExaBGP speaker (and its agent) per node, fed from IPAM.

Side effects: exabgp processes inside the nodes' namespaces (through bgp.supervisor), files
under `<state>/bgp/<node>/`. The orchestrator's only job here is wiring: peerings from the
topology, and `announce.json` per node whenever that node's IPAM blocks or borrowed IPs change;
the agent announces them and programs every `proto bird` route of its node.
"""

from __future__ import annotations

import json
import os
import time

from bgp import config as bgp_config
from bgp.model import configuration_from_manifest, node_bgp
from bgp.peering import peerings
from bgp.status import render_node_status, render_routes
from bgp.supervisor import Speaker, Supervisor, agent_argv, read_status


class Routing:
    def __init__(self, spec, cluster, state_dir: str, store, runner, *, on_spawn=None):
        self.state_dir = os.path.join(state_dir, "bgp")
        self.store = store
        self.nodes = {
            n.name: node_bgp(n.name, cluster.nodes[n.name].ip, labels=dict(n.labels),
                             routeReflectorClusterID=n.route_reflector_cluster_id)
            for n in spec.nodes}
        self.config = configuration_from_manifest(store.get("BGPConfiguration", "default"))
        self.table = peerings(self.nodes.values(), self.config, [])
        self.supervisor = Supervisor()
        self._announced: dict[str, tuple] = {}
        self._generation = 0
        for name, node in self.nodes.items():
            d = os.path.join(self.state_dir, name)
            os.makedirs(d, exist_ok=True)
            argv = agent_argv(name, node.ip, d, cluster_id=node.routeReflectorClusterID)
            text = bgp_config.render(node, self.table.get(name, []), self.config, argv)
            self.supervisor.add(Speaker(name, cluster.nodes[name].pid, node.ip, d, text,
                                        bgp_config.environment(node, self.config), runner,
                                        on_spawn=on_spawn))

    def node_dir(self, node: str) -> str:
        return os.path.join(self.state_dir, node)

    def start(self, timeout: float = 30.0) -> None:
        """Validate every config, start every speaker, wait for all sessions Established."""
        for node in self.nodes:
            if node not in self._announced:
                self.announce(node, [], [])
        self.supervisor.start_all(timeout)

    def announce(self, node: str, blocks, borrowed) -> bool:
        """Tell node's agent what it originates (atomic write; only when it changed)."""
        want = (tuple(sorted(blocks)), tuple(sorted(borrowed)))
        if self._announced.get(node) == want:
            return False
        self._generation += 1
        path = os.path.join(self.node_dir(node), "announce.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"blocks": list(want[0]), "borrowed": list(want[1]),
                       "generation": self._generation}, f)
        os.replace(tmp, path)
        self._announced[node] = want
        return True

    def poll(self) -> list[str]:
        """Restart speakers that died (bounded, with backoff); returns the restarted nodes."""
        return self.supervisor.poll(time.monotonic())

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
        blocks = {n: set(b) for n, (b, _) in self._announced.items()}
        for node in self.nodes:
            st = self.status(node) or {}
            down = [p["ip"] for p in st.get("peers", []) if p.get("state") != "up"]
            if down or not st.get("running", False):
                problems.append(f"node {node}: BGP peers not up: {', '.join(down) or 'speaker'}")
                continue
            have = {r["prefix"] for r in st.get("routes", [])}
            missing = sorted(b for other, bs in blocks.items() if other != node for b in bs
                             if b not in have)
            if missing:
                problems.append(f"node {node}: no route yet for {', '.join(missing[:5])}")
        return problems
