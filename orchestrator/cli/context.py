"""Find the testbed a CLI command talks to: its state directory, store and testbed id.

Side effects: reads /run/calinet (the registry of live testbeds) and opens the state store.
Commands run from another terminal find a running testbed the way kubectl finds its cluster:
--state-dir, then $CALINET_STATE_DIR, then the only live testbed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from orchestrator.control.client import Client
from orchestrator.control.serviceips import ServiceIPAllocator
from orchestrator.control.store import Store
from orchestrator.errors import CalinetError
from orchestrator.host.ledger import registered_testbeds
from orchestrator.node.routing import BGPAdmission


@dataclass
class Context:
    state_dir: str
    store: Store
    client: Client
    testbed_id: str | None
    live: bool


def resolve_state_dir(explicit: str | None) -> str:
    if explicit:
        return explicit
    env = os.environ.get("CALINET_STATE_DIR")
    if env:
        return env
    live = [e for e in registered_testbeds() if e["alive"]]
    if len(live) == 1:
        return live[0]["state_dir"]
    if len(live) > 1:
        listing = ", ".join(f"{e['id']} ({e['state_dir']})" for e in live)
        raise CalinetError(f"several testbeds are running: {listing}; "
                           "choose one with --state-dir or CALINET_STATE_DIR")
    raise CalinetError("no running testbed found (start one with `calinet up TOPOLOGY`); "
                       "to read a stopped one's state pass --state-dir")


def open_context(explicit: str | None) -> Context:
    state_dir = resolve_state_dir(explicit)
    db = os.path.join(state_dir, "state.db")
    if not os.path.exists(db):
        raise CalinetError(f"{state_dir} holds no calinet state (no state.db)")
    store = Store(db)
    tid, live, reserved, scope, bgp, families = None, False, {}, None, True, (4,)
    try:
        with open(os.path.join(state_dir, "testbed.json")) as f:
            info = json.load(f)
        tid = info.get("id")
        if info.get("underlay"):
            reserved["underlay"] = info["underlay"]
        if info.get("underlay6"):
            reserved["IPv6 underlay"] = info["underlay6"]
        scope = info.get("peer_scope")
        bgp = info.get("bgp", True)
        families = tuple(info.get("families") or (4,))
    except (OSError, ValueError):
        pass
    for e in registered_testbeds():
        if e["id"] == tid and e["alive"]:
            live = True
    # A running testbed's speakers are protected from BGP objects ExaBGP would reject.
    admission = ([BGPAdmission(state_dir, scope or reserved["underlay"], families=families)]
                 if live and reserved else [])
    if live:   # an IPIP pool on a kernel without the module is refused here too
        from orchestrator.node.encap_agent import pool_admissions
        admission += pool_admissions(bgp=bgp, families=families)
    # Services applied from here get their ClusterIP / nodePorts like the testbed's own.
    allocators = [ServiceIPAllocator(families=families)]
    return Context(state_dir, store, Client(store, reserved=reserved, admission=admission,
                                            peer_scope=scope, allocators=allocators), tid, live)
