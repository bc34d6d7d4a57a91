"""ExaBGP 5.0 API codec: text commands out, JSON lines in.

Pure. Commands are the text API ExaBGP reads from its API process's stdout
(`announce route <prefix> next-hop <ip>`, optionally limited to peers with
`neighbor <ip> , neighbor <ip> announce ...`, and with originator-id / cluster-list when a
route reflector reflects a route). Input lines are ExaBGP's JSON encoder output; `parse`
turns one line into typed events and ignores message types calinet does not use. Both
IPv4 and IPv6 unicast (an IPv6 session's updates, next hop the peer's IPv6 address).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.errors import ValidationError

FAMILY = "ipv4 unicast"
FAMILIES = ("ipv4 unicast", "ipv6 unicast")


def _prefix(prefix: str) -> str:
    try:
        return str(ipaddress.ip_network(prefix))
    except ValueError:
        raise ValidationError(f"not an IP prefix: {prefix!r}", field="prefix") from None


def _ip(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValidationError(f"not an IP address: {value!r}", field=what) from None


def _ip4(value: str, what: str) -> str:
    # BGP identifiers (originator-id, cluster-list) are 32-bit, IPv4-looking in both families.
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValidationError(f"not an IPv4 address: {value!r}", field=what) from None


def _neighbors(neighbors: Sequence[str] | None) -> str:
    if not neighbors:
        return ""
    return " , ".join(f"neighbor {_ip(n, 'neighbor')}" for n in neighbors) + " "


def announce(prefix: str, next_hop: str, *, neighbors: Sequence[str] | None = None,
             originator_id: str | None = None, cluster_list: Sequence[str] = (),
             local_preference: int | None = None) -> str:
    """`announce route ...` to all peers, or only to ``neighbors`` (ExaBGP sends a route only
    to the peers whose session has its family)."""
    prefix, next_hop = _prefix(prefix), _ip(next_hop, "next_hop")
    if (":" in prefix) != (":" in next_hop):
        raise ValidationError(f"next hop {next_hop} is not of {prefix}'s family",
                              field="next_hop")
    words = [f"{_neighbors(neighbors)}announce route {prefix}", f"next-hop {next_hop}"]
    if local_preference is not None:
        words.append(f"local-preference {int(local_preference)}")
    if originator_id:
        words.append(f"originator-id {_ip4(originator_id, 'originator_id')}")
    if cluster_list:
        ids = " ".join(_ip4(c, "cluster_list") for c in cluster_list)
        words.append(f"cluster-list [ {ids} ]")
    return " ".join(words)


def withdraw(prefix: str, *, neighbors: Sequence[str] | None = None) -> str:
    """`withdraw route ...`; ExaBGP matches it against what it announced to those peers."""
    return f"{_neighbors(neighbors)}withdraw route {_prefix(prefix)}"


@dataclass(frozen=True)
class Path:
    prefix: str
    next_hop: str
    originator_id: str | None = None
    cluster_list: tuple[str, ...] = ()
    local_preference: int = 100
    as_path: tuple[int, ...] = ()   # as received: empty over iBGP from the origin


@dataclass(frozen=True)
class RouteUpdate:
    peer: str
    announced: tuple[Path, ...] = ()
    withdrawn: tuple[str, ...] = ()


@dataclass(frozen=True)
class PeerState:
    peer: str
    state: str  # "up" | "down" | "connected"
    reason: str = ""


@dataclass(frozen=True)
class EOR:
    peer: str


@dataclass(frozen=True)
class Notification:
    peer: str
    code: int
    subcode: int
    data: str = field(default="")


def parse(line: str) -> list:
    """One JSON line from ExaBGP -> events (empty for types calinet ignores).

    Raises ValidationError on a line that is not ExaBGP JSON (the agent logs and skips it).
    """
    try:
        msg = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"not JSON ({exc.msg}): {line[:120]!r}",
                              field="exabgp output") from None
    if not isinstance(msg, dict) or "type" not in msg:
        raise ValidationError(f"not an ExaBGP message: {line[:120]!r}", field="exabgp output")
    kind = msg["type"]
    neighbor = msg.get("neighbor") or {}
    peer = (neighbor.get("address") or {}).get("peer", "")
    if kind == "state":
        return [PeerState(peer, neighbor.get("state", ""), neighbor.get("reason", ""))]
    if kind == "notification":
        note = (neighbor.get("message") or {}).get("notification") or {}
        return [Notification(peer, int(note.get("code", 0)), int(note.get("subcode", 0)),
                             str(note.get("data", "")))]
    if kind != "update":
        return []
    message = neighbor.get("message") or {}
    if "eor" in message:  # 5.0 puts end-of-RIB beside "update", not inside it
        eor = message["eor"]
        return [EOR(peer)] if (eor.get("afi"), eor.get("safi")) in (
            ("ipv4", "unicast"), ("ipv6", "unicast")) else []
    update = message.get("update") or {}
    attrs = update.get("attribute") or {}
    originator = attrs.get("originator-id")
    clusters = tuple(attrs.get("cluster-list") or ())
    pref = int(attrs.get("local-preference", 100))
    as_path = _as_path(attrs.get("as-path"))
    announced, withdrawn = [], []
    for family in FAMILIES:
        for next_hop, nlris in sorted(((update.get("announce") or {}).get(family) or {}).items()):
            for nlri in nlris:
                announced.append(Path(_nlri(nlri), next_hop, originator, clusters, pref,
                                      as_path))
        withdrawn += [_nlri(n) for n in (update.get("withdraw") or {}).get(family) or ()]
    if not announced and not withdrawn:
        return []
    return [RouteUpdate(peer, tuple(announced), tuple(withdrawn))]


def _as_path(raw) -> tuple[int, ...]:
    """ExaBGP 5 JSON: {"0": {"element": "as-sequence", "value": [65001, 65000]}, ...} (one
    entry per segment, in order); a plain list in older encoders."""
    if not raw:
        return ()
    if isinstance(raw, list):
        return tuple(int(a) for a in raw)
    out: list[int] = []
    for _pos, seg in sorted(raw.items(), key=lambda kv: int(kv[0])):
        out += [int(a) for a in (seg.get("value") or [])]
    return tuple(out)


def _nlri(nlri) -> str:
    # {"nlri": "10.0.0.0/26"} normally; a bare string with exabgp.api.compact.
    return nlri["nlri"] if isinstance(nlri, dict) else str(nlri)
