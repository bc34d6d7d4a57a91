"""Fixtures for scapy packet tests: one three-node cluster (BGP on, policy dataplane on) per
module with agnhost pods pinned to nodes, and a per-test policy applier that deletes what the
test applied, pass or fail, and waits until every node's rules no longer carry it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator import api
from orchestrator.control.store import now_rfc3339

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "topologies" / "examples"

NS = "pk"
# Served by every pod (agnhost: TCP and UDP echo, SCTP INIT -> INIT-ACK). Two ports per
# protocol so a policy can allow one and leave the other denied.
TCP_ALLOWED, TCP_DENIED = 80, 81
UDP_ECHO, UDP_OTHER = 90, 91
SCTP_ALLOWED, SCTP_DENIED = 100, 101
# Pinned (spec.nodeName) so "same node" and "another node" are facts of the fixture, not of
# the scheduler's spreading: the sender a and its neighbour peer on node-1, near on node-1,
# far on node-2, other on node-3.
PLACEMENT = {"a": "node-1", "peer": "node-1", "near": "node-1", "far": "node-2",
             "other": "node-3"}


def manifests(placement: dict[str, str] = PLACEMENT) -> list[dict]:
    """Namespace pk and one agnhost pod per name of ``placement``, pinned to its node."""
    ports = [{"name": f"{proto.lower()}-{port}", "containerPort": port, "protocol": proto}
             for proto, nums in (("TCP", (TCP_ALLOWED, TCP_DENIED)),
                                 ("UDP", (UDP_ECHO, UDP_OTHER)),
                                 ("SCTP", (SCTP_ALLOWED, SCTP_DENIED)))
             for port in nums]
    objs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}]
    for name, node in placement.items():
        objs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": name, "namespace": NS, "labels": {"pod": name}},
                     "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                              "containers": [{"name": "serve", "image": "agnhost",
                                              "ports": ports}]}})
    return objs


@dataclass
class Cluster:
    tb: object

    def ip(self, pod: str) -> str:
        return self.tb.pod_ip(f"{NS}/{pod}")

    def netns(self, pod: str) -> str:
        return self.tb.pod_netns(f"{NS}/{pod}")

    def node(self, pod: str) -> str:
        return self.tb.pod_node(f"{NS}/{pod}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from orchestrator.testbed import Testbed
    tb = Testbed(str(EXAMPLES / "three-node.yaml"), bgp=True,
                 state_dir=str(tmp_path_factory.mktemp("state")), keep_state=False)
    tb.start()
    try:
        tb.apply(manifests())
        tb.wait_ready(timeout=90)
        c = Cluster(tb)
        assert {p: c.node(p) for p in PLACEMENT} == PLACEMENT
        yield c
    finally:
        tb.stop()


@pytest.fixture
def policies(cluster):
    """policies(manifest) applies policy objects and waits until every node enforces them;
    at teardown each one applied is deleted and the test waits for the rules to go."""
    applied: list[dict] = []

    def apply(source) -> None:
        # Normalized as the apply stores them (namespace defaulted), to delete them later.
        objs = api.normalize_all(api.load_documents(source), now=now_rfc3339())
        cluster.tb.apply(source)
        applied.extend(objs)
        cluster.tb.wait_ready(timeout=30)

    try:
        yield apply
    finally:
        store = cluster.tb.store
        for obj in reversed(applied):
            # By the store key: Client.delete still resolves "NetworkPolicy" to the
            # Kubernetes kind and cannot reach a projectcalico.org one of the same name yet
            # (see the xfails in tests/unit/test_api_calico_policy.py).
            store.delete(api.kind_key(obj), obj["metadata"]["name"],
                         obj["metadata"].get("namespace", ""))
        if applied:
            cluster.tb.wait_ready(timeout=30)
