"""ExaBGP 5.0 configuration and environment for one node's speaker.

Pure. The text is what Calico's bird.cfg says, in ExaBGP's words: one `neighbor` block per
peer with the node address as router-id and local-address, local/peer AS, hold time, IPv4
unicast, graceful restart, and an `api` block handing every parsed update and neighbor change
to the node's agent process. Order is deterministic so golden files are stable.

ExaBGP has no route-reflector knob (it never forwards routes between peers by itself): the
agent reflects routes, announcing them with originator-id and cluster-list (bgp.codec). The
neighbor description carries Calico's protocol name (Mesh_/Global_/Node_<ip>) and, for
RR clients, "rr-client <cluster-id>" so a human reading the file sees the role.
"""

from __future__ import annotations

from collections.abc import Sequence

from bgp.model import BGPConfiguration, NodeBGP
from bgp.peering import GLOBAL, MESH, Neighbor
from orchestrator.errors import ValidationError

PROCESS = "agent"
REACTOR_SPEED = "25"   # see environment()
_PREFIX = {MESH: "Mesh", GLOBAL: "Global"}
# Calico's logSeverityScreen -> ExaBGP 5 level names (5.x rejects syslog-style "CRIT").
_LEVELS = {"Debug": "DEBUG", "Info": "INFO", "Warning": "WARNING", "Error": "ERROR",
           "Fatal": "CRITICAL"}


def protocol_name(nb: Neighbor) -> str:
    """BIRD protocol name Calico gives the session: Mesh_10_0_0_2, Global_..., Node_...;
    an IPv6 peer's with ':' replaced too (bird6: Mesh_fd00_172_18__3)."""
    return f"{_PREFIX.get(nb.type, 'Node')}_{nb.ip.replace('.', '_').replace(':', '_')}"


def _quote_argv(argv: Sequence[str]) -> str:
    for arg in argv:
        if not arg or any(c in arg for c in ' \t\n;{}[]"\'#'):
            # ExaBGP's tokeniser splits `run` on blanks and has no escaping.
            raise ValidationError(f"agent argument {arg!r} must be non-empty without blanks, "
                                  "quotes, ';', '#' or brackets", field="agent_argv")
    return " ".join(argv)


def render(node: NodeBGP, neighbors: Sequence[Neighbor], config: BGPConfiguration,
           agent_argv: Sequence[str], *, peer_port: int | None = None) -> str:
    """exabgp.conf for ``node``; ``agent_argv`` is the API process (absolute program path).

    ``peer_port`` is the port other nodes listen on (default: config.listenPort); outside
    peers (no node) are contacted on 179.
    """
    if not agent_argv or not str(agent_argv[0]).startswith("/"):
        raise ValidationError("agent program must be an absolute path", field="agent_argv")
    local_as = node.as_number(config)
    port = peer_port or config.listenPort
    out = [
        f"# ExaBGP speaker of node {node.name} ({node.ip}), rendered by calinet.",
        f"process {PROCESS} {{",
        f"    run {_quote_argv([str(a) for a in agent_argv])};",
        "    encoder json;",
        "}",
    ]
    for nb in neighbors:
        desc = protocol_name(nb)
        if nb.rr_client:
            desc += f" rr-client {nb.cluster_id}"
        if nb.router_id:
            desc += f" peer-id {nb.router_id}"   # the agent reflects with it (originator-id)
        v6 = nb.family == 6
        if v6 and not node.ip6:
            raise ValidationError(f"IPv6 peer {nb.ip} but node {node.name} has no IPv6 "
                                  "address", field="neighbors")
        out += [
            "",
            f"neighbor {nb.ip} {{",
            f'    description "{desc}";',
            f"    router-id {node.ip};",
            f"    local-address {node.ip6 if v6 else node.ip};",
            f"    local-as {local_as};",
            f"    peer-as {nb.asNumber};",
            f"    hold-time {config.holdTime};",
            f"    passive {'true' if nb.passive else 'false'};",
        ]
        if not nb.passive:
            out.append(f"    connect {port if nb.node else 179};")
        out += [
            "    family {",
            f"        {'ipv6' if v6 else 'ipv4'} unicast;",
            "    }",
            "    capability {",
            f"        graceful-restart {config.nodeMeshMaxRestartTime};",
            "    }",
            "    api {",
            f"        processes [ {PROCESS} ];",
            "        neighbor-changes;",
            "        receive {",
            "            parsed;",
            "            update;",
            "            notification;",
            "        }",
            "    }",
            "}",
        ]
    return "\n".join(out) + "\n"


def environment(node: NodeBGP, config: BGPConfiguration) -> dict[str, str]:
    """ExaBGP settings as environment variables (sorted keys).

    - api.ack false: the agent writes commands and never reads "done", so acks would fill the
      pipe and stall the speaker;
    - api.cli false: no named pipes under /run, which speakers in many nodes would share;
    - tcp.bind = the node address so the speaker listens (passive sessions need it);
    - daemon.user root / drop false: stays root to bind 179 and run the agent unchanged;
    - tcp.delay is never set (it holds announcements until a minute boundary);
    - reactor.speed 25: ExaBGP's loop sleeps speed/100 s between rounds over every peer when
      no socket or API pipe is readable (input wakes it at once). The default 1.0 means a
      round every 10 ms: 50 idle meshed speakers then keep both cores of this machine busy
      (measured 2.0 CPU-s/s; 0.25 s rounds: ~0.2). Timers (keepalives, connect retries)
      only get 0.25 s coarser, far below the 3 s minimum hold time.
    """
    env = {
        "exabgp.api.ack": "false",
        "exabgp.api.cli": "false",
        "exabgp.api.encoder": "json",
        "exabgp.daemon.daemonize": "false",
        "exabgp.daemon.drop": "false",
        "exabgp.daemon.user": "root",
        "exabgp.log.destination": "stdout",
        "exabgp.log.level": _LEVELS[config.logSeverityScreen],
        "exabgp.reactor.speed": REACTOR_SPEED,
        # Space-separated: a node with IPv6 sessions listens on both addresses.
        "exabgp.tcp.bind": " ".join(a for a in (node.ip, node.ip6) if a),
        "exabgp.tcp.port": str(config.listenPort),
    }
    return dict(sorted(env.items()))
