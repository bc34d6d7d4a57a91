"""normalize()/normalize_all(): kinds, metadata, Namespace, Node, error locations."""

import pytest

from orchestrator.api import generate_name, load_documents, normalize, normalize_all
from orchestrator.errors import ValidationError

NOW = "2026-01-02T03:04:05Z"


def ns(name="demo", **meta):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, **meta}}


def pod(name="p", **meta):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **meta},
            "spec": {"containers": [{"name": "c", "image": "x"}]}}


def error(obj, **kw):
    with pytest.raises(ValidationError) as exc:
        normalize(obj, now=NOW, **kw)
    return exc.value


def test_unknown_kind():
    err = error({"apiVersion": "example.com/v1", "kind": "Foo", "metadata": {"name": "x"}},
                source="f.yaml", index=0)
    assert "unknown kind 'Foo' (apiVersion example.com/v1); known kinds:" in err.message
    for kind in ("Pod", "Deployment", "ReplicaSet", "Namespace", "Node", "IPPool"):
        assert kind in err.message
    assert err.source == "f.yaml" and err.index == 0 and err.field == "kind"


def test_wrong_api_version():
    err = error({**pod(), "apiVersion": "apps/v1"})
    assert err.field == "apiVersion"
    assert "'apps/v1'" in err.message and "Pod" in err.message and "v1" in err.message
    err = error({"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "d"}})
    assert err.field == "apiVersion" and "apps/v1" in err.message


@pytest.mark.parametrize("obj,field", [
    ({"kind": "Pod", "metadata": {"name": "p"}}, "apiVersion"),
    ({"apiVersion": "v1", "metadata": {"name": "p"}}, "kind"),
])
def test_missing_type_fields(obj, field):
    assert error(obj).field == field


def test_not_a_mapping():
    err = error(["kind", "Pod"], source="x.yaml", index=3)
    assert "mapping" in err.message and err.index == 3


def test_unknown_top_level_field():
    err = error({**pod(), "sepc": {}})
    assert err.field == "sepc" and 'unknown field "sepc"' in err.message


def test_creation_timestamp_defaulted_kept_and_checked():
    assert normalize(pod(), now=NOW)["metadata"]["creationTimestamp"] == NOW
    kept = normalize(pod(creationTimestamp="2020-05-06T07:08:09Z"), now=NOW)
    assert kept["metadata"]["creationTimestamp"] == "2020-05-06T07:08:09Z"
    assert error(pod(creationTimestamp="yesterday")).field == "metadata.creationTimestamp"
    with pytest.raises(ValidationError):
        normalize(pod(), now="not a time")


def test_server_fields_kept():
    out = normalize(pod(uid="1234", resourceVersion="7", generation=3,
                        ownerReferences=[{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": "rs", "uid": "u", "controller": True}],
                        annotations={"example.com/note": "anything at all: {}"}), now=NOW)
    meta = out["metadata"]
    assert (meta["uid"], meta["resourceVersion"], meta["generation"]) == ("1234", "7", 3)
    assert meta["ownerReferences"][0]["name"] == "rs"


@pytest.mark.parametrize("meta,field,fragment", [
    ({}, "metadata.name", "name or generateName"),
    ({"name": "Web"}, "metadata.name", "RFC 1123 subdomain"),
    ({"name": "web_0"}, "metadata.name", "RFC 1123 subdomain"),
    ({"name": "a" * 254}, "metadata.name", "253"),
    ({"name": "p", "namespace": "Bad"}, "metadata.namespace", "RFC 1123 label"),
    ({"name": "p", "namespace": "a.b"}, "metadata.namespace", "RFC 1123 label"),
    ({"name": "p", "labels": {"app": "a b"}}, "metadata.labels[app]", "valid label"),
    ({"name": "p", "labels": {"app": "x" * 64}}, "metadata.labels[app]", "63"),
    ({"name": "p", "labels": {"a/b/c": "x"}}, "metadata.labels", "qualified name"),
    ({"name": "p", "labels": {"Bad_Prefix.com/a": "x"}}, "metadata.labels", "subdomain"),
    ({"name": "p", "labels": {"/a": "x"}}, "metadata.labels", "prefix part"),
    ({"name": "p", "labels": {"app": 3}}, "metadata.labels[app]", "string"),
    ({"name": "p", "labels": {"app": True}}, "metadata.labels[app]", "string"),
    ({"name": "p", "annotations": {"a": 1}}, "metadata.annotations[a]", "string"),
    ({"name": "p", "annotations": {"a": "x" * 300000}}, "metadata.annotations", "Too long"),
    ({"name": "p", "uid": 5}, "metadata.uid", "string"),
    ({"name": "p", "nmae": "x"}, "metadata.nmae", "unknown field"),
    ({"name": "p", "ownerReferences": [
        {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True}]},
     "metadata.ownerReferences", "only one reference"),
    ({"name": "p", "ownerReferences": [{"kind": "A", "name": "a", "uid": "1"}]},
     "metadata.ownerReferences[0].apiVersion", "Required"),
    ({"generateName": "Web-"}, "metadata.generateName", "RFC 1123 subdomain"),
])
def test_metadata_errors(meta, field, fragment):
    obj = pod()
    obj["metadata"] = meta
    err = error(obj)
    assert err.field == field, str(err)
    assert fragment in err.message, str(err)


def test_missing_metadata():
    obj = pod()
    del obj["metadata"]
    assert error(obj).field == "metadata"


def test_generate_name_leaves_name_empty():
    obj = pod()
    obj["metadata"] = {"generateName": "web-"}
    out = normalize(obj, now=NOW)
    assert out["metadata"]["name"] == "" and out["metadata"]["generateName"] == "web-"
    assert generate_name("web-", "x7k2p") == "web-x7k2p"
    assert len(generate_name("a" * 100, "bcdfg")) == 63


def test_labels_qualified_keys_ok():
    out = normalize(pod(labels={"app.kubernetes.io/name": "web", "x": "", "A_b.c-d": "Z9"}),
                    now=NOW)
    assert out["metadata"]["labels"]["x"] == ""


def test_namespace_golden():
    out = normalize(ns(labels={"kubernetes.io/metadata.name": "spoofed", "team": "a"}), now=NOW)
    assert out == {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "demo", "creationTimestamp": NOW,
                     "labels": {"kubernetes.io/metadata.name": "demo", "team": "a"}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def test_namespace_name_is_a_label():
    err = error(ns("a.b"))
    assert err.field == "metadata.name" and "RFC 1123 label" in err.message
    assert err.obj == "Namespace a.b"
    assert error(ns("x" * 64)).field == "metadata.name"


def test_cluster_scoped_rejects_namespace():
    err = error(ns(namespace="default"))
    assert err.field == "metadata.namespace" and "cluster-scoped" in err.message


def test_node_normalized_with_status_kept():
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-1", "labels": {"kubernetes.io/hostname": "node-1"}},
            "spec": {"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}
    out = normalize(node, now=NOW)
    assert out["spec"] == {"unschedulable": False, "taints": node["spec"]["taints"]}
    assert out["status"] == node["status"]
    out = normalize({**node, "spec": {"unschedulable": True}}, now=NOW)
    assert out["spec"] == {"unschedulable": True, "taints": []}


@pytest.mark.parametrize("spec,field,fragment", [
    ({"unschedulable": "true"}, "spec.unschedulable", "boolean"),
    ({"taints": [{"key": "k"}]}, "spec.taints[0].effect", "Required"),
    ({"taints": [{"key": "k", "effect": "Never"}]}, "spec.taints[0].effect", "Unsupported"),
    ({"taints": [{"effect": "NoSchedule"}]}, "spec.taints[0].key", "Required"),
    ({"taints": [{"key": "k", "value": "a b", "effect": "NoSchedule"}]},
     "spec.taints[0].value", "valid label"),
    ({"taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"}]},
     "spec.taints[1]", "Duplicate"),
    ({"taint": []}, "spec.taint", "unknown field"),
])
def test_node_errors(spec, field, fragment):
    err = error({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": spec})
    assert err.field == field and fragment in err.message and err.obj == "Node n1"


def test_normalize_all_example_manifest():
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "experiments" / "manifests" / "web.yaml"
    objs = normalize_all(load_documents(path), now=NOW)
    ns_obj, deploy, client = objs
    assert ns_obj["metadata"]["name"] == "demo"
    assert deploy["spec"]["replicas"] == 3
    c = deploy["spec"]["template"]["spec"]["containers"][0]
    assert (c["image"], c["ports"]) == ("nginx", [{"name": "http", "containerPort": 80,
                                                   "protocol": "TCP"}])
    assert deploy["metadata"]["namespace"] == "demo"
    assert client["metadata"]["namespace"] == "demo"
    assert client["spec"]["containers"][0]["image"] == "agnhost"


def test_normalize_all_reports_first_error_with_location(tmp_path):
    f = tmp_path / "m.yaml"
    f.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\n"
                 "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: x}\n"
                 "spec:\n  containers:\n  - name: c\n    image: x\n"
                 "    ports: [{containerPort: 80}, {containerPort: 99999}]\n---\n"
                 "apiVersion: v1\nkind: Pod\nmetadata: {name: BAD2}\n")
    with pytest.raises(ValidationError) as exc:
        normalize_all(load_documents(f), now=NOW)
    err = exc.value
    assert (err.source, err.index, err.obj, err.field) == (
        str(f), 1, "Pod x/bad", "spec.containers[0].ports[1].containerPort")
    assert str(err).startswith(f"{f}: document 1: Pod x/bad: field "
                               "spec.containers[0].ports[1].containerPort: ")


def test_normalize_all_duplicates():
    with pytest.raises(ValidationError) as exc:
        normalize_all([pod("a"), pod("b"), pod("a", namespace="default")], now=NOW)
    err = exc.value
    assert err.index == 2 and "duplicate" in err.message and "document 0" in err.message
    assert err.obj == "Pod default/a"
    # Same name in another namespace or of another kind is fine.
    objs = normalize_all([pod("a"), pod("a", namespace="other"), ns("a")], now=NOW)
    assert len(objs) == 3
    # generateName objects never collide.
    gen = pod()
    gen["metadata"] = {"generateName": "a-"}
    assert len(normalize_all([gen, gen], now=NOW)) == 2


def test_normalize_all_list_item_field_prefix():
    text = ("apiVersion: v1\nkind: List\nitems:\n"
            "- {apiVersion: v1, kind: Namespace, metadata: {name: ok}}\n"
            "- {apiVersion: v1, kind: Namespace, metadata: {name: Bad}}\n")
    with pytest.raises(ValidationError) as exc:
        normalize_all(load_documents(text), now=NOW)
    assert exc.value.field == "items[1].metadata.name"
    assert exc.value.source == "<text>" and exc.value.index == 0


def test_normalize_all_plain_dicts_and_keep_status():
    p = pod()
    p["status"] = {"phase": "Running"}
    out = normalize_all([p], now=NOW, keep_status=True)
    assert out[0]["status"] == {"phase": "Running"}
    with pytest.raises(ValidationError) as exc:
        normalize_all([pod(), {"kind": "Pod"}], now=NOW)
    assert exc.value.source == "<input>" and exc.value.index == 1


def test_null_fields_mean_unset():
    obj = pod()
    obj["spec"].update({"restartPolicy": None, "terminationGracePeriodSeconds": None})
    obj["metadata"]["labels"] = None
    out = normalize(obj, now=NOW)
    assert out["spec"]["restartPolicy"] == "Always"
    assert out["spec"]["terminationGracePeriodSeconds"] == 30
    assert "labels" not in out["metadata"]
    obj["spec"]["containers"] = None
    with pytest.raises(ValidationError) as exc:
        normalize(obj, now=NOW)
    assert exc.value.field == "spec.containers"
