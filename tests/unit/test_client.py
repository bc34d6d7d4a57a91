"""apply / delete / label through the Client against a real store: all-or-nothing, errors
that name file, document, object and field, Kubernetes' immutability rules."""

from __future__ import annotations

import pytest

from orchestrator.control.client import Client
from orchestrator.control.store import Store
from orchestrator.errors import NotFound, ValidationError

NS = "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n"
POD = ("apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {app: a}}\n"
       "spec:\n  containers: [{name: c, image: agnhost}]\n")


@pytest.fixture
def client(tmp_path):
    from orchestrator.control.nodes import system_namespaces
    s = Store(str(tmp_path / "s.db"))
    for ns in system_namespaces():
        s.create(ns)
    yield Client(s, clock=lambda: "2026-01-01T00:00:00Z")
    s.close()


def test_apply_creates_then_reports_unchanged_and_configured(client):
    assert client.apply(NS + "---\n" + POD) == ["namespace/x created", "pod/a created"]
    assert client.apply(NS + "---\n" + POD) == ["namespace/x unchanged", "pod/a unchanged"]
    assert client.apply(POD.replace("app: a", "app: b")) == ["pod/a configured"]
    assert client.get("Pod", "x/a")["metadata"]["labels"] == {"app": "b"}


def test_namespace_must_exist_unless_in_the_same_apply(client):
    with pytest.raises(ValidationError, match='namespaces "x" not found') as ei:
        client.apply(POD)
    assert ei.value.field == "metadata.namespace" and ei.value.index == 0
    assert client.store.list("Pod") == []


def test_invalid_document_rejects_the_whole_apply(client, tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text(NS + "---\n" + POD.replace("image: agnhost", "image: ''"))
    with pytest.raises(ValidationError) as ei:
        client.apply(str(f))
    assert str(f) in str(ei.value) and "document 1" in str(ei.value)
    assert "spec.containers[0].image" in str(ei.value)
    assert client.store.get("Namespace", "x") is None


def test_unknown_kind_is_named(client):
    with pytest.raises(ValidationError, match="Gizmo"):
        client.apply("apiVersion: v1\nkind: Gizmo\nmetadata: {name: g}\n")


def test_pod_spec_is_immutable_but_image_may_change(client):
    client.apply(NS + "---\n" + POD)
    client.apply(POD.replace("image: agnhost", "image: nginx"))
    with pytest.raises(ValidationError, match="pod updates may not change"):
        client.apply(POD.replace("name: c", "name: d"))


def test_ippool_cidr_is_immutable_and_overlaps_are_refused(client):
    pool = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.9.0.0/16}\n"
    client.apply(pool)
    with pytest.raises(ValidationError, match="immutable"):
        client.apply(pool.replace("10.9.0.0/16", "10.8.0.0/16"))
    with pytest.raises(ValidationError, match="overlaps"):
        client.apply(pool.replace("name: p", "name: q").replace("10.9.0.0/16", "10.9.128.0/17"))


def test_delete_scheduled_pod_is_graceful_and_unknown_is_not_found(client):
    client.apply(NS + "---\n" + POD)
    pod = client.get("Pod", "x/a")
    pod["spec"]["nodeName"] = "node-1"
    client.store.update(pod)
    client.delete("pod", "x/a")
    assert client.get("Pod", "x/a")["metadata"]["deletionTimestamp"]
    with pytest.raises(NotFound):
        client.delete("pod", "x/missing")
    with pytest.raises(ValidationError, match="may not be deleted"):
        client.delete("ns", "default")


def test_label_sets_removes_and_validates(client):
    client.apply(NS + "---\n" + POD)
    client.label("po", "x/a", {"tier": "web", "app": None})
    assert client.get("Pod", "x/a")["metadata"]["labels"] == {"tier": "web"}
    rv = client.store.current_rv()
    with pytest.raises(ValidationError):
        client.label("po", "x/a", {"bad key!": "v"})
    assert client.store.current_rv() == rv


def test_ippool_overlapping_the_underlay_is_refused(tmp_path):
    s = Store(str(tmp_path / "u.db"))
    c = Client(s, reserved={"underlay": "172.18.0.0/16"})
    with pytest.raises(ValidationError, match="overlaps the underlay") as ei:
        c.apply("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: bad}\n"
                "spec: {cidr: 172.18.64.0/18}\n")
    assert ei.value.field == "spec.cidr" and "IPPool bad" in str(ei.value)
    assert s.list("IPPool") == []
