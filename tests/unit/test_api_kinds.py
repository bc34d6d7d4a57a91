"""KINDS registry and resolve_kind for CLI words."""

import pytest

from orchestrator.api import KINDS, resolve_kind
from orchestrator.errors import ValidationError


@pytest.mark.parametrize("word,kind", [
    ("po", "Pod"), ("pods", "Pod"), ("Pod", "Pod"), ("pod", "Pod"), ("PODS", "Pod"),
    ("deploy", "Deployment"), ("deployments", "Deployment"), ("deployments.apps", "Deployment"),
    ("rs", "ReplicaSet"), ("replicasets", "ReplicaSet"),
    ("ns", "Namespace"), ("namespaces", "Namespace"),
    ("no", "Node"), ("nodes", "Node"),
    ("ippools", "IPPool"), ("ippool", "IPPool"), ("ipp", "IPPool"), ("pools", "IPPool"),
    ("IPPool", "IPPool"), ("ippools.projectcalico.org", "IPPool"),
])
def test_resolve_kind(word, kind):
    assert resolve_kind(word).kind == kind


@pytest.mark.parametrize("word", ["foo", "", "pods.apps", "gizmos", None])
def test_resolve_kind_unknown_lists_known(word):
    with pytest.raises(ValidationError) as exc:
        resolve_kind(word)
    msg = str(exc.value)
    for kind in KINDS:
        assert kind in msg
    assert "deploy" in msg and "po" in msg


def test_kind_scopes_and_versions():
    assert KINDS["Pod"].namespaced and KINDS["Deployment"].namespaced
    assert KINDS["ReplicaSet"].namespaced
    assert not KINDS["Namespace"].namespaced and not KINDS["Node"].namespaced
    assert not KINDS["IPPool"].namespaced
    assert KINDS["Deployment"].api_version == "apps/v1"
    assert KINDS["IPPool"].api_version == "projectcalico.org/v3"
    assert KINDS["Deployment"].group == "apps" and KINDS["Pod"].group == ""
